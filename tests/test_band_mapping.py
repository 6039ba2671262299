"""Weights from TorchGeo's model zoo: the input convolution mapped by band name (drop,
reorder, add), the normalisation the weights expect folded in, and how rsmm learns a
file's band list (TorchGeo's file name or WeightsEnum name, a sidecar JSON)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import timm
import torch
import torch.nn.functional as F

from rsmm.errors import WeightsError
from rsmm.export import load_encoder
from rsmm.models import build_backbone, load_backbone_weights
from rsmm.models.band_mapping import (
    BandMapping,
    fold_input_normalisation,
    map_input_conv,
    normalise_band,
)
from rsmm.models.weights_info import describe_weights, torchgeo_weights, write_sidecar
from rsmm.tasks import FinetuneTask

#: TorchGeo's spelling of the SSL4EO-S12 Sentinel-2 L1C bands (torchgeo/models/resnet.py)
TG13 = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8a", "B9", "B10", "B11", "B12"]
#: rsmm's 12-band L2A (no B10)
L2A = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
NO_B10 = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12]
#: the name TorchGeo downloads ResNet18_Weights.SENTINEL2_ALL_MOCO under
TG_FILE = "resnet18_sentinel2_all_moco-59bfdff9.pth"


def conv_sd(channels: int, out: int = 6) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {"conv1.weight": torch.randn(out, channels, 3, 3), "fc.weight": torch.randn(2, 3)}


@pytest.fixture(scope="module")
def torchgeo_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A ResNet-18 state dict saved as TorchGeo's SSL4EO-S12 file is (plain timm keys,
    no classifier), under TorchGeo's file name; batch-norm statistics made non-trivial."""
    torch.manual_seed(1)
    net = timm.create_model("resnet18", in_chans=13, num_classes=0)
    with torch.no_grad():
        net.bn1.running_mean.normal_()
        net.bn1.running_var.uniform_(0.5, 2.0)
    path = tmp_path_factory.mktemp("tg") / TG_FILE
    sd = {k: v.clone() for k, v in net.state_dict().items()}
    torch.save(sd, path)
    return path, sd


def test_band_names_are_normalised() -> None:
    assert [normalise_band(b) for b in ("B1", "b01", "B8a", "B08A", "B08", "vv", "SR_B1")] == [
        "B01",
        "B01",
        "B8A",
        "B8A",
        "B08",
        "VV",
        "SR_B1",
    ]


def test_torchgeo_13_bands_to_12_band_l2a_drops_b10() -> None:
    sd = conv_sd(13)
    out, mapping = map_input_conv(sd, "conv1.weight", TG13, L2A)
    assert torch.equal(out["conv1.weight"], sd["conv1.weight"][:, NO_B10])
    assert mapping.dropped == ("B10",) and mapping.added == () and mapping.scale == 1.0
    assert torch.equal(out["fc.weight"], sd["fc.weight"])  # other tensors untouched
    assert sd["conv1.weight"].shape[1] == 13  # input not modified
    assert "dropped B10" in mapping.describe()


def test_reorder_and_subset_select_channels_by_name() -> None:
    sd = conv_sd(13)
    out, mapping = map_input_conv(sd, "conv1.weight", TG13, ["B04", "B03", "B02", "B8A"])
    assert torch.equal(out["conv1.weight"], sd["conv1.weight"][:, [3, 2, 1, 8]])
    assert mapping.index == (3, 2, 1, 8) and mapping.scale == 1.0
    same, m = map_input_conv(sd, "conv1.weight", TG13, [b.upper() for b in TG13])
    assert m.is_identity and same["conv1.weight"] is sd["conv1.weight"]


def test_an_added_band_gets_the_mean_kernel_and_the_layer_is_rescaled() -> None:
    sd = conv_sd(4)
    w = sd["conv1.weight"]
    target = ["B02", "B05", "B03", "B04", "B08"]  # B05 is not in the weights
    out, mapping = map_input_conv(sd, "conv1.weight", ["B2", "B3", "B4", "B8"], target)
    assert mapping.added == ("B05",) and mapping.scale == 4 / 5
    mean = w.mean(dim=1)
    expected = torch.stack([w[:, 0], mean, w[:, 1], w[:, 2], w[:, 3]], dim=1) * 0.8
    torch.testing.assert_close(out["conv1.weight"], expected, rtol=0, atol=1e-6)
    # inputs that move together: the response is the matched bands' response
    x = torch.ones(1, 5, 3, 3)
    torch.testing.assert_close(
        F.conv2d(x, out["conv1.weight"]), F.conv2d(torch.ones(1, 4, 3, 3), w), rtol=1e-5, atol=1e-5
    )
    assert mapping.select([1.0, 2.0, 3.0, 4.0]) == [1.0, 2.5, 2.0, 3.0, 4.0]


