"""Pre-emption: SIGTERM (what SLURM and Kubernetes send) stops ``rsmm pretrain`` with a
resumable ``last.ckpt``, status 143 and one line naming the checkpoint; the run resumes
from it to its end."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import torch
from test_resume import start_pretrain

from rsmm.checkpoints import PRETRAIN, SIGTERM_EXIT_STATUS, check_checkpoint

#: far more steps than the test waits for: the run is still training when it is stopped
STEPS = 60


def test_sigterm_saves_a_resumable_checkpoint_and_exits_143(tmp_path: Path) -> None:
    root = tmp_path / "run"
    steps = ["--trainer.max_epochs", "-1", "--trainer.max_steps", str(STEPS)]
    proc = start_pretrain(root, *steps)
    last = root / "version_0" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it was stopped"
    assert last.is_file(), "no step checkpoint within 300 s"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == SIGTERM_EXIT_STATUS, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("rsmm:")]
    assert lines == [
        f"rsmm: pretrain interrupted by SIGTERM; resumable checkpoint: {last} "
        "(resume with --ckpt_path)"
    ], err
    assert err.rstrip().splitlines()[-1] == lines[0]

    check_checkpoint(last, PRETRAIN)  # loads weights-only, as the pre-training task's
    saved = torch.load(last, map_location="cpu", weights_only=True)
    assert 2 <= saved["global_step"] < STEPS

    # three more steps (tests/test_resume.py checks that a resumed run is exact)
    end = saved["global_step"] + 3
    resumed = start_pretrain(root, *steps[:3], str(end), "--ckpt_path", str(last))
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    final = torch.load(root / "version_1" / "checkpoints" / "last.ckpt", weights_only=True)
    assert final["global_step"] == end
