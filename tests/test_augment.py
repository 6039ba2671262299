"""Tests of the BandAugment pipeline and its presets (CPU, tiny batches)."""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib
import pytest
import torch
import yaml

from rsmm.augment import BandAugment, available_presets, load_preset
from rsmm.augment.geometry import output_position
from rsmm.augment.optical import grayscale_weights
from rsmm.augment.presets import PRESET_DIR
from rsmm.sensors import get_sensor

matplotlib.use("Agg")

SENSORS = {"s1": "s1", "s2": "s2", "naip": "naip"}
UNITS = {"s1": "db", "s2": "dn", "naip": "dn"}


def stats_for(bands: dict[str, int], mean: float = 0.0, std: float = 1.0) -> dict:
    return {m: (torch.full((c,), mean), torch.full((c,), std)) for m, c in bands.items()}


STATS = stats_for({"s1": 2, "s2": 13, "naip": 4})


def batch(n: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "s1": torch.randn(n, 2, 16, 16, generator=g) * 3 - 15,
        "s2": torch.rand(n, 13, 16, 16, generator=g) * 3000,
        "naip": torch.rand(n, 4, 64, 64, generator=g) * 255,
    }


# -- contract ----------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["eval", "mm_pretrain", "simclr_ms", "torchgeo_simclr"])
def test_shapes_and_dtypes_per_modality_and_view(preset: str) -> None:
    aug = BandAugment(SENSORS, STATS, preset=preset, views=3, units=UNITS, seed=0)
    b = batch()
    b["s2"] = b["s2"].double()
    b["naip"] = b["naip"].to(torch.uint8)
    out = aug(b)
    assert set(out) == set(b)
    for m, x in b.items():
        assert len(out[m]) == 3
        for v in out[m]:
            assert v.shape == x.shape
            assert v.dtype == (x.dtype if x.is_floating_point() else torch.float32)
            assert torch.isfinite(v).all()


def test_half_precision_input_keeps_its_dtype() -> None:
    aug = BandAugment({"s2": "s2"}, {"s2": STATS["s2"]}, preset="simclr_ms", seed=0)
    out = aug({"s2": batch()["s2"].half()})
    assert all(v.dtype == torch.float16 for v in out["s2"])


def test_eval_is_the_per_band_normalisation() -> None:
    mean, std = torch.rand(13) * 1000, torch.rand(13) * 100 + 1
    aug = BandAugment({"s2": "s2"}, {"s2": (mean, std)}, preset="eval", views=1)
    x = batch()["s2"]
    (v,) = aug({"s2": x})["s2"]
    torch.testing.assert_close(v, (x - mean[:, None, None]) / std[:, None, None])


def test_normalisation_picks_the_stats_of_a_band_subset_by_name() -> None:
    s2 = get_sensor("s2")
    by_band = {b: (100.0 * (i + 1), 10.0 * (i + 1)) for i, b in enumerate(s2.band_names)}
    subset = ["B08", "B04", "B11"]
    x = torch.rand(2, 3, 8, 8) * 3000
    aug = BandAugment({"s2": "s2"}, {"s2": by_band}, preset="eval", bands={"s2": subset}, views=1)
    (v,) = aug({"s2": x})["s2"]
    for c, b in enumerate(subset):
        m, s = by_band[b]
        torch.testing.assert_close(v[:, c], (x[:, c] - m) / s)
    # the (mean, std) form in subset order gives the same
    mean = torch.tensor([by_band[b][0] for b in subset])
    std = torch.tensor([by_band[b][1] for b in subset])
    aug2 = BandAugment({"s2": "s2"}, {"s2": (mean, std)}, preset="eval", bands={"s2": subset})
    torch.testing.assert_close(aug2({"s2": x})["s2"][0], v)
    with pytest.raises(ValueError, match=r"stats of modality 's2' have 13 means .* for 3 bands"):
        BandAugment({"s2": "s2"}, {"s2": STATS["s2"]}, preset="eval", bands={"s2": subset})


