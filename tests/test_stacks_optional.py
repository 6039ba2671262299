"""User stacks: optional modalities (coverage column) and skipped bands of multi-band files."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
import torch
from pyproj import Transformer

from rsmm.cli import main
from rsmm.datamodules import CoRegisteredStackDataModule
from rsmm.datasets import CoRegisteredStack
from rsmm.datasets.stacks import NoCoveredChipsError
from rsmm.errors import DatasetFileError
from rsmm.io import write_geotiff
from rsmm.stacks import build_manifest, read_manifest, spec_from_dirs, write_manifest
from rsmm.stacks.spec import spec_from_dict

SCENE = Path(__file__).parent / "data" / "stacks" / "scene"
NAIP = SCENE / "naip" / "m_3807661_ne_18_200_20220815.tif"
S1 = "S1A_IW_20230603T232510_DV_RTC10_G_gpuned_5A2B_{}.tif"


def dirs(*mods: str) -> dict[str, Path]:
    return {m: SCENE / m for m in mods}


def build(path: Path, mods: dict[str, Path], **kw: object):
    # the one-CRS grid (the scene's S2 CRS) these tests check; --crs auto: test_stacks_zones
    kw = {"chip_size": "160m", "split": (1.0, 0.0, 0.0), "crs": "EPSG:32618", **kw}
    return read_manifest(write_manifest(build_manifest(spec_from_dirs(mods, **kw)), path))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Manifests of the committed scene, whose NAIP covers only its upper left part."""
    tmp = tmp_path_factory.mktemp("opt")
    split = {"split": (0.6, 0.2, 0.2), "block_size": "320m", "seed": 1}
    return {
        "optional": build(tmp / "opt.parquet", dirs("s2", "s1", "naip"), optional=["naip"]),
        "base": build(tmp / "base.parquet", dirs("s2", "s1")),
        "required": build(tmp / "req.parquet", dirs("s2", "s1", "naip")),
        "split": build(tmp / "split.parquet", dirs("s2", "s1", "naip"), optional="naip", **split),
    }


def naip_footprint(crs: str) -> shapely.Polygon:
    """The NAIP file's bounds, densified and transformed into ``crs``."""
    with rasterio.open(NAIP) as src:
        ring = np.asarray(shapely.box(*src.bounds).segmentize(5.0).exterior.coords)
        t = Transformer.from_crs(src.crs, crs, always_xy=True)
    x, y = t.transform(ring[:, 0], ring[:, 1])
    return shapely.Polygon(np.column_stack([x, y]))


def boxes(chips) -> set[tuple[float, ...]]:
    return {tuple(round(v, 3) for v in g.bounds) for g in chips.geometry}


def test_optional_naip_keeps_the_s1_s2_chips_and_records_its_footprint(built) -> None:
    opt, base = built["optional"], built["base"]
    # the grid covers the S1/S2 overlap: the same chips as without NAIP
    assert len(opt.chips) == len(base.chips) == 36
    assert list(opt.chips["chip_id"]) == list(base.chips["chip_id"])
    assert boxes(opt.chips) == boxes(base.chips)
    assert opt.meta["dropped"] == base.meta["dropped"]
    assert opt.optional == ["naip"] and opt.meta["modalities"]["s1"]["required"] is True
    # coverage against the geometry: covered iff the chip lies inside NAIP's footprint
    foot = naip_footprint(opt.meta["crs"])
    covered = opt.covers(["naip"])
    for i, g in enumerate(opt.chips.geometry):
        share = g.intersection(foot).area / g.area
        inside = bool(g.within(foot))
        assert covered[i] == inside, (opt.chips["chip_id"][i], share)
        assert inside or share < 0.8  # no chip near the 10 % nodata threshold
        mods = opt.chips["modalities"][i]
        assert mods == ("s2,s1,naip" if inside else "s2,s1")
        nodata = opt.chips["nodata_naip"][i]
        if share == 0:
            assert np.isnan(nodata) and opt.files(i, "naip") == []
        else:  # read fraction of missing NAIP pixels = the part of the chip outside
            assert abs(nodata - (1 - share)) < 0.03
        assert (opt.files(i, "naip") != []) == inside
    assert covered.sum() == 15 and (~covered).sum() == 21
    assert 0 < np.isnan(opt.chips["nodata_naip"]).sum() < 21
    summary = opt.summary()
    assert "splits: train 36, val 0, test 0" in summary
    assert "optional naip: covers 15 of 36 chips (train 15, val 0, test 0)" in summary


def test_required_naip_keeps_the_old_behaviour(built) -> None:
    req, opt = built["required"], built["optional"]
    assert len(req.chips) == 15 and req.optional == []
    assert set(req.chips["modalities"]) == {"s2,s1,naip"}
    assert boxes(req.chips) == boxes(opt.chips[opt.covers(["naip"])])
    assert "optional" not in req.summary()
    # the NAIP statistics come from the same 15 chips either way
    assert opt.meta["stats_chips"]["naip"] == 15
    for band, (mean, std) in req.meta["stats"]["naip"].items():
        np.testing.assert_allclose(opt.meta["stats"]["naip"][band], [mean, std], rtol=1e-9)


