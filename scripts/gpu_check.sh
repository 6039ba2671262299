#!/usr/bin/env bash
# GPU check: rsmm's CUDA-only tests, the augmentation and step benchmarks on the GPU (step in
# 32-true and bf16-mixed) and a short synthetic pre-training with --trainer.accelerator gpu,
# every figure written to one Markdown file. Made for an air-gapped GPU node that has
# Python >= 3.11, torch, Lightning, timm and torchmetrics but not the rest of rsmm's
# dependencies: those travel as wheels (scripts/fetch_gpu_wheels.sh) and are installed with
# pip --no-index --no-deps into a folder of their own (.gpu-site), so the node's torch and
# every package it already has stay as they are. Without a GPU the same steps run on the CPU.
#
#   bash scripts/gpu_check.sh [--wheels DIR]... [--out FILE] [--device cuda|cpu] [--quick]
#
#   --wheels DIR   install the wheels in DIR (and its subfolders) first; repeatable
#   --out FILE     results file (default: $OUT/gpu_check.md when $OUT is set, else gpu_check.md)
#   --device D     default: cuda when torch sees a GPU, else cpu
#   --quick        tiny sizes (seconds on a CPU): the test suite's smoke test
#   PYTHON         the interpreter (default: python3)
set -uo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
PY="${PYTHON:-python3}"
WHEELS=()
RESULTS="${OUT:+$OUT/}gpu_check.md"
DEVICE=""
QUICK=0
while [ $# -gt 0 ]; do
    case "$1" in
        --wheels) WHEELS+=("$2"); shift 2 ;;
        --out) RESULTS="$2"; shift 2 ;;
        --device) DEVICE="$2"; shift 2 ;;
        --quick) QUICK=1; shift ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
mkdir -p "$(dirname "$RESULTS")"
RESULTS="$(cd "$(dirname "$RESULTS")" && pwd)/$(basename "$RESULTS")"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
FAILED=0

torch_id() { "$PY" -c 'import torch; print(torch.__version__, torch.__file__)'; }