def test_band_list_as_sensor_value() -> None:
    aug = BandAugment(
        {"s2": ["B04", "B03"]}, {"s2": (torch.zeros(2), torch.ones(2))}, preset="eval"
    )
    assert aug.infos["s2"].bands == ("B04", "B03") and aug.infos["s2"].sensor.name == "s2"


def test_input_errors_name_the_modality() -> None:
    aug = BandAugment(SENSORS, STATS, preset="eval", units=UNITS)
    b = batch()
    with pytest.raises(ValueError, match=r"modality 's2': expected a B x 13"):
        aug({"s2": b["s2"][:, :4]})
    with pytest.raises(ValueError, match="different batch sizes"):
        aug({"s1": b["s1"], "s2": b["s2"][:2]})
    with pytest.raises(ValueError, match=r"not configured for"):
        aug({"rgb": torch.zeros(1, 3, 4, 4)})
    with pytest.raises(ValueError, match="no stats given for modality 'naip'"):
        BandAugment(SENSORS, {"s1": STATS["s1"], "s2": STATS["s2"]}, preset="eval")
    with pytest.raises(ValueError, match="views must be >= 1"):
        BandAugment(SENSORS, STATS, views=0)
    with pytest.raises(ValueError, match=r"modality 's2': unknown units 'kelvin'"):
        BandAugment(SENSORS, STATS, preset="eval", units={"s2": "kelvin"})
    with pytest.raises(ValueError, match="unknown band"):
        BandAugment({"s2": "s2"}, {"s2": STATS["s2"]}, bands={"s2": ["B13"]})


def test_units_errors_of_sar_ops_are_clear() -> None:
    with pytest.raises(ValueError, match=r"'speckle' cannot interpret modality 's1' .* units 'dn'"):
        BandAugment(SENSORS, STATS, preset="simclr_ms", units={**UNITS, "s1": "dn"})
    with pytest.raises(ValueError, match=r"pass units=\{'s1'"):
        BandAugment(SENSORS, STATS, preset="simclr_ms", units={"s2": "dn", "naip": "dn"})
    # no SAR op in the preset: units are not needed
    BandAugment(SENSORS, STATS, preset="mm_pretrain")


# -- geometry shared across resolutions --------------------------------------------------


def square_batch(n: int) -> dict[str, torch.Tensor]:
    """A bright square at the same ground position in a 16 x 16 S2 and a 64 x 64 NAIP
    chip: S2 rows 4-5, cols 10-11 = normalised x in [0.25, 0.5], y in [-0.5, -0.25]."""
    s2 = torch.zeros(n, 13, 16, 16)
    s2[:, :, 4:6, 10:12] = 1.0
    naip = torch.zeros(n, 4, 64, 64)
    naip[:, :, 16:24, 40:48] = 1.0
    return {"s2": s2, "naip": naip}


def centroid(img: torch.Tensor) -> torch.Tensor:
    """Intensity centroid (x, y) in normalised coordinates of N x H x W images."""
    _, h, w = img.shape
    wgt = img.clamp(min=0)
    ys = (torch.arange(h) + 0.5) / h * 2 - 1
    xs = (torch.arange(w) + 0.5) / w * 2 - 1
    tot = wgt.sum((-2, -1))
    cx = (wgt.sum(-2) * xs).sum(-1) / tot
    cy = (wgt.sum(-1) * ys).sum(-1) / tot
    return torch.stack([cx, cy], -1)


GEOMETRY_PRESET = {
    "geometry": {
        "resized_crop": {"p": 1.0, "scale": [0.8, 1.0], "ratio": [0.8, 1.25]},
        "hflip": 0.5,
        "vflip": 0.5,
        "rot90": 0.5,
    }
}


