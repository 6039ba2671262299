"""Fine-tuning from pre-trained weights refuses encoders that do not fit: another
backbone, or bands in another order, from a checkpoint or an export directory."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch

from rsmm.export import ExportError, export_encoders, load_encoder
from rsmm.tasks import FinetuneTask, PretrainTask
from rsmm.tasks.finetune import CheckpointError

S2 = ["B02", "B03", "B04", "B08"]


def pretrain_checkpoint(
    path: Path, backbone: str = "tiny_cnn", bands: list[str] = S2, **kw: Any
) -> Path:
    """A PretrainTask checkpoint (hyper-parameters + state dict, as Lightning saves them)."""
    info = {"dataset": "SyntheticMultiModal", "bands": {"s1": ["VV", "VH"], "s2": list(bands)}}
    task = PretrainTask(
        in_channels={"s1": 2, "s2": len(bands)}, backbone=backbone, data_info=info, **kw
    )
    torch.save({"hyper_parameters": dict(task.hparams), "state_dict": task.state_dict()}, path)
    return path


def finetune(pretrained: Path, backbone: str = "tiny_cnn", bands: list[str] | None = S2, **kw):
    info = None if bands is None else {"bands": {"s2": list(bands)}, "classes": ["a", "b", "c"]}
    return FinetuneTask(
        in_channels={"s2": 4},
        backbone=backbone,
        pretrained=str(pretrained),
        num_classes=3,
        data_info=info,
        **kw,
    )


def test_matching_checkpoint_loads_its_backbone(tmp_path: Path) -> None:
    ckpt = pretrain_checkpoint(tmp_path / "pre.ckpt", projection_dim=32)
    ref = torch.load(ckpt, weights_only=True)["state_dict"]
    task = finetune(ckpt)  # projectors differ (alpha = 0: none): allowed
    own = task.encoder.backbones["s2"].state_dict()
    assert own and all(torch.equal(v, ref[f"encoder.backbones.s2.{k}"]) for k, v in own.items())


def test_checkpoint_of_another_backbone_is_refused(tmp_path: Path) -> None:
    ckpt = pretrain_checkpoint(tmp_path / "tiny.ckpt", backbone="tiny_cnn")
    with pytest.raises(CheckpointError, match=re.escape(str(ckpt))) as err:
        finetune(ckpt, backbone="resnet18")
    assert "tiny_cnn" in str(err.value) and "resnet18" in str(err.value)
    assert "missing tensors" in str(err.value) and "unexpected tensors" in str(err.value)


def test_band_order_differs_is_refused(tmp_path: Path) -> None:
    ckpt = pretrain_checkpoint(tmp_path / "pre.ckpt", bands=S2)
    shuffled = ["B04", "B03", "B02", "B08"]  # same count, same bands: shapes all fit
    with pytest.raises(CheckpointError, match=re.escape(str(ckpt))) as err:
        finetune(ckpt, bands=shuffled)
    msg = str(err.value)
    assert str(S2) in msg and str(shuffled) in msg and "another order" in msg
    other = ["B02", "B03", "B04", "B05"]
    with pytest.raises(CheckpointError, match="other bands"):
        finetune(ckpt, bands=other)
    finetune(ckpt, bands=None)  # the model's bands unknown (no datamodule): nothing to compare


def test_export_directory_gets_the_same_checks(tmp_path: Path) -> None:
    ckpt = pretrain_checkpoint(tmp_path / "pre.ckpt", backbone="tiny_cnn")
    out = export_encoders(ckpt, tmp_path / "enc")
    ref = load_encoder(out, "s2", bands=S2)
    task = finetune(out)
    for k, v in ref.state_dict().items():
        assert torch.equal(task.encoder.backbones["s2"].state_dict()[k], v)
    with pytest.raises(CheckpointError, match=re.escape(str(out))) as err:
        finetune(out, backbone="resnet18")
    assert "tiny_cnn" in str(err.value)
    with pytest.raises(CheckpointError, match="another order"):
        finetune(out, bands=["B08", "B02", "B03", "B04"])
    # load_encoder checks the caller's band order too
    with pytest.raises(ExportError, match=r"\['B08', 'B02', 'B03', 'B04'\]"):
        load_encoder(out, "s2", bands=["B08", "B02", "B03", "B04"])


def test_load_encoder_names_a_tampered_weights_file(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    out = export_encoders(pretrain_checkpoint(tmp_path / "pre.ckpt"), tmp_path / "enc")
    tensors = load_file(str(out / "s2.safetensors"))
    dropped = sorted(tensors)[0]
    del tensors[dropped]
    save_file(tensors, str(out / "s2.safetensors"))
    with pytest.raises(ExportError, match=r"s2\.safetensors does not fit") as err:
        load_encoder(out, "s2")
    assert dropped in str(err.value)


def test_load_from_checkpoint_does_not_need_the_pretraining_file(tmp_path: Path) -> None:
    import lightning

    pre = pretrain_checkpoint(tmp_path / "pre.ckpt")
    task = finetune(pre)
    ckpt = tmp_path / "ft.ckpt"
    torch.save(
        {
            "hyper_parameters": dict(task.hparams),
            "state_dict": task.state_dict(),
            "pytorch-lightning_version": lightning.__version__,
        },
        ckpt,
    )
    pre.unlink()  # the pre-training file has moved away
    restored = FinetuneTask.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True)
    for k, v in task.state_dict().items():
        assert torch.equal(restored.state_dict()[k], v), k
    with pytest.raises(CheckpointError, match="not found"):  # a fresh task still needs it
        finetune(pre)
