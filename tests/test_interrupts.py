"""Real SIGINT / SIGTERM (and SIGKILL) at a known point of a command: one line, status
130 / 143, the old output or the complete new one, no temporary file left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from rsmm.cli import main
from rsmm.export import META_FILE, export_encoders
from rsmm.stacks import read_manifest
from rsmm.tasks import PretrainTask

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
CONFIGS = REPO / "configs" / "synthetic"
SCENE = TESTS / "data" / "stacks" / "scene"
BUILD = ["manifest", "build", "--chip-size", "160m", "--split", "1,0,0"]
TINY = [
    "--data.num_samples", "32", "--data.size", "8", "--data.batch_size", "16",
    "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false",
    "--trainer.accelerator", "cpu",
]  # fmt: skip


def pretrain_ckpt(path: Path) -> Path:
    task = PretrainTask(
        in_channels={"s2": 5, "naip": 4},
        backbone="tiny_cnn",
        data_info={"bands": {"s2": ["B02", "B03", "B04", "B08", "B05"]}},
    )
    torch.save({"hyper_parameters": dict(task.hparams), "state_dict": task.state_dict()}, path)
    return path


def signalled(step: str, args: list[str], sig: int, tmp: Path) -> tuple[int, list[str]]:
    """Run ``rsmm <args>`` in a new process, send ``sig`` once it reaches ``step`` (see
    ``signal_driver.py``); returns its status and its stderr lines."""
    ready = tmp / "ready"
    ready.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "RSMM_DEBUG"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env["PYTHONWARNINGS"] = "ignore"
    proc = subprocess.Popen(
        [sys.executable, str(TESTS / "signal_driver.py"), step, str(ready), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"the command never reached {step}: {out}\n{err}")
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err.strip().splitlines()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if ".rsmm." in p.name)


@pytest.mark.parametrize(
    ("sig", "status", "previous"),
    [(signal.SIGINT, 130, True), (signal.SIGTERM, 143, False)],
    ids=["sigint-overwrite", "sigterm-new"],
)
def test_interrupted_export_keeps_the_old_one(
    sig: int, status: int, previous: bool, tmp_path: Path
) -> None:
    ckpt = pretrain_ckpt(tmp_path / "p.ckpt")
    out = tmp_path / "enc"
    if previous:
        export_encoders(ckpt, out, modalities=["s2"])
    before = (out / META_FILE).read_text() if previous else None
    args = ["export", str(ckpt), str(out), "--overwrite"]
    code, err = signalled("export-card", args, sig, tmp_path)
    assert code == status, err
    assert err == [f"rsmm: export interrupted by {signal.Signals(sig).name}; complete outputs "
                   "are kept, unfinished ones were not written"]  # fmt: skip
    assert leftovers(tmp_path) == []
    if previous:
        assert (out / META_FILE).read_text() == before
    else:
        assert not out.exists()


@pytest.mark.parametrize(
    ("sig", "status", "previous"),
    [(signal.SIGTERM, 143, True), (signal.SIGINT, 130, False)],
    ids=["sigterm-overwrite", "sigint-new"],
)
def test_interrupted_manifest_build_keeps_the_old_one(
    sig: int, status: int, previous: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "chips.parquet"
    if previous:
        assert main([*BUILD, "--s2", str(SCENE / "s2"), "--out", str(out)]) == 0
        capsys.readouterr()
    before = out.read_bytes() if previous else None
    args = [*BUILD, "--s2", str(SCENE / "s2"), "--s1", str(SCENE / "s1")]
    code, err = signalled("manifest-write", [*args, "--out", str(out), "--overwrite"], sig, tmp_path)
    assert code == status, err
    assert len(err) == 1 and err[0].startswith("rsmm: manifest interrupted by "), err
    assert leftovers(tmp_path) == []
    if previous:
        assert out.read_bytes() == before
        assert set(read_manifest(out).modalities) == {"s2"}
    else:
        assert not out.exists()


def test_an_export_killed_with_sigkill_is_cleaned_up_by_the_next(tmp_path: Path) -> None:
    ckpt = pretrain_ckpt(tmp_path / "p.ckpt")
    out = tmp_path / "enc"
    export_encoders(ckpt, out, modalities=["s2"])
    code, _ = signalled(
        "export-card", ["export", str(ckpt), str(out), "--overwrite"], signal.SIGKILL, tmp_path
    )
    assert code == -signal.SIGKILL
    (orphan,) = [p for p in tmp_path.iterdir() if ".rsmm.tmp-" in p.name]
    assert orphan.name.startswith(".enc.rsmm.tmp-") and (orphan / "s2.safetensors").is_file()
    assert json.loads((out / META_FILE).read_text())["modalities"].keys() == {"s2"}
    export_encoders(ckpt, out, overwrite=True)
    assert json.loads((out / META_FILE).read_text())["modalities"].keys() == {"s2", "naip"}
    assert leftovers(tmp_path) == [] and sorted(os.listdir(tmp_path)) == ["enc", "p.ckpt", "ready"]


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_training_ends_with_one_line_and_non_zero_status(
    sig: int,
    status: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Ctrl-C: Lightning shuts down and calls sys.exit(1); SIGTERM: it finishes the batch
    and raises its SIGTERMException (status 0 until rsmm reported it)."""
    real_step = PretrainTask.training_step

    def step(self: PretrainTask, *args: Any, **kwargs: Any) -> Any:
        os.kill(os.getpid(), sig)  # a real signal, delivered at this batch
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(PretrainTask, "training_step", step)
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    args = ["pretrain", "--config", str(CONFIGS / "pretrain.yaml"), *TINY]
    assert main([*args, "--trainer.default_root_dir", str(tmp_path / "runs")]) == status
    err = capsys.readouterr().err.strip().splitlines()
    name = signal.Signals(sig).name
    assert err[-1].startswith(f"rsmm: pretrain interrupted by {name}"), err
    assert not any("Traceback" in line for line in err)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers
