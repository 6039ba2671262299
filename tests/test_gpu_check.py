"""scripts/gpu_check.sh on the CPU (its fallback without a GPU), at its ``--quick`` sizes.

The script is meant for an air-gapped GPU node; running it here keeps it ready for that:
every step must pass and leave its figures in the one results file.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_on_the_cpu_and_writes_every_figure(tmp_path: Path) -> None:
    results = tmp_path / "out" / "gpu_check.md"
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "gpu_check.sh"), "--quick", "--device", "cpu",
         "--out", str(results)],
        env=dict(os.environ, PYTHON=sys.executable),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    text = results.read_text()
    summary = text.split("| step | status | seconds |\n| --- | --- | --- |\n")[1].split("\n\n")[0]
    rows = re.findall(r"^\| (.+?) \| (.+?) \| ([0-9.]+) \|$", summary, re.MULTILINE)
    steps = [name for name, _, _ in rows]
    assert steps[1:] == [
        "augmentation benchmark",
        "step benchmark 32-true",
        "rsmm pretrain (synthetic, accelerator cpu)",
    ]
    assert steps[0] == "CUDA-only tests"
    assert all(status == "ok" for _, status, _ in rows), rows
    assert "device cpu, quick=1" in text and "torch " in text
    # the CUDA-only tests are selected (and skipped here), none of the others
    assert re.search(r"\d+ skipped, \d+ deselected", text), text
    # each benchmark's figures
    assert re.search(r"rsmm / torchgeo\s+= [0-9.]+x", text)
    assert re.search(r"torchgeo / rsmm step time: [0-9.]+x", text)
    assert re.search(r"lightly / rsmm = [0-9.]+x", text)
    # the pre-training's logged metrics
    assert "Pre-training metrics.csv" in text and "train/loss" in text