def test_stack_returns_only_chips_covered_by_the_requested_modalities(built) -> None:
    opt = built["optional"]
    covered = opt.covers(["naip"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        both = CoRegisteredStack(opt.path, modalities=["s2", "s1"])
    assert len(both) == len(opt.chips) and both.skipped == []
    with pytest.warns(UserWarning, match="15 of the 36 chips .* covered by every requested"):
        three = CoRegisteredStack(opt.path, modalities=["s2", "s1", "naip"])
    assert list(three.chips["chip_id"]) == list(opt.chips["chip_id"][covered])
    assert len(three.skipped) == 21
    assert three.skipped_summary() == "21 left out: not covered by naip"
    with pytest.warns(UserWarning):
        default = CoRegisteredStack(opt.path)  # every modality of the manifest
    assert len(default) == 15
    # the NAIP pixels equal those read through the manifest where NAIP is required
    req = CoRegisteredStack(built["required"].path)
    by_box = {tuple(round(v, 3) for v in g.bounds): i for i, g in enumerate(req.chips.geometry)}
    for i in (0, len(three) - 1):
        sample = three[i]
        assert sample["naip"].shape == (4, 80, 80) and sample["meta"]["nodata"]["naip"] == 0
        j = by_box[tuple(round(v, 3) for v in three.chips.geometry[i].bounds)]
        torch.testing.assert_close(sample["naip"], req[j]["naip"])
    opt.chips["modalities"] = "s2,s1"  # in memory: NAIP covers nothing
    with pytest.raises(NoCoveredChipsError, match=r"none of the 36 chips .* naip covers 0"):
        CoRegisteredStack(opt, modalities=["s1", "naip"])


def test_optional_stats_come_from_the_covered_train_chips(built) -> None:
    m = built["split"]
    with pytest.warns(UserWarning):
        ds = CoRegisteredStack(m.path, split="train", modalities=["naip"])
    n_train = int((m.chips["split"] == "train").sum())
    assert 0 < len(ds) < n_train
    assert m.meta["stats_chips"] == {"s2": n_train, "s1": n_train, "naip": len(ds)}
    x = np.concatenate([ds.read_raw(i)["naip"][0].reshape(4, -1) for i in range(len(ds))], 1)
    mean, std = ds.band_stats()["naip"]
    np.testing.assert_allclose(mean.numpy(), np.nanmean(x, 1), rtol=1e-5)
    np.testing.assert_allclose(std.numpy(), np.nanstd(x, 1), rtol=1e-4)
    assert "covered by naip" in ds.manifest.modality("naip").stats_source


def test_datamodule_batches_always_hold_every_modality(built, tmp_path: Path) -> None:
    m = read_manifest(built["split"].path)
    val = (m.chips["split"] == "val").to_numpy()
    assert val.any() and m.covers(["naip"])[~val].any()
    m.chips.loc[val, "modalities"] = "s2,s1"  # NAIP now covers no val chip
    path = write_manifest(m, tmp_path / "edited.parquet")
    dm = CoRegisteredStackDataModule(str(path), modalities=["s2", "s1", "naip"], batch_size=2)
    with pytest.warns(UserWarning) as record:
        dm.setup("fit")
    messages = [str(w.message) for w in record]
    assert any(m.startswith("the val split is left out: none of the") for m in messages)
    assert any(re.search(r"\d+ of the \d+ chips .*\(split train\)", m) for m in messages)
    assert "val" not in dm.datasets and dm.val_dataloader() == []
    train = dm.datasets["train"]
    expected = m.covers(["naip"]) & (m.chips["split"] == "train").to_numpy()
    assert list(train.chips["chip_id"]) == list(m.chips["chip_id"][expected])
    batch = next(iter(dm.train_dataloader()))
    assert batch["naip"].shape[1:] == (4, 80, 80) and batch["s1"].shape[1:] == (2, 16, 16)
    m.chips["modalities"] = "s2,s1"
    path = write_manifest(m, tmp_path / "none.parquet")
    dm = CoRegisteredStackDataModule(str(path), modalities=["s2", "naip"], batch_size=2)
    with pytest.raises(NoCoveredChipsError, match="split train"):
        dm.setup("fit")


def write_s1_stack(folder: Path, order: tuple[str, ...]) -> Path:
    """One multi-band S1 file from the scene's VV / VH files plus an incidence angle band."""
    with rasterio.open(SCENE / "s1" / S1.format("VV")) as src:
        vv, crs, transform = src.read(1), src.crs, src.transform
    with rasterio.open(SCENE / "s1" / S1.format("VH")) as src:
        vh = src.read(1)
    angle = np.broadcast_to(np.linspace(30, 45, vv.shape[1], dtype=np.float32), vv.shape)
    layers = {"VV": vv, "VH": vh, "angle": angle}
    path = folder / "S1A_IW_GRDH_20230603T232510_stack.tif"
    return write_geotiff(path, np.stack([layers[b] for b in order]), crs, transform, float("nan"))


@pytest.mark.parametrize(
    ("order", "names"), [(("VV", "VH", "angle"), "VV,VH,-"), (("angle", "VH", "VV"), "-,VH,VV")]
)
def test_skipped_bands_are_not_read(
    order: tuple[str, ...], names: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_s1_stack(tmp_path / "s1", order)
    out = tmp_path / "c.parquet"
    args = ["manifest", "build", "--s2", str(SCENE / "s2"), "--s1", str(tmp_path / "s1")]
    args += ["--chip-size", "160m", "--split", "1,0,0", "--crs", "EPSG:32618", "--out", str(out)]
    rc = main([*args, f"--s1-bands={names}"])  # "=": a list may start with "-"
    _, err = capsys.readouterr()
    assert rc == 0, err
    m = read_manifest(out)
    info = m.meta["modalities"]["s1"]
    assert info["bands"] == [b for b in order if b != "angle"]
    assert info["band_indexes"] == [i + 1 for i, b in enumerate(order) if b != "angle"]
    stack = CoRegisteredStack(out)
    ref = CoRegisteredStack(build(tmp_path / "ref.parquet", dirs("s2", "s1")).path)
    assert list(stack.chips["chip_id"]) == list(ref.chips["chip_id"])
    for i in (0, len(stack) // 2, len(stack) - 1):
        got, want = stack.read_raw(i)["s1"][0], ref.read_raw(i)["s1"][0]
        assert got.shape == (2, 16, 16)
        for j, band in enumerate(info["bands"]):  # reference order: VV, VH
            np.testing.assert_array_equal(got[j], want[("VV", "VH").index(band)])
    assert m.meta["stats"]["s1"]["VV"] == ref.chip_manifest.meta["stats"]["s1"]["VV"]
    # without the band names the error says how to skip a band
    rc = main([*args, "--overwrite"])
    _, err = capsys.readouterr()
    assert rc == 2 and "3 bands" in err and "VV,VH,-" in err


def test_spec_and_cli_validate_optional_and_skipped_bands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = spec_from_dict(
        {
            "modalities": {
                "s2": "s2/",
                "s1": {"root": "s1/", "bands": ["VV", "VH", "-"]},
                "naip": {"root": "naip/", "required": False},
            }
        }
    )
    assert spec.modalities["s1"].bands == ("VV", "VH", "-")
    assert spec.modalities["s1"].named_bands == ("VV", "VH")
    assert [k for k, m in spec.modalities.items() if not m.required] == ["naip"]
    as_text = spec_from_dict({"modalities": {"s1": {"root": "s1/", "bands": "VV,VH,-"}}})
    assert as_text.modalities["s1"].bands == ("VV", "VH", "-")
    with pytest.raises(ValueError, match="quote a skipped band"):
        spec_from_dict({"modalities": {"s1": {"root": "s1/", "bands": ["VV", None]}}})
    with pytest.raises(ValueError, match="no band to read"):
        spec_from_dirs({"s1": "s1/"}, bands={"s1": ["-", "-"]})
    with pytest.raises(ValueError, match=r"unknown band\(s\) \['angle'\]"):
        spec_from_dirs({"s1": "s1/"}, bands={"s1": ["VV", "VH", "angle"]})
    with pytest.raises(ValueError, match="at least one must be required"):
        spec_from_dirs(dirs("s2", "naip"), optional="s2,naip")
    with pytest.raises(DatasetFileError, match="hold one band each"):
        build_manifest(spec_from_dirs(dirs("s2", "s1"), bands={"s1": ["VV", "-"]}))
    base = ["manifest", "build", "--s2", str(SCENE / "s2"), "--s1", str(SCENE / "s1")]
    base += ["--out", str(tmp_path / "c.parquet")]
    for extra, fragment in (
        (["--optional", "naip"], "--optional: naip is not a modality of the stack"),
        (["--optional", "s1", "--optional", "s2"], "at least one must be required"),
    ):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and fragment in err[0], err
    assert not (tmp_path / "c.parquet").exists()
    # an optional folder that misses the required overlap is refused like any other
    far = tmp_path / "naip"
    with rasterio.open(NAIP) as src:
        t = src.transform
        shifted = rasterio.Affine(t.a, t.b, t.c + 50_000, t.d, t.e, t.f)
        write_geotiff(far / NAIP.name, src.read(), src.crs, shifted)
    assert main([*base, "--naip", str(far), "--optional", "naip"]) == 2
    assert "the optional naip files" in capsys.readouterr().err
