"""rsmm.checkpoints: reading checkpoints and exports, what a checkpoint is (including
checkpoints written before tasks recorded it), band and state-dict fit checks, and
restoring a task without a module-global flag."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import lightning
import pytest
import torch
from helpers import cpu_trainer

import rsmm.checkpoints as checkpoints
from rsmm.checkpoints import (
    FINETUNE,
    PRETRAIN,
    TASK_KEY,
    CheckpointRecord,
    band_mismatch,
    check_bands,
    check_checkpoint,
    read_checkpoint,
    read_export,
    read_record,
)
from rsmm.datamodules import SyntheticDataModule
from rsmm.errors import CheckpointError, ExportError
from rsmm.export import META_FILE, export_encoders
from rsmm.tasks import FinetuneTask, PretrainTask

S2 = ["B02", "B03", "B04", "B08"]
INFO = {
    "dataset": "MeterML",
    "bands": {"s1": ["VV", "VH"], "s2": S2},
    "gsd": {"s1": 10.0, "s2": 10.0},
}


def save(task: Any, path: Path, drop: tuple[str, ...] = (), **hp: Any) -> Path:
    """A task checkpoint as Lightning writes it; ``drop`` removes hyper-parameters (as
    older rsmm wrote them), ``hp`` adds some."""
    hparams = {k: v for k, v in dict(task.hparams).items() if k not in drop} | hp
    torch.save(
        {
            "hyper_parameters": hparams,
            "state_dict": task.state_dict(),
            "pytorch-lightning_version": lightning.__version__,
        },
        path,
    )
    return path


def pretrain(**kw: Any) -> PretrainTask:
    kw = {
        "in_channels": {"s1": 2, "s2": 4},
        "backbone": {"s1": "tiny_cnn", "s2": "small_alexnet"},
        "data_info": INFO,
    } | kw
    return PretrainTask(**kw)


def finetune(**kw: Any) -> FinetuneTask:
    kw = {"in_channels": {"s2": 13}, "backbone": "tiny_cnn", "num_classes": 5} | kw
    return FinetuneTask(**kw)


def test_tasks_record_what_they_are() -> None:
    assert pretrain().hparams[TASK_KEY] == PRETRAIN
    assert finetune().hparams[TASK_KEY] == FINETUNE


def test_record_of_a_checkpoint(tmp_path: Path) -> None:
    task = pretrain()
    ckpt = save(task, tmp_path / "pre.ckpt")
    record = read_record(ckpt)
    assert record.path == ckpt
    assert (record.task, record.task_class) == (PRETRAIN, "PretrainTask")
    assert record.modalities == ["s1", "s2"] and record.in_channels == {"s1": 2, "s2": 4}
    assert record.architectures == {"s1": "tiny_cnn", "s2": "small_alexnet"}
    assert record.bands == {"s1": ["VV", "VH"], "s2": S2}
    assert record.gsd == {"s1": 10.0, "s2": 10.0}
    hp, sd = read_checkpoint(ckpt)
    assert hp == record.hparams and hp[TASK_KEY] == PRETRAIN
    assert sd.keys() == task.state_dict().keys()
    assert all(torch.equal(sd[k], v) for k, v in task.state_dict().items())


def test_gsd_of_a_checkpoint_without_it_comes_from_the_dataset_class(tmp_path: Path) -> None:
    info = {k: v for k, v in INFO.items() if k != "gsd"}
    record = read_record(save(pretrain(data_info=info), tmp_path / "a.ckpt"))
    assert record.gsd == {"s1": 10.0, "s2": 10.0}  # MeterML.gsd
    task = PretrainTask(
        in_channels={"s2": 4, "naip": 4},
        backbone="tiny_cnn",
        data_info={"dataset": "SyntheticMultiModal"},
    )
    ckpt = tmp_path / "synthetic.ckpt"
    torch.save(
        {
            "hyper_parameters": dict(task.hparams),
            "state_dict": task.state_dict(),
            "datamodule_hyper_parameters": {"naip_scale": 5},
        },
        ckpt,
    )
    assert read_record(ckpt).gsd == {"s2": 10.0, "naip": 2.0}  # 10 m / naip_scale


@pytest.mark.parametrize(
    ("make", "kind", "cls"),
    [(pretrain, PRETRAIN, "PretrainTask"), (finetune, FINETUNE, "FinetuneTask")],
)
def test_checkpoints_written_before_rsmm_task_are_recognised(
    tmp_path: Path, make: Any, kind: str, cls: str
) -> None:
    ckpt = save(make(), tmp_path / "old.ckpt", drop=(TASK_KEY,))
    assert TASK_KEY not in read_checkpoint(ckpt)[0]
    record = read_record(ckpt)
    assert (record.task, record.task_class) == (kind, cls)
    meta = (export_encoders(ckpt, tmp_path / "e") / META_FILE).read_text()
    assert f'"task": "{cls}"' in meta
    # LightningCLI's record of the class, without rsmm_task
    other = save(make(), tmp_path / "cli.ckpt", drop=(TASK_KEY,), _class_path=f"x.{cls}")
    assert read_record(other).task == kind


def test_a_checkpoint_of_no_known_task(tmp_path: Path) -> None:
    # the arguments of both tasks: nothing tells which
    ckpt = save(pretrain(), tmp_path / "x.ckpt", drop=(TASK_KEY,), freeze_backbone=True)
    record = read_record(ckpt)
    assert record.task is None and record.task_class is None
    card = (export_encoders(ckpt, tmp_path / "e") / "MODEL_CARD.md").read_text()
    assert "- Method: unknown rsmm task, loss `ntxent`" in card


def test_reading_an_export(tmp_path: Path) -> None:
    task = pretrain()
    out = export_encoders(save(task, tmp_path / "p.ckpt"), tmp_path / "enc")
    meta, tensors = read_export(out, ["s2"])
    assert list(tensors) == ["s2"] and meta["modalities"]["s2"]["bands"] == S2
    ref = task.encoder.backbones["s2"].state_dict()
    assert tensors["s2"].keys() == ref.keys()
    assert all(torch.equal(tensors["s2"][k], v) for k, v in ref.items())
    with pytest.raises(ExportError, match=r"no encoder for \['naip'\]"):
        read_export(out, ["naip"])
    with pytest.raises(ExportError, match=re.escape(f"{tmp_path} is not an rsmm export")):
        read_export(tmp_path)


def test_unreadable_checkpoints_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=re.escape(f"checkpoint not found: {tmp_path / 'no'}")):
        read_record(tmp_path / "no")
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ExportError, match=re.escape(f"cannot read checkpoint {bad}")):
        read_checkpoint(bad)
    torch.save({"hyper_parameters": {}, "state_dict": {}}, bad)
    with pytest.raises(ExportError, match="not an rsmm task checkpoint"):
        read_checkpoint(bad)


def test_band_mismatch_names_the_file_and_both_lists(tmp_path: Path) -> None:
    src = tmp_path / "enc"
    assert band_mismatch(src, "s2", S2, S2) is None
    assert band_mismatch(src, "s2", None, S2) is None and band_mismatch(src, "s2", S2, None) is None
    shuffled = ["B04", "B03", "B02", "B08"]
    with pytest.raises(ExportError) as err:
        check_bands(src, "s2", S2, shuffled)
    msg = str(err.value)
    assert msg.startswith(f"{src}: the s2 encoder") and str(S2) in msg and str(shuffled) in msg
    assert "the same bands in another order" in msg
    assert "(other bands)" in band_mismatch(src, "s2", S2, ["B05", "B03", "B04", "B08"])


def test_check_checkpoint_refuses_another_task(tmp_path: Path) -> None:
    ckpt = save(pretrain(), tmp_path / "pre.ckpt")
    assert check_checkpoint(ckpt, PRETRAIN).task == PRETRAIN
    assert isinstance(check_checkpoint(ckpt), CheckpointRecord)
    with pytest.raises(CheckpointError, match=re.escape(str(ckpt))) as err:
        check_checkpoint(ckpt, FINETUNE)
    assert "does not fit this model" in str(err.value) and "PretrainTask" in str(err.value)


def test_a_run_restoring_a_checkpoint_that_does_not_fit_is_a_checkpoint_error(
    tmp_path: Path,
) -> None:
    ckpt = save(finetune(num_classes=5), tmp_path / "five.ckpt")
    dm = SyntheticDataModule(modalities=("s2",), num_samples=8, size=8, batch_size=8)
    model = finetune(num_classes=3)  # its head has 3 outputs, the checkpoint's 5
    with pytest.raises(CheckpointError, match=re.escape(f"checkpoint {ckpt} does not fit")) as err:
        cpu_trainer(tmp_path).test(model, dm, ckpt_path=str(ckpt), weights_only=True)
    assert "shape mismatches" in str(err.value) and "(5, " in str(err.value)


def test_restoring_reads_no_pretraining_file_and_keeps_its_record(tmp_path: Path) -> None:
    pre = save(PretrainTask(in_channels={"s2": 13}, backbone="tiny_cnn"), tmp_path / "pre.ckpt")
    task = finetune(pretrained=str(pre))
    ft = save(task, tmp_path / "ft.ckpt")
    pre.unlink()  # the pre-training file has moved away
    # a run restoring the checkpoint builds the task with pretrained=None, as `rsmm test`
    model = finetune(pretrained=None)
    dm = SyntheticDataModule(modalities=("s2",), num_samples=8, size=8, batch_size=8)
    cpu_trainer(tmp_path).test(model, dm, ckpt_path=str(ft), weights_only=True, verbose=False)
    assert model.hparams.pretrained == str(pre)  # the checkpoint's record of its start
    for k, v in task.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_no_module_global_restore_flag() -> None:
    from contextvars import ContextVar

    import rsmm.checkpoints.pretrained
    import rsmm.tasks.base
    import rsmm.tasks.finetune

    for module in (checkpoints, rsmm.checkpoints.pretrained, rsmm.tasks.finetune, rsmm.tasks.base):
        flags = [n for n, v in vars(module).items() if isinstance(v, ContextVar)]
        assert not flags, (module.__name__, flags)
    assert not hasattr(rsmm.tasks.finetune, "weights_from_checkpoint")


def test_export_and_checkpoints_do_not_import_the_tasks() -> None:
    code = (
        "import sys, rsmm.export, rsmm.checkpoints; "
        "assert not [m for m in sys.modules if m.startswith('rsmm.tasks')], "
        "sorted(m for m in sys.modules if m.startswith('rsmm.tasks'))"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
