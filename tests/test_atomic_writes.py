"""Atomic writes: complete outputs or none, stale temporaries removed, a full disk is one
line naming the path, the user's umask, and no empty run folders after an early failure."""

from __future__ import annotations

import errno
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import rsmm.atomic
from rsmm.atomic import atomic_dir, remove_stale, temp_path, write_text
from rsmm.checkpoints.atomic_io import AtomicCheckpointIO
from rsmm.cli import main
from rsmm.errors import DiskFullError
from rsmm.export import META_FILE, export_encoders
from rsmm.tasks import PretrainTask

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "synthetic"
SCENE = Path(__file__).parent / "data" / "stacks" / "scene"
TINY = [
    "--data.num_samples", "32", "--data.size", "8", "--data.batch_size", "16",
    "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false",
    "--trainer.accelerator", "cpu",
]  # fmt: skip


class FullDisk(io.FileIO):
    """A file on a disk that fills up after ``room`` bytes."""

    room = 1000

    def write(self, data: Any) -> int:
        if self.tell() + len(memoryview(data)) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(data)


def fill_disk(monkeypatch: pytest.MonkeyPatch, match: str = "") -> None:
    """Every atomic write to a path containing ``match`` runs out of space."""
    real_open = open

    def fake_open(path: Any, mode: str = "r", **kwargs: Any) -> Any:
        if "w" in mode and match in str(path):
            raw = FullDisk(path, "w")
            if "b" in mode:
                return raw
            return io.TextIOWrapper(io.BufferedWriter(raw), kwargs.get("encoding"))
        return real_open(path, mode, **kwargs)

    monkeypatch.setattr(rsmm.atomic, "open", fake_open, raising=False)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if ".rsmm." in p.name)


def pretrain_ckpt(path: Path) -> Path:
    task = PretrainTask(
        in_channels={"s2": 5, "naip": 4},
        backbone="tiny_cnn",
        data_info={"bands": {"s2": ["B02", "B03", "B04", "B08", "B05"]}},
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"hyper_parameters": dict(task.hparams), "state_dict": task.state_dict()}, path)
    return path


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_full_disk_leaves_the_previous_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "results.json"
    write_text(target, "old")
    fill_disk(monkeypatch)
    with pytest.raises(DiskFullError, match=r"no space left on device for .*results\.json"):
        write_text(target, "x" * 5000)
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["results.json"]


def test_checkpoint_io_never_leaves_a_truncated_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin = AtomicCheckpointIO()
    last = tmp_path / "checkpoints" / "last.ckpt"
    plugin.save_checkpoint({"w": torch.arange(10.0)}, last)
    fill_disk(monkeypatch)
    with pytest.raises(DiskFullError, match=r"last\.ckpt"):
        plugin.save_checkpoint({"w": torch.zeros(100_000)}, last)
    assert torch.equal(plugin.load_checkpoint(last)["w"], torch.arange(10.0))
    assert os.listdir(last.parent) == ["last.ckpt"]