def test_no_matching_band_or_a_wrong_band_count_is_refused() -> None:
    with pytest.raises(WeightsError, match="no band name matches"):
        map_input_conv(conv_sd(2), "conv1.weight", ["VV", "VH"], ["B02", "B03"])
    with pytest.raises(WeightsError, match="not 13 input channels"):
        map_input_conv(conv_sd(12), "conv1.weight", TG13, L2A)
    with pytest.raises(WeightsError, match="names B01 twice"):
        BandMapping.between(["B1", "B01"], ["B01"])


def test_normalisation_is_folded_exactly_away_from_the_border() -> None:
    torch.manual_seed(2)
    w = torch.randn(5, 3, 3, 3, dtype=torch.float64)
    expected = ([0.0], [10000.0])  # TorchGeo's SSL4EO-S12: x / 10000
    given = ([1200.0, 900.0, 2500.0], [400.0, 300.0, 1100.0])  # rsmm's per-band statistics
    folded, shift = fold_input_normalisation(w, expected, given)
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64) * 4000
    mean, std = (torch.tensor(v, dtype=torch.float64)[:, None, None] for v in given)
    trained_on = F.conv2d(x / 10000, w)
    fed = F.conv2d((x - mean) / std, folded) + shift[:, None, None]
    torch.testing.assert_close(fed, trained_on)


def test_torchgeo_metadata_is_read_from_the_installed_torchgeo() -> None:
    by_name = torchgeo_weights("ResNet50_Weights.SENTINEL2_ALL_MOCO")
    assert by_name is not None and list(by_name.bands) == TG13
    assert by_name.architecture == "resnet50"
    assert by_name.normalisation() == ([0.0] * 13, [10000.0] * 13)
    by_file = torchgeo_weights("resnet50_sentinel2_all_moco-df8b932e.pth")
    assert by_file == by_name
    s1 = torchgeo_weights("ResNet50_Weights.SENTINEL1_ALL_MOCO")
    assert s1 is not None and list(s1.bands) == ["VV", "VH"] and s1.mean == (-12.59, -20.26)


def test_torchgeo_file_into_a_12_band_model_folds_the_division_by_10000(
    torchgeo_file: tuple[Path, dict],
) -> None:
    path, sd = torchgeo_file
    mean = [1000.0 + 50 * i for i in range(12)]
    std = [400.0 + 20 * i for i in range(12)]
    net = build_backbone("resnet18", 12)
    with pytest.warns(UserWarning, match="dropped B10") as record:
        missing, unexpected = load_backbone_weights(net, path, L2A, (mean, std))
    assert missing == [] and unexpected == []
    assert len(record) == 1  # one warning; the normalisation was applied, not warned about
    w = sd["conv1.weight"][:, NO_B10]
    torch.testing.assert_close(net.conv1.weight, w * torch.tensor(std)[None, :, None, None] / 1e4)
    shift = (w * torch.tensor(mean)[None, :, None, None] / 1e4).sum(dim=(1, 2, 3))
    torch.testing.assert_close(net.bn1.running_mean, sd["bn1.running_mean"] - shift)
    torch.testing.assert_close(net.layer1[0].conv1.weight, sd["layer1.0.conv1.weight"])
    assert net.pretrained_cfg["mean"] == tuple(mean)  # the model now expects rsmm's statistics
    # what the first block sees: the same as TorchGeo's model on L1C / 10000 (B10 = 0)
    src = timm.create_model("resnet18", in_chans=13, num_classes=0)
    src.load_state_dict(sd)
    src.eval(), net.eval()
    x = torch.rand(2, 13, 32, 32) * 5000
    x[:, 10] = 0
    rsmm_input = (x[:, NO_B10] - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[
        :, None, None
    ]
    with torch.no_grad():
        a = src.bn1(src.conv1(x / 1e4))[..., 2:-2, 2:-2]
        b = net.bn1(net.conv1(rsmm_input))[..., 2:-2, 2:-2]
    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)


def test_load_encoder_takes_a_torchgeo_file_and_records_its_normalisation(
    torchgeo_file: tuple[Path, dict],
) -> None:
    path, sd = torchgeo_file
    with pytest.warns(UserWarning) as record:
        net = load_encoder(path, "s2", bands=["B04", "B03", "B02", "B08"])
    messages = [str(r.message) for r in record]
    assert any("dropped B1, B5, B6, B7, B8a, B9, B10, B11, B12" in m for m in messages)
    assert any("mean 0, std 10000" in m for m in messages)  # loud: not rsmm's standardisation
    assert torch.equal(net.conv1.weight, sd["conv1.weight"][:, [3, 2, 1, 7]])
    assert net.pretrained_cfg["mean"] == (0.0,) * 4 and net.pretrained_cfg["std"] == (1e4,) * 4
    assert not net.training and net(torch.rand(1, 4, 32, 32)).shape == (1, 512)


