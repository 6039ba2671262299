#!/usr/bin/env bash
# Download the wheels of scripts/gpu_wheels.txt for an air-gapped Python 3.12 x86_64 node and
# build rsmm's own wheel beside them, into .whl/ split in parts of at most PART_MIB MiB
# (default 60) so that each part travels with the working tree under a 64 MiB limit.
# Run it where the package registry is reachable; carry .whl/ (every part) to the node and
# run `bash scripts/gpu_check.sh --wheels .whl` there.
#
#   bash scripts/fetch_gpu_wheels.sh [DEST]      (DEST default: .whl)
#   SKIP="scipy matplotlib"   leave out wheels of packages the node already has
#   PYTHON                    the interpreter that runs pip (default: python3)
set -euo pipefail
cd "$(dirname "$0")/.."
DEST="${1:-.whl}"
PY="${PYTHON:-python3}"
PART_MIB="${PART_MIB:-60}"
rm -rf "$DEST"
mkdir -p "$DEST/all"

reqs="$DEST/requirements.txt"
grep -v -e '^\s*#' -e '^\s*$' scripts/gpu_wheels.txt > "$reqs"
for name in ${SKIP:-}; do
    grep -v -i "^${name}==" "$reqs" > "$reqs.tmp" || true
    mv "$reqs.tmp" "$reqs"
done

# pip before 24 does not widen a manylinux_2_28 platform to the older manylinux tags
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$DEST/all" -r "$reqs"
leftovers=()  # what an in-tree build leaves behind, unless it was there before
for d in build rsmm.egg-info; do [ -e "$d" ] || leftovers+=("$d"); done
"$PY" -m pip wheel -q --no-deps -w "$DEST/all" .
rm -rf "${leftovers[@]}"

# split into parts: largest first, each into the first part it fits
"$PY" - "$DEST" "$PART_MIB" <<'EOF'
import sys
from pathlib import Path

dest, limit = Path(sys.argv[1]), float(sys.argv[2]) * 2**20
wheels = sorted((dest / "all").glob("*.whl"), key=lambda p: -p.stat().st_size)
parts: list[list[Path]] = []
sizes: list[int] = []
for wheel in wheels:
    size = wheel.stat().st_size
    if size > limit:
        sys.exit(f"{wheel.name} alone is {size / 2**20:.1f} MiB, over PART_MIB")
    for i, used in enumerate(sizes):
        if used + size <= limit:
            break
    else:
        parts.append([])
        sizes.append(0)
        i = len(parts) - 1
    parts[i].append(wheel)
    sizes[i] += size
for i, part in enumerate(parts, 1):
    folder = dest / f"part{i}"
    folder.mkdir()
    for wheel in part:
        wheel.rename(folder / wheel.name)
(dest / "all").rmdir()
print(f"{len(wheels)} wheels, {sum(sizes) / 2**20:.1f} MiB in all:")
for i, used in enumerate(sizes, 1):
    print(f"  {dest}/part{i}: {len(parts[i - 1])} wheels, {used / 2**20:.1f} MiB")
EOF
rm -f "$reqs"