# -- 1. install the carried wheels, keeping whatever the node already has -----------------
SITE="$REPO/.gpu-site"
if [ ${#WHEELS[@]} -gt 0 ]; then
    before="$(torch_id)" || { echo "gpu_check.sh: $PY has no torch" >&2; exit 1; }
    rm -rf "$SITE"
    # one wheel per distribution the node lacks (the node's own version wins)
    # (from $WORK: a build's rsmm.egg-info in this checkout must not count as installed)
    wheel_dirs=()
    for d in "${WHEELS[@]}"; do wheel_dirs+=("$(cd "$d" && pwd)"); done
    mapfile -t todo < <(cd "$WORK" && "$PY" - "${wheel_dirs[@]}" <<'EOF'
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

for folder in sys.argv[1:]:
    for wheel in sorted(Path(folder).rglob("*.whl")):
        name = wheel.name.split("-")[0]
        try:
            print(f"node has {name} {version(name)}; its wheel is not installed", file=sys.stderr)
        except PackageNotFoundError:
            print(wheel)
EOF
    )
    if [ ${#todo[@]} -gt 0 ]; then
        "$PY" -m pip install -q --no-index --no-deps --no-warn-script-location \
            --target "$SITE" "${todo[@]}" || exit 1
    fi
    export PATH="$SITE/bin:$PATH"
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
    after="$(torch_id)"
    if [ "$before" != "$after" ] || [ -e "$SITE/torch" ]; then
        echo "gpu_check.sh: the install changed torch ($before -> $after)" >&2
        exit 1
    fi
fi
# rsmm runs from this checkout (its tests, configs and benchmarks are here)
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
RSMM=("$PY" -c 'import sys; from rsmm.cli import main; sys.exit(main())')

if [ -z "$DEVICE" ]; then
    DEVICE="$("$PY" -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')"
fi
ACCEL=cpu
[ "$DEVICE" = cuda ] && ACCEL=gpu

# -- 2. the steps ------------------------------------------------------------------------
{
    echo "# rsmm GPU check"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), host $(hostname), device $DEVICE, quick=$QUICK"
    echo
    "$PY" - <<'EOF'
import platform
from importlib.metadata import PackageNotFoundError, version

import torch

gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
print(f"- Python {platform.python_version()}, torch {torch.__version__} "
      f"(CUDA {torch.version.cuda}), GPU: {gpu}")
found = []
for name in ("rsmm", "torchgeo", "lightning", "kornia", "timm", "torchmetrics", "lightly",
             "pot", "geoopt", "rasterio", "geopandas", "numpy"):
    try:
        found.append(f"{name} {version(name)}")
    except PackageNotFoundError:
        found.append(f"{name} (checkout)" if name == "rsmm" else f"{name} missing")
print("- " + ", ".join(found))
EOF
    echo
    echo "| step | status | seconds |"
    echo "| --- | --- | --- |"
} > "$RESULTS"
: > "$WORK/details.md"

# run_step NAME CMD...: runs CMD (at most 8 minutes), records its status, time and output
run_step() {
    local name="$1" start end rc
    shift
    echo "== $name: $*"
    start=$(date +%s.%N)
    timeout 480 "$@" > "$WORK/log" 2>&1
    rc=$?
    end=$(date +%s.%N)
    local secs
    secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
    local status=ok
    if [ $rc -ne 0 ]; then status="FAILED (exit $rc)"; FAILED=1; fi
    echo "| $name | $status | $secs |" >> "$RESULTS"
    {
        echo
        echo "## $name"
        echo
        echo '```'
        echo "\$ $*"
        grep -v -e '^\s*$' -e 'it/s\]' -e 's/it\]' "$WORK/log" | tail -n 60
        echo '```'
    } >> "$WORK/details.md"
    tail -n 3 "$WORK/log"
}

if [ ${#WHEELS[@]} -gt 0 ]; then
    # the installed wheel imports from an unrelated folder, without this checkout
    run_step "installed rsmm" bash -c 'cd "$0" && PYTHONPATH="$1" exec "$2" -c "$3"' \
        "$WORK" "$SITE" "$PY" 'import rsmm, rsmm.cli, rsmm.tasks, rsmm.datamodules
print("rsmm", rsmm.__version__, "from", rsmm.__file__)'
fi

# the tests conftest.py marks `cuda` (those skipped with "needs CUDA" on a machine without one)
mapfile -t cuda_tests < <(grep -rl --include='test_*.py' 'needs CUDA' tests | sort)
if [ ${#cuda_tests[@]} -gt 0 ]; then
    run_step "CUDA-only tests" "$PY" -m pytest -q -p no:cacheprovider -rs -m cuda "${cuda_tests[@]}"
fi

precisions=(32-true bf16-mixed)
if [ $QUICK = 1 ]; then
    aug=(--batch-size 8 --repeats 1 --per-sample-limit 2)
    step=(--steps 4 --methods "")
    precisions=(32-true)  # a ResNet-18 step on the CPU is slow: one precision only
    pre=(--trainer.max_epochs 1 --trainer.limit_train_batches 2
         --data.init_args.num_samples 64 --data.init_args.batch_size 16)
else
    aug=(--repeats 5)
    step=(--steps 8)
    pre=(--trainer.max_epochs 3)
fi
run_step "augmentation benchmark" "${RSMM[@]}" benchmark augment --device "$DEVICE" "${aug[@]}"
for precision in "${precisions[@]}"; do
    methods=()
    # every SSL method in 32-true; in bf16-mixed those TorchGeo has too (the 8 minute budget)
    [ $QUICK = 0 ] && [ "$precision" = bf16-mixed ] && methods=(--methods ntxent,moco,byol)
    run_step "step benchmark $precision" "${RSMM[@]}" benchmark step --device "$DEVICE" \
        --precision "$precision" "${step[@]}" "${methods[@]}"
done
run_step "rsmm pretrain (synthetic, accelerator $ACCEL)" "${RSMM[@]}" pretrain \
    --config configs/synthetic/pretrain.yaml --trainer.accelerator "$ACCEL" \
    --trainer.devices 1 --trainer.default_root_dir "$WORK/pretrain" "${pre[@]}"
metrics="$(find "$WORK/pretrain" -name metrics.csv 2>/dev/null | head -n 1)"
if [ -n "$metrics" ]; then
    {
        echo
        echo "Pre-training metrics.csv (header and last rows):"
        echo
        echo '```'
        head -n 1 "$metrics"
        tail -n +2 "$metrics" | tail -n 4
        echo '```'
    } >> "$WORK/details.md"
fi

cat "$WORK/details.md" >> "$RESULTS"
echo "gpu_check.sh: results in $RESULTS"
exit $FAILED