def test_a_weights_enum_name_stands_for_the_downloaded_file(
    torchgeo_file: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    name = "ResNet18_Weights.SENTINEL2_ALL_MOCO"
    with pytest.raises(WeightsError, match=f"{TG_FILE} not found.*get_weight"):
        load_encoder(name, "s2", bands=L2A)
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints" / TG_FILE).write_bytes(torchgeo_file[0].read_bytes())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = load_encoder(name, "s2", bands=L2A)
    assert torch.equal(net.conv1.weight, torchgeo_file[1]["conv1.weight"][:, NO_B10])


def test_finetune_from_a_torchgeo_file_starts_the_encoders_whose_bands_it_has(
    torchgeo_file: tuple[Path, dict],
) -> None:
    path, sd = torchgeo_file
    info = {
        "bands": {"s1": ["VV", "VH"], "s2": L2A},
        "mean": {"s1": [-10.0, -17.0], "s2": [0.0] * 12},
        "std": {"s1": [4.0, 5.0], "s2": [1e4] * 12},  # s2 already divided by 10000
        "classes": ["a", "b"],
    }
    with pytest.warns(UserWarning) as record:
        task = FinetuneTask(
            in_channels={"s1": 2, "s2": 12},
            backbone="resnet18",
            pretrained=str(path),
            num_classes=2,
            data_info=info,
        )
    messages = " | ".join(str(r.message) for r in record)
    assert "dropped B10" in messages and "no band of modalities ['s1']" in messages
    s2 = task.encoder.backbones["s2"]
    # inputs standardised with mean 0 / std 10000 are what the weights expect: no change
    torch.testing.assert_close(s2.conv1.weight, sd["conv1.weight"][:, NO_B10])
    torch.testing.assert_close(s2.bn1.running_mean, sd["bn1.running_mean"])
    assert torch.equal(s2.layer4[1].conv2.weight, sd["layer4.1.conv2.weight"])
    s1 = task.encoder.backbones["s1"]  # random weights
    assert not torch.equal(s1.layer1[0].conv1.weight, sd["layer1.0.conv1.weight"])


def test_finetune_refuses_torchgeo_weights_without_a_matching_band(
    torchgeo_file: tuple[Path, dict],
) -> None:
    with pytest.raises(WeightsError, match=f"{TG_FILE}: no band name of its bands"):
        FinetuneTask(
            in_channels={"s1": 2},
            backbone="resnet18",
            pretrained=str(torchgeo_file[0]),
            num_classes=2,
            data_info={"bands": {"s1": ["VV", "VH"]}},
        )


def test_a_sidecar_describes_a_renamed_file(tmp_path: Path) -> None:
    src = build_backbone("tiny_cnn", 4)
    path = tmp_path / "my-weights.pth"
    torch.save(src.state_dict(), path)
    assert describe_weights(path) is None
    with pytest.raises(WeightsError, match=r"band list unknown.*my-weights\.pth\.json"):
        load_encoder(path, "s2", bands=["B02"])
    write_sidecar(path, ["B2", "B3", "B4", "B8"], architecture="tiny_cnn", mean=0, std=1e4)
    assert json.loads((tmp_path / "my-weights.pth.json").read_text())["bands"][0] == "B2"
    info = describe_weights(path)
    assert info is not None and info.normalisation() == ([0.0] * 4, [1e4] * 4)
    net = build_backbone("tiny_cnn", 3)
    with pytest.warns(UserWarning, match="dropped B3 "):
        load_backbone_weights(net, path, ["B08", "B02", "B04"], ([0.0] * 3, [1e4] * 3))
    first = src.features[0].weight
    assert torch.equal(net.features[0].weight, first[:, [3, 0, 2]])
    (tmp_path / "my-weights.pth.json").write_text('{"bands": [], "colour": 1}')
    with pytest.raises(WeightsError, match=r"my-weights\.pth\.json: 'bands' must be"):
        describe_weights(path)


def test_pretraining_weights_option_maps_by_band_name(torchgeo_file: tuple[Path, dict]) -> None:
    from rsmm.tasks import PretrainTask

    path, sd = torchgeo_file
    with pytest.warns(UserWarning) as record:
        task = PretrainTask(
            in_channels={"s2": 4},
            backbone="resnet18",
            weights=str(path),
            data_info={"bands": {"s2": ["B04", "B03", "B02", "B08"]}},  # no statistics
        )
    assert any("std 10000" in str(r.message) for r in record)  # said loudly, not applied
    assert torch.equal(
        task.encoder.backbones["s2"].conv1.weight, sd["conv1.weight"][:, [3, 2, 1, 7]]
    )
