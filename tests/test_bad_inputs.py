"""Bad inputs through the ``rsmm`` command and the public API (the table in tests/bad_inputs/).

For every case: a non-zero exit status with exactly one ``rsmm: error:`` line (or a
typed :class:`~rsmm.errors.RsmmError` with a one-line message) that names the file or
option, no traceback, and nothing written, changed or left behind on disk.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import torch
from bad_inputs import CASES, Api, Cli, Shared
from bad_inputs.core import Builder

from rsmm.cli import main
from rsmm.errors import RsmmError
from rsmm.export import export_encoders
from rsmm.tasks import FinetuneTask, PretrainTask

# "rsmm: error:", or argparse's "rsmm <command>: error:" after its usage lines
ERROR_LINE = re.compile(r"^rsmm(?: [a-z-]+)*: error: ")
# what else may reach stderr: argparse's usage block, Lightning's seeding notice
NOISE = re.compile(r"^(usage: |\s+\S|Seed set to \d+$)")


def _save(task: torch.nn.Module, path: Path) -> Path:
    torch.save({"hyper_parameters": dict(task.hparams), "state_dict": task.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Shared:
    root = tmp_path_factory.mktemp("shared")
    info = {
        "dataset": "MeterML",
        "bands": {"s2": ["B02", "B03", "B04", "B08", "B05"], "naip": ["R", "G", "B", "NIR"]},
        "sensors": {"s2": "s2", "naip": "naip"},
        "classes": ["a", "b"],
    }
    pre = PretrainTask(in_channels={"s2": 5, "naip": 4}, backbone="tiny_cnn", data_info=info)
    pretrain_ckpt = _save(pre, root / "pretrain.ckpt")
    ft = FinetuneTask(in_channels={"s1": 2, "s2": 13}, backbone="tiny_cnn", num_classes=4)
    return Shared(
        pretrain_ckpt=pretrain_ckpt,
        finetune_ckpt=_save(ft, root / "finetune.ckpt"),
        export_dir=export_encoders(pretrain_ckpt, root / "export"),
    )


def snapshot(root: Path) -> dict[str, str]:
    """Every file (with a hash of its content) and folder under ``root``."""
    return {
        str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "/"
        for p in sorted(root.rglob("*"))
    }


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    errors = [line for line in lines if ERROR_LINE.match(line)]
    assert len(errors) == 1, stderr
    assert all(NOISE.match(line) for line in lines if line != errors[0]), stderr
    return errors[0]


@pytest.mark.parametrize("build", CASES)
def test_bad_input(
    build: Builder,
    shared: Shared,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # a run folder written by mistake would land here
    monkeypatch.delenv("RSMM_DEBUG", raising=False)
    bad = build(tmp_path, shared)
    before = snapshot(tmp_path)
    capfd.readouterr()
    if isinstance(bad, Cli):
        try:
            status = main(bad.argv)
        except SystemExit as exit_:  # argparse's own errors
            status = exit_.code
        assert status not in (0, None)
        message = _one_error_line(capfd.readouterr().err)
    else:
        assert isinstance(bad, Api) and issubclass(bad.error, RsmmError)
        with pytest.raises(bad.error) as caught:
            bad.call()
        message = str(caught.value)
        assert message and "\n" not in message.strip(), message
    for fragment in bad.mentions:
        assert fragment in message, message
    assert "Traceback" not in message
    assert snapshot(tmp_path) == before  # nothing written, changed or left behind
    for path in bad.absent:
        assert not path.exists(), path


def test_there_are_at_least_sixty_cases() -> None:
    assert len(CASES) >= 60
    names = [c.id for c in CASES]
    assert len(set(names)) == len(names)


def test_a_dataset_folder_named_like_its_dataset_is_data_not_a_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``rsmm manifest stats meterml meterml/`` in the folder holding ``meterml/``: the
    name is the packaged manifest (it was taken for a path: "manifest file not found")."""
    import json
    import shutil

    shutil.copytree(Path(__file__).parent / "data" / "meterml", tmp_path / "meterml")
    monkeypatch.chdir(tmp_path)
    argv = ["manifest", "stats", "meterml", "meterml", "--split", "test", "--max-samples", "2"]
    assert main(argv) == 0, capsys.readouterr().err
    stats = json.loads(capsys.readouterr().out)
    assert set(stats) == {"s1", "s2", "naip"} and set(stats["s1"]) == {"VV", "VH"}
