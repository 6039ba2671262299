"""Exported encoders load in timm without rsmm: each modality's folder is a timm local
pretrained model (``local-dir:``) and its ``model.safetensors`` a timm checkpoint, both
giving exactly the features of ``rsmm.export.load_encoder``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm
import torch

import rsmm.models  # noqa: F401  (registers tiny_cnn with timm, as config.json asks)
from rsmm.errors import ExportError
from rsmm.export import META_FILE, export_encoders, load_encoder
from rsmm.models.timm_folder import read_timm_folder
from rsmm.tasks import PretrainTask

S2 = ["B02", "B03", "B04", "B08", "B05"]


def export(tmp_path: Path, backbone: str) -> Path:
    info = {
        "dataset": "SyntheticMultiModal",
        "bands": {"s1": ["VV", "VH"], "s2": S2},
        "units": {"s1": "db", "s2": "reflectance_x1e4"},
        "sensors": {"s1": "s1", "s2": "s2"},
        "mean": {"s1": [-12.0, -19.0], "s2": [900.0, 1100.0, 1000.0, 2500.0, 1400.0]},
        "std": {"s1": [4.0, 5.0], "s2": [300.0, 320.0, 400.0, 800.0, 500.0]},
        "gsd": {"s1": 10.0, "s2": 10.0},
    }
    task = PretrainTask(in_channels={"s1": 2, "s2": 5}, backbone=backbone, data_info=info)
    torch.manual_seed(0)
    with torch.no_grad():  # trained-looking batch-norm statistics, so eval mode matters
        for name, buf in task.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_()
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 2.0)
    ckpt = tmp_path / f"{backbone}.ckpt"
    torch.save({"hyper_parameters": dict(task.hparams), "state_dict": task.state_dict()}, ckpt)
    return export_encoders(ckpt, tmp_path / f"enc-{backbone}")


@pytest.mark.parametrize("backbone", ["tiny_cnn", "resnet18"])
def test_timm_loads_the_folder_and_its_checkpoint_with_the_same_features(
    tmp_path: Path, backbone: str
) -> None:
    out = export(tmp_path, backbone)
    folder = out / "s2"
    x = torch.randn(2, 5, 24, 24)
    with torch.no_grad():
        ref = load_encoder(out, "s2", bands=S2)(x)
        local = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
        ckpt = timm.create_model(
            backbone, in_chans=5, num_classes=0, checkpoint_path=str(folder / "model.safetensors")
        ).eval()
        assert (local(x) - ref).abs().max().item() == 0
        assert (ckpt(x) - ref).abs().max().item() == 0
    assert list(local.pretrained_cfg["mean"]) == [900.0, 1100.0, 1000.0, 2500.0, 1400.0]
    assert json.loads((out / META_FILE).read_text())["modalities"]["s2"]["timm_folder"] == "s2"


def test_config_json_layout(tmp_path: Path) -> None:
    out = export(tmp_path, "tiny_cnn")
    config, tensors = read_timm_folder(out / "s1")
    assert set(tensors) == set(load_encoder(out, "s1").state_dict())
    assert config["architecture"] == "tiny_cnn" and config["num_classes"] == 0
    assert config["num_features"] == 16 and config["model_args"] == {"in_chans": 2}
    cfg = config["pretrained_cfg"]
    assert cfg["mean"] == [-12.0, -19.0] and cfg["std"] == [4.0, 5.0]
    assert cfg["input_size"][0] == 2 and cfg["num_classes"] == 0
    assert "first_conv" not in cfg  # timm < 1.0.31 would re-initialise a non-RGB first conv
    # band names and units at the top level: timm rejects unknown pretrained_cfg keys
    assert "bands" not in cfg and "units" not in cfg
    assert (config["bands"], config["units"], config["gsd"]) == (["VV", "VH"], "db", 10.0)
    assert "import rsmm.models" in config["requires"]
    assert "local-dir:s1" in (out / "s1" / "README.md").read_text()
    timm.models.PretrainedCfg(**cfg)  # every key is one timm knows
    resnet = export(tmp_path, "resnet18")
    assert "requires" not in read_timm_folder(resnet / "s2")[0]


def test_reading_a_broken_folder_names_it(tmp_path: Path) -> None:
    (tmp_path / "f").mkdir()
    with pytest.raises(ExportError, match="is not a readable timm model folder"):
        read_timm_folder(tmp_path / "f")
