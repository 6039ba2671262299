"""Exact resume: a shuffled, augmented pre-training run killed with SIGKILL mid-epoch
and resumed from its last step checkpoint, or stopped by SIGTERM and resumed from the
checkpoint it wrote, ends with the same tensors, bit for bit on the CPU, as the run that
was not interrupted (rsmm.checkpoints.resume, rsmm.checkpoints.preemption)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning import Callback

from rsmm.checkpoints import (
    RANDOM_STATE_KEY,
    SIGTERM_EXIT_STATUS,
    random_state,
    set_random_state,
)

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "synthetic" / "pretrain.yaml"
#: 48 training chips in batches of 16: 3 steps an epoch, 9 in all; a step checkpoint
#: every 2 steps. Shuffled, two augmented views (the config's mm_pretrain preset).
RUN = [
    "--data.num_samples",
    "48",
    "--data.size",
    "8",
    "--data.batch_size",
    "16",
    "--model.hidden_dim",
    "16",
    "--model.projection_dim",
    "8",
    "--trainer.max_epochs",
    "3",
    "--trainer.enable_progress_bar",
    "false",
    "--trainer.enable_model_summary",
    "false",
    "--trainer.accelerator",
    "cpu",
    "--checkpoint_every_n_steps",
    "2",
]


class KillAtStep(Callback):
    """Kills its own process with SIGKILL when training step ``step`` is about to run
    (no handler, no clean-up: as the OOM killer or a lost node would)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, idx: int) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class SigtermAtStep(KillAtStep):
    """Sends SIGTERM to its own process when training step ``step`` is about to run: a
    real signal at a known step, so that the checkpoint it leaves is known."""

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, idx: int) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


def start_pretrain(root: Path, *extra: str) -> subprocess.Popen[str]:
    """``python -m rsmm.cli pretrain`` of :data:`RUN` into ``root``, started in a new
    process (this checkout's rsmm, tests/ importable for the test callbacks)."""
    path = os.pathsep.join([str(REPO), str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])
    env = {k: v for k, v in os.environ.items() if k != "RSMM_DEBUG"} | {"PYTHONPATH": path}
    args = ["pretrain", "--config", str(CONFIG), *RUN, "--trainer.default_root_dir", str(root)]
    return subprocess.Popen(
        [sys.executable, "-m", "rsmm.cli", *args, *extra],
        cwd=root.parent,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.b.0": leaf}`` of nested dicts and lists."""
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in flat(sub, f"{prefix}{key}.").items()}
    if isinstance(tree, list | tuple):
        return {k: v for i, sub in enumerate(tree) for k, v in flat(sub, f"{prefix}{i}.").items()}
    return {prefix.rstrip("."): tree}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The uninterrupted run, the run killed before step 5 and the run sent SIGTERM
    during step 4 (all three at once), then the two stopped runs resumed (both at once)."""
    base = tmp_path_factory.mktemp("resume")
    roots = {name: base / name for name in ("whole", "killed", "terminated")}
    started = [
        (start_pretrain(roots["whole"]), 0),
        (
            start_pretrain(
                roots["killed"],
                "--trainer.callbacks+=test_resume.KillAtStep",
                "--trainer.callbacks.step=5",
            ),
            -signal.SIGKILL,
        ),
        (
            start_pretrain(
                roots["terminated"],
                "--trainer.callbacks+=test_resume.SigtermAtStep",
                "--trainer.callbacks.step=4",
            ),
            SIGTERM_EXIT_STATUS,
        ),
    ]
    for proc, status in started:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == status, err
    stopped = {
        name: roots[name] / "version_0" / "checkpoints" / "last.ckpt"
        for name in ("killed", "terminated")
    }
    saved = {name: load(path) for name, path in stopped.items()}
    resumed = [
        start_pretrain(roots[name], "--ckpt_path", str(path)) for name, path in stopped.items()
    ]
    for proc in resumed:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
    return {
        "whole": roots["whole"] / "version_0" / "checkpoints" / "last.ckpt",
        **{f"{name} at": saved[name] for name in stopped},
        **{name: roots[name] / "version_1" / "checkpoints" / "last.ckpt" for name in stopped},
    }


def test_stopped_runs_left_their_last_checkpoint(runs: dict[str, Any]) -> None:
    # killed before step 5 (0-based): the step checkpoint after 4 steps, in the middle of
    # the second epoch (3 steps an epoch); SIGTERM during step 4: the checkpoint after it
    assert (runs["killed at"]["global_step"], runs["killed at"]["epoch"]) == (4, 1)
    assert (runs["terminated at"]["global_step"], runs["terminated at"]["epoch"]) == (5, 1)
    assert isinstance(runs["killed at"][RANDOM_STATE_KEY]["torch"], torch.Tensor)


@pytest.mark.parametrize("stopped", ["killed", "terminated"])
def test_resumed_run_ends_with_the_same_tensors(runs: dict[str, Any], stopped: str) -> None:
    a, b = load(runs["whole"]), load(runs[stopped])
    assert a["global_step"] == b["global_step"] == 9
    for part in ("state_dict", "optimizer_states"):
        ta, tb = flat(a[part]), flat(b[part])
        assert ta.keys() == tb.keys()
        tensors = [k for k in ta if isinstance(ta[k], torch.Tensor)]
        assert tensors
        different = [k for k in tensors if not torch.equal(ta[k], tb[k])]
        assert not different, (
            f"{len(different)} of {len(tensors)} {part} tensors differ: {different[:5]}"
        )
        assert {k: v for k, v in ta.items() if k not in tensors} == {
            k: v for k, v in tb.items() if k not in tensors
        }


def test_random_state_round_trip() -> None:
    """Every global generator comes back: the numbers drawn after restoring are those
    drawn after saving, and the saved state loads weights-only."""
    import random

    import numpy as np

    gen = torch.Generator().manual_seed(3)
    state = random_state({"loss.generator": gen})
    first = (torch.rand(3), random.random(), np.random.rand(), torch.rand(2, generator=gen))  # noqa: NPY002
    torch.rand(5), random.random(), np.random.rand(), torch.rand(2, generator=gen)  # noqa: NPY002
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"rsmm-state-{os.getpid()}.pt"
    torch.save(state, path)
    try:
        state = torch.load(path, weights_only=True)
    finally:
        path.unlink()
    set_random_state(state, {"loss.generator": gen})
    again = (torch.rand(3), random.random(), np.random.rand(), torch.rand(2, generator=gen))  # noqa: NPY002
    assert torch.equal(first[0], again[0]) and torch.equal(first[3], again[3])
    assert first[1:3] == again[1:3]
