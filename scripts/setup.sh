#!/usr/bin/env bash
# Create a virtual environment and install rsmm (editable) with its test extras.
# Safe to run twice: it reinstalls only when pyproject.toml or the constraints changed.
#
#   PYTHON       interpreter to use (default: python3; python3.X also found under pyenv)
#   VENV         where to create it (default: .venv)
#   CONSTRAINTS  exact versions (default: constraints/py3X.txt for that Python when it
#                exists, else none: the ranges of pyproject.toml alone)
set -euo pipefail
cd "$(dirname "$0")/.."

# An interpreter that runs: the name as given, else a pyenv install of that version
# (pyenv's shim for python3.12 fails unless 3.12 is among the selected versions).
find_python() {
    local name="$1" root candidate
    if command -v "$name" >/dev/null 2>&1 && "$name" -c "" >/dev/null 2>&1; then
        command -v "$name"
        return
    fi
    if [[ "$name" =~ ^python([0-9]+\.[0-9]+)$ ]]; then
        root="$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"
        for candidate in $(ls -d "$root"/versions/"${BASH_REMATCH[1]}".*/bin/"$name" 2>/dev/null | sort -V -r); do
            if "$candidate" -c "" >/dev/null 2>&1; then
                echo "$candidate"
                return
            fi
        done
    fi
    echo "setup.sh: no working $name (set PYTHON to an interpreter >= 3.11)" >&2
    return 1
}

PY="$(find_python "${PYTHON:-python3}")"
VENV="${VENV:-.venv}"
PYVER="$("$PY" -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')"
if [ "$PYVER" -lt 311 ]; then
    echo "setup.sh: rsmm needs Python >= 3.11; $PY is ${PYVER:0:1}.${PYVER:1}" >&2
    exit 1
fi
CONSTRAINTS="${CONSTRAINTS-constraints/py$PYVER.txt}"
[ -f "$CONSTRAINTS" ] || CONSTRAINTS=""

# a venv of another Python version is rebuilt
if [ -x "$VENV/bin/python" ] \
    && [ "$("$VENV/bin/python" -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')" != "$PYVER" ]; then
    echo "setup.sh: $VENV holds another Python version; recreating it with $PY"
    rm -rf "$VENV"
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"

stamp="$PY $(cat pyproject.toml ${CONSTRAINTS:+"$CONSTRAINTS"} | sha256sum | cut -c1-16)"
if [ "$(cat "$VENV/.rsmm-installed" 2>/dev/null)" != "$stamp" ] \
    || ! "$VENV/bin/python" -c "import rsmm, pytest" >/dev/null 2>&1; then
    echo "setup.sh: installing rsmm into $VENV (Python ${PYVER:0:1}.${PYVER:1}${CONSTRAINTS:+, $CONSTRAINTS})"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q ${CONSTRAINTS:+-c "$CONSTRAINTS"} -e ".[dev]"
    echo "$stamp" > "$VENV/.rsmm-installed"
fi