def test_full_disk_during_training_is_one_line_and_no_truncated_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fill_disk(monkeypatch, match=".ckpt")
    root = tmp_path / "runs"
    args = ["pretrain", "--config", str(CONFIGS / "pretrain.yaml"), *TINY]
    assert main([*args, "--trainer.default_root_dir", str(root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("rsmm: error: no space left on device for ")
    assert ".ckpt" in err[-1] and "Traceback" not in "\n".join(err)
    assert not list(tmp_path.rglob("*.ckpt")) and not leftovers(tmp_path)


def test_full_disk_during_export_is_one_line_and_keeps_the_old_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = pretrain_ckpt(tmp_path / "p.ckpt")
    out = export_encoders(ckpt, tmp_path / "enc", modalities=["s2"])
    before = (out / META_FILE).read_text()

    def full(self: Path, data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))

    monkeypatch.setattr(Path, "write_bytes", full)
    assert main(["export", str(ckpt), str(out), "--overwrite"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [err[0]] and "no space left on device for" in err[0] and str(out) in err[0]
    assert (out / META_FILE).read_text() == before
    assert sorted(os.listdir(tmp_path)) == ["enc", "p.ckpt"]


def test_full_disk_during_manifest_build_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import pyarrow.parquet as pq

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq, "write_table", full)
    out = tmp_path / "chips.parquet"
    args = ["manifest", "build", "--chip-size", "160m", "--split", "1,0,0"]
    assert main([*args, "--s2", str(SCENE / "s2"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rsmm: error: no space left on device for ")
    assert str(out) in err[0] and os.listdir(tmp_path) == []


def test_a_killed_writers_temporaries_are_removed_by_the_next_write(tmp_path: Path) -> None:
    pid = dead_pid()
    host = temp_path(tmp_path / "x").name.split("rsmm.tmp-")[1].split("-")[0]
    stale_dir = tmp_path / f".enc.rsmm.tmp-{host}-{pid}-0123abcd"
    stale_dir.mkdir()
    (stale_dir / "s2.safetensors").write_bytes(b"half")
    stale_file = tmp_path / f".chips.parquet.rsmm.tmp-{host}-{pid}-89abcdef"
    stale_file.write_bytes(b"half")
    mine = temp_path(tmp_path / "live")  # this process is alive: not stale
    mine.write_text("in progress")
    other_host = tmp_path / f".a.rsmm.tmp-ffffffff-{pid}-0123abcd"
    other_host.write_text("written on another machine")
    user = tmp_path / ".enc.tmp-1-2"  # not one of rsmm's names
    user.write_text("mine")
    write_text(tmp_path / "results.json", "{}")
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["results.json", mine.name, other_host.name, user.name]
    )


def test_an_export_moved_aside_by_a_killed_swap_is_put_back(tmp_path: Path) -> None:
    """A kill -9 between moving the previous export aside and renaming the new one in."""
    pid, host = dead_pid(), temp_path(tmp_path / "x").name.split("rsmm.tmp-")[1].split("-")[0]
    aside = tmp_path / f".enc.rsmm.old-{host}-{pid}-0123abcd"
    aside.mkdir()
    (aside / META_FILE).write_text("{}")
    assert remove_stale(tmp_path) == [aside]
    assert (tmp_path / "enc" / META_FILE).read_text() == "{}"
    # with a new export in place, the one aside is only removed
    aside.mkdir()
    assert remove_stale(tmp_path) == [aside]
    assert os.listdir(tmp_path) == ["enc"]


def test_outputs_get_the_users_umask(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = os.umask(0o002)
    try:
        ckpt = pretrain_ckpt(tmp_path / "p.ckpt")
        out = export_encoders(ckpt, tmp_path / "enc", modalities=["s2"])
        manifest = tmp_path / "chips.parquet"
        args = ["manifest", "build", "--chip-size", "160m", "--split", "1,0,0"]
        assert main([*args, "--s2", str(SCENE / "s2"), "--out", str(manifest)]) == 0
        with atomic_dir(tmp_path / "d") as d:
            (d / "f").write_text("x")
    finally:
        os.umask(old)
    capsys.readouterr()
    assert out.stat().st_mode & 0o777 == 0o775
    assert (out / META_FILE).stat().st_mode & 0o777 == 0o664
    assert manifest.stat().st_mode & 0o777 == 0o664
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o775
    assert json.loads((out / META_FILE).read_text())["modalities"].keys() == {"s2"}


def test_a_run_that_fails_before_training_leaves_no_empty_folders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "project" / "runs" / "pretrain"
    args = ["pretrain", "--config", str(CONFIGS / "pretrain.yaml"), *TINY]
    args += ["--data.num_samples", "0", "--trainer.default_root_dir", str(root)]
    assert main(args) == 2
    assert "num_samples" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []
    # a root that existed before is kept, empty or not
    root.mkdir(parents=True)
    assert main(args) == 2
    assert root.is_dir() and os.listdir(root) == []
