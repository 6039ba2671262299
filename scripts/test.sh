#!/usr/bin/env bash
# Set up (if needed), lint and run the test suite in parallel (pytest-xdist, one torch thread
# per worker). PYTHON, VENV and CONSTRAINTS as for scripts/setup.sh; PYTEST_WORKERS (default
# 2; 0 runs serially); extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VENV="${VENV:-.venv}"
lint=(rsmm tests)
[ -d benchmarks ] && lint+=(benchmarks)
"$VENV/bin/ruff" check "${lint[@]}"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider -n "${PYTEST_WORKERS:-2}" "$@"
