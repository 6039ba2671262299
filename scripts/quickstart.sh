#!/usr/bin/env bash
# Set up (if needed) and run the quick start: pre-train, fine-tune, compare, export.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
"${VENV:-.venv}/bin/rsmm" quickstart "$@"