def test_shared_geometry_keeps_modalities_aligned_across_resolutions() -> None:
    n = 16
    aug = BandAugment(
        {"s2": "s2", "naip": "naip"},
        {"s2": STATS["s2"], "naip": STATS["naip"]},
        preset=GEOMETRY_PRESET,
        views=2,
        seed=1,
    )
    out, params = aug(square_batch(n), return_params=True)
    square_centre = torch.tensor([[0.375, -0.375]]).expand(n, 2)
    for v in range(2):
        geo = params["s2"][v]["geometry"]
        assert geo is params["naip"][v]["geometry"]
        c_s2 = centroid(out["s2"][v][:, 0])
        c_naip = centroid(out["naip"][v][:, 0])
        torch.testing.assert_close(c_s2, c_naip, atol=0.02, rtol=0)
        # and both are where the drawn transform sends the square (closed form)
        torch.testing.assert_close(c_naip, output_position(geo, square_centre), atol=0.02, rtol=0)
    # the transforms really varied (crops, flips and turns were drawn)
    assert geo["rot90"].unique().numel() > 1 and geo["hflip"].any() and (geo["half_size"] < 1).any()


def test_independent_geometry_misaligns_modalities() -> None:
    aug = BandAugment(
        {"s2": "s2", "naip": "naip"},
        {"s2": STATS["s2"], "naip": STATS["naip"]},
        preset=GEOMETRY_PRESET,
        views=1,
        shared_geometry=False,
        seed=1,
    )
    out, params = aug(square_batch(16), return_params=True)
    assert params["s2"][0]["geometry"] is not params["naip"][0]["geometry"]
    dist = (centroid(out["s2"][0][:, 0]) - centroid(out["naip"][0][:, 0])).norm(dim=1)
    assert int((dist > 0.1).sum()) >= 8


# -- kinds -------------------------------------------------------------------------------


def kind_preset(kind: str) -> dict:
    ops = {
        "optical": [
            {"op": "brightness", "p": 1.0},
            {"op": "contrast", "p": 1.0},
            {"op": "grayscale", "p": 1.0},
            {"op": "blur", "p": 1.0},
            {"op": "band_dropout", "p": 1.0},
        ],
        "sar": [
            {"op": "speckle", "p": 1.0},
            {"op": "db_offset", "p": 1.0},
            {"op": "blur", "p": 1.0},
            {"op": "band_dropout", "p": 1.0},
        ],
    }
    return {kind: ops[kind]}


def test_optical_ops_leave_sar_untouched_and_vice_versa() -> None:
    b = batch(4)
    ref = BandAugment(SENSORS, STATS, preset="eval", views=1, units=UNITS)(b)
    opt = BandAugment(SENSORS, STATS, preset=kind_preset("optical"), views=1, units=UNITS, seed=0)(
        b
    )
    sar = BandAugment(SENSORS, STATS, preset=kind_preset("sar"), views=1, units=UNITS, seed=0)(b)
    torch.testing.assert_close(opt["s1"][0], ref["s1"][0], atol=0, rtol=0)
    torch.testing.assert_close(sar["s2"][0], ref["s2"][0], atol=0, rtol=0)
    torch.testing.assert_close(sar["naip"][0], ref["naip"][0], atol=0, rtol=0)
    for m in ("s2", "naip"):
        assert (opt[m][0] - ref[m][0]).abs().max() > 0.1
    assert (sar["s1"][0] - ref["s1"][0]).abs().max() > 0.1


def test_colour_ops_in_the_sar_list_are_refused() -> None:
    with pytest.raises(ValueError, match=r"sar\[0\]: op 'brightness' is for optical sensors"):
        load_preset({"sar": [{"op": "brightness"}]})
    with pytest.raises(ValueError, match=r"optical\[0\]: op 'speckle' is for sar sensors"):
        load_preset({"optical": [{"op": "speckle"}]})


def test_radiometry_acts_on_stored_units_before_normalisation() -> None:
    # grayscale in stored units then normalisation: every band = (gray - mean_c) / std_c
    mean, std = torch.rand(4) * 50, torch.rand(4) * 20 + 1
    aug = BandAugment(
        {"naip": "naip"},
        {"naip": (mean, std)},
        preset={"optical": [{"op": "grayscale", "p": 1.0}]},
        views=1,
        seed=0,
    )
    x = batch()["naip"]
    (v,) = aug({"naip": x})["naip"]
    gray = torch.einsum("nchw,c->nhw", x, grayscale_weights(aug.infos["naip"]))
    torch.testing.assert_close(v, (gray[:, None] - mean[:, None, None]) / std[:, None, None])


