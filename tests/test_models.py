"""Backbones, weight files and the multimodal encoder."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from rsmm.models import MultiModalEncoder, WeightsError, build_backbone, load_backbone_weights


def test_small_alexnet_registered_with_timm() -> None:
    net = timm.create_model("small_alexnet", in_chans=13, num_classes=0)
    assert net(torch.randn(2, 13, 72, 72)).shape == (2, 256)
    assert net.forward_features(torch.randn(2, 13, 72, 72)).shape == (2, 256, 9, 9)


def test_weights_with_other_band_count_are_adapted(tmp_path: Path) -> None:
    src = build_backbone("resnet18", 3)
    sd = {f"model.{k}": v for k, v in src.state_dict().items()}  # torchgeo-style prefix
    torch.save({"state_dict": sd, "hyper_parameters": {"model": "resnet18"}}, tmp_path / "w.ckpt")
    dst = build_backbone("resnet18", 13)
    missing, unexpected = load_backbone_weights(dst, tmp_path / "w.ckpt")
    assert missing == [] and unexpected == []
    # timm's adapt_input_conv: RGB kernels repeated over 13 bands, scaled by 3/13
    w3, w13 = src.conv1.weight, dst.conv1.weight
    torch.testing.assert_close(w13[:, 3:6], w3 * 3 / 13)
    torch.testing.assert_close(dst.layer1[0].conv1.weight, src.layer1[0].conv1.weight)


def test_weights_file_errors(tmp_path: Path) -> None:
    net = build_backbone("tiny_cnn", 2)
    with pytest.raises(WeightsError, match="not found"):
        load_backbone_weights(net, tmp_path / "none.pth")
    (tmp_path / "bad.pth").write_bytes(b"junk")
    with pytest.raises(WeightsError, match="cannot read"):
        load_backbone_weights(net, tmp_path / "bad.pth")
    save_file({"foo": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(WeightsError, match="no tensor matches"):
        load_backbone_weights(net, tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("not_a_model", 3)


def test_multimodal_encoder_layout_and_weights(tmp_path: Path) -> None:
    s1 = build_backbone("tiny_cnn", 2)
    save_file(s1.state_dict(), str(tmp_path / "s1.safetensors"))
    enc = MultiModalEncoder(
        {"s1": 2, "s2": 13},
        backbone={"s1": "tiny_cnn", "s2": "small_alexnet"},
        weights={"s1": str(tmp_path / "s1.safetensors"), "s2": None},
        projection_dim=8,
    )
    for k, v in s1.state_dict().items():
        assert torch.equal(enc.backbones["s1"].state_dict()[k], v)
    views = {"s1": [torch.randn(3, 2, 16, 16)] * 2, "s2": [torch.randn(3, 13, 16, 16)]}
    embedded = enc.embed_views(views)
    z, feats, groups = embedded.flat(), embedded.features, embedded.groups()
    assert z.shape == (9, 8)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(9))
    assert groups.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert feats["s1"].shape == (6, 16) and feats["s2"].shape == (3, 256)
    assert enc.fused({"s1": views["s1"][0], "s2": views["s2"][0]}).shape == (3, 16 + 256)
    with pytest.raises(ValueError, match="no entry for modalities"):
        MultiModalEncoder({"s1": 2, "s2": 13}, backbone={"s1": "tiny_cnn"})