def test_band_dropout_sets_bands_to_their_mean() -> None:
    mean, std = torch.rand(13) * 1000, torch.rand(13) * 100 + 1
    preset = {"optical": [{"op": "band_dropout", "p": 1.0, "bands": 3}]}
    aug = BandAugment({"s2": "s2"}, {"s2": (mean, std)}, preset=preset, views=1, seed=0)
    x = batch()["s2"]
    out, p = aug({"s2": x}, return_params=True)
    (v,) = out["s2"]
    dropped = p["s2"][0]["band_dropout"]["dropped"]
    assert bool((dropped.sum(1) == 3).all())
    ref = (x - mean[:, None, None]) / std[:, None, None]
    torch.testing.assert_close(v, torch.where(dropped[:, :, None, None], 0.0, ref))


# -- seeds -------------------------------------------------------------------------------


def test_same_seed_same_views_different_seeds_differ() -> None:
    b = batch()

    def run(seed: int | None) -> dict:
        return BandAugment(SENSORS, STATS, preset="simclr_ms", units=UNITS, seed=seed)(b)

    a1, a2, c = run(5), run(5), run(6)
    for m in b:
        for v1, v2, v3 in zip(a1[m], a2[m], c[m]):
            torch.testing.assert_close(v1, v2, atol=0, rtol=0)
            assert not torch.equal(v1, v3)
        assert not torch.equal(a1[m][0], a1[m][1])  # the two views differ
    # successive calls of one pipeline differ; manual_seed restarts the sequence
    aug = BandAugment(SENSORS, STATS, preset="simclr_ms", units=UNITS, seed=5)
    first, second = aug(b), aug(b)
    assert not torch.equal(first["s2"][0], second["s2"][0])
    torch.testing.assert_close(aug.manual_seed(5)(b)["s2"][0], first["s2"][0], atol=0, rtol=0)
    # seed=None follows torch's global generator
    torch.manual_seed(3)
    g1 = run(None)
    torch.manual_seed(3)
    g2 = run(None)
    torch.testing.assert_close(g1["s1"][1], g2["s1"][1], atol=0, rtol=0)


def test_return_params_describe_each_view() -> None:
    aug = BandAugment(SENSORS, STATS, preset="simclr_ms", views=2, units=UNITS, seed=0)
    out, params = aug(batch(5), return_params=True)
    assert set(params["s2"][0]) == {
        "geometry",
        "brightness",
        "contrast",
        "grayscale",
        "blur",
        "band_dropout",
    }
    assert set(params["s1"][0]) == {"geometry", "speckle", "db_offset", "blur"}
    assert params["s2"][0]["brightness"]["factor"].shape == (5, 13)
    assert params["s2"][1]["geometry"] is params["s1"][1]["geometry"]
    assert params["s2"][0]["geometry"]["theta"].shape == (5, 2, 3)
    # the parameters reproduce the view: brightness alone, applied by hand
    one = BandAugment(
        {"s2": "s2"},
        {"s2": STATS["s2"]},
        preset={"optical": [{"op": "brightness", "p": 0.5}]},
        seed=0,
    )
    x = batch(6)["s2"]
    out, p = one({"s2": x}, return_params=True)
    v = out["s2"][0]
    torch.testing.assert_close(v, x * p["s2"][0]["brightness"]["factor"][:, :, None, None])


# -- presets -----------------------------------------------------------------------------


def test_named_presets_load_by_name_path_and_dict() -> None:
    assert {"eval", "mm_pretrain", "simclr_ms", "torchgeo_simclr"} <= set(available_presets())
    p = load_preset("mm_pretrain")
    assert p.geometry.scale == (0.9, 1.0) and p.geometry.hflip == 0.5 and p.geometry.vflip == 0.5
    assert p.ops == {"optical": [], "sar": []}
    assert load_preset(PRESET_DIR / "mm_pretrain.yaml").geometry == p.geometry
    with open(PRESET_DIR / "simclr_ms.yaml") as f:
        spec = yaml.safe_load(f)
    assert [op.name for op in load_preset(spec).ops["sar"]] == ["speckle", "db_offset", "blur"]
    e = load_preset("eval")
    assert e.geometry.is_identity and not any(e.ops.values())


def test_preset_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown augmentation preset 'strong'.*mm_pretrain"):
        load_preset("strong")
    with pytest.raises(FileNotFoundError, match=r"missing\.yaml"):
        load_preset(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("geometry:\n  hflip: 1.5\n")
    with pytest.raises(ValueError, match=r"geometry.hflip must be in \[0, 1\].*bad.yaml"):
        load_preset(bad)
    with pytest.raises(ValueError, match="unknown key"):
        load_preset({"colour": []})
    with pytest.raises(ValueError, match=r"scale must lie in \(0, 1\]"):
        load_preset({"geometry": {"resized_crop": {"scale": [0.5, 1.5]}}})


def test_torchgeo_simclr_preset_mirrors_torchgeo() -> None:
    from rsmm.compat import simclr_augmentations

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tg = {type(m).__name__: m for m in simclr_augmentations(64, torch.ones(13)).children()}
    ours = load_preset("torchgeo_simclr")
    g = ours.geometry
    crop = tg["RandomResizedCrop"]
    assert (g.crop_p, g.scale, g.ratio) == (
        crop.p,
        tuple(crop._param_generator.scale),
        tuple(crop._param_generator.ratio),
    )
    assert (g.hflip, g.vflip, g.rot90) == (
        tg["RandomHorizontalFlip"].p,
        tg["RandomVerticalFlip"].p,
        0.0,
    )
    ops = {op.name: op for op in ours.ops["optical"]}
    assert list(ops) == ["brightness", "contrast", "grayscale", "blur"]
    assert ops["brightness"].p == tg["RandomBrightness"].p
    assert ops["brightness"].factor == pytest.approx(tg["RandomBrightness"].brightness.tolist())
    assert ops["contrast"].p == tg["RandomContrast"].p
    assert ops["contrast"].factor == pytest.approx(tg["RandomContrast"].contrast.tolist())
    assert ops["grayscale"].p == tg["RandomGrayscale"].p
    info = BandAugment({"s2": "s2"}, {"s2": STATS["s2"]}, preset="eval").infos["s2"]
    torch.testing.assert_close(
        grayscale_weights(info, ops["grayscale"].weights), tg["RandomGrayscale"].flags["weights"]
    )
    blur = tg["RandomGaussianBlur"]
    assert ops["blur"].p == blur.p and ops["blur"].sigma == tuple(
        map(float, blur._param_generator.sigma)
    )
    from rsmm.augment.optical import blur_kernel_size

    assert (blur_kernel_size(ops["blur"].kernel_size, 64, 64),) * 2 == blur.flags["kernel_size"]


# -- plotting ----------------------------------------------------------------------------


def test_plot_views_one_row_per_panel_and_one_column_per_view() -> None:
    from rsmm.augment import plot_views

    b = batch(2)
    aug = BandAugment(SENSORS, STATS, preset="simclr_ms", views=2, units=UNITS, seed=0)
    fig = plot_views(
        b, aug(b), SENSORS, {m: i.bands for m, i in aug.infos.items()}, index=1, units=UNITS
    )
    # rows: S1 false colour, S2 true colour, NAIP RGB, NAIP NIR; columns: input + 2 views
    assert len(fig.axes) == 4 * 3
    assert fig.axes[0].get_title().startswith("S1") and fig.axes[1].get_title() == "view 1"
    with pytest.raises(ValueError, match="index 5"):
        plot_views(b, aug(b), SENSORS, {m: i.bands for m, i in aug.infos.items()}, index=5)


@pytest.mark.parametrize("preset", ["eval", "simclr_ms", "optical_only", "sar_only"])
def test_the_input_batch_is_never_modified(preset: str) -> None:
    spec = {"optical_only": kind_preset("optical"), "sar_only": kind_preset("sar")}.get(
        preset, preset
    )
    b = batch(4)
    b["s2"] = b["s2"].double()
    copy = {m: x.clone() for m, x in b.items()}
    BandAugment(SENSORS, STATS, preset=spec, views=2, units=UNITS, seed=0)(b)
    for m in b:
        torch.testing.assert_close(b[m], copy[m], atol=0, rtol=0)
