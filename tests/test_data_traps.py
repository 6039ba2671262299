"""Data traps that used to pass silently: NaN and constant bands, chips dropped before
a split, guard bands eating the data, splits without a class, empty or single-class
labels and guessed band orders (issue 15, items 4, 8, 13 and "data traps")."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
import torch
from rasterio.transform import from_origin

from rsmm.cli import main
from rsmm.errors import ConfigError, DatasetFileError
from rsmm.manifests import compute_band_stats
from rsmm.stacks import build_manifest, spec_from_dirs
from rsmm.stacks.spec import LabelSpec
from rsmm.stacks.splits import spatial_split, split_report

CRS = "EPSG:32631"
X0, Y0 = 500000.0, 4800000.0  # top-left corner of every test raster


def write_tif(
    path: Path, data: np.ndarray, gsd: float = 10.0, descriptions: tuple[str, ...] = ()
) -> Path:
    """A ``C x H x W`` GeoTIFF at ``(X0, Y0)`` in :data:`CRS`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[2],
        height=data.shape[1],
        count=data.shape[0],
        dtype=data.dtype,
        crs=CRS,
        transform=from_origin(X0, Y0, gsd, gsd),
    ) as dst:
        dst.write(data)
        if descriptions:
            dst.descriptions = descriptions
    return path


def s1_stack(folder: Path, px: int, seed: int = 0) -> np.ndarray:
    """A 2-band (VV, VH) float32 dB file of ``px x px`` 10 m pixels; returns the data."""
    data = np.random.default_rng(seed).normal(-12, 3, (2, px, px)).astype(np.float32)
    write_tif(folder / "s1_20200101.tif", data)
    return data


# -- item 4: all-NaN and constant bands ---------------------------------------------


def test_constant_band_of_a_stack_is_an_error_naming_band_and_file(tmp_path: Path) -> None:
    data = np.random.default_rng(0).normal(-12, 3, (2, 64, 64)).astype(np.float32)
    data[1] = -20.0  # VH constant: a standard deviation of 0
    path = write_tif(tmp_path / "s1" / "s1_20200101.tif", data)
    spec = spec_from_dirs({"s1": tmp_path / "s1"}, chip_size="160m", split=(1.0, 0.0, 0.0))
    with pytest.raises(DatasetFileError) as err:
        build_manifest(spec)
    msg = str(err.value)
    assert msg.startswith(
        f"band s1/VH of the 16 train chips is constant (-20) over its {64 * 64} valid "
        "pixels: its standard deviation is 0, so it cannot be normalised; skip it ('-' in "
        f"--s1-bands) or check the files: {path}"
    )


def test_all_nan_band_kept_by_max_nodata_1_is_an_error(tmp_path: Path) -> None:
    data = np.random.default_rng(0).normal(-12, 3, (2, 32, 32)).astype(np.float32)
    data[0] = np.nan
    write_tif(tmp_path / "s1" / "s1_20200101.tif", data)
    spec = spec_from_dirs(
        {"s1": tmp_path / "s1"}, chip_size="160m", split=(1.0, 0.0, 0.0), max_nodata=1.0
    )
    with pytest.raises(
        DatasetFileError, match=r"band s1/VV of the 4 train chips has no valid pixel \(all NaN"
    ):
        build_manifest(spec)


def test_compute_band_stats_refuses_all_missing_and_constant_bands() -> None:
    x = torch.zeros(2, 4, 4)
    filled = [{"s1": x, "meta": {"id": f"loc{i}", "nodata": {"s1": 32}}} for i in range(5)]
    with pytest.raises(DatasetFileError) as err:
        compute_band_stats(filled, {"s1": ("VV", "VH")})
    msg = str(err.value)
    assert "band s1/VV has no valid pixel (all NaN or nodata)" in msg
    assert "5 of the 5 samples have no valid s1 pixel: loc0, loc1, loc2, ..." in msg
    const = [{"s1": torch.stack([torch.rand(4, 4), torch.full((4, 4), 3.0)])} for _ in range(2)]
    with pytest.raises(
        DatasetFileError,
        match=r"s1/VH has a standard deviation of 0 \(every "
        r"one of its 32 valid pixels is 3\)",
    ):
        compute_band_stats(const, {"s1": ("VV", "VH")})
    ok = compute_band_stats(const[:1], {"s1": ("VV",)})  # a varying band is fine
    assert ok["s1"]["VV"][1] > 0


# -- item 8: chips dropped before the split are counted -------------------------------


def test_too_few_blocks_says_what_dropped_how_many_chips(tmp_path: Path) -> None:
    data = s1_stack(tmp_path / "s1", 96)  # 6 x 6 chips of 16 px
    data[:, 32:, :] = np.nan  # only the top two chip rows are valid ...
    data[:, :, 32:] = np.nan  # ... and the left two columns: 4 chips, one 320 m block
    write_tif(tmp_path / "s1" / "s1_20200101.tif", data)
    # one CRS: blocks on the file's grid (--crs auto's equal-area blocks cut these 4 chips)
    spec = spec_from_dirs(
        {"s1": tmp_path / "s1"}, chip_size="160m", block_size="320m", crs=CRS
    )
    with pytest.raises(ConfigError) as err:
        build_manifest(spec)
    msg = str(err.value)
    assert msg.startswith("32 of 36 chips dropped: 32 more than 10% nodata in s1; ")
    assert "the 4 left give only 1 spatial block(s) of 320m for 3 splits" in msg
    assert "lower --block-size to 160m or less" in msg


def test_no_chip_left_names_every_count_and_the_limit(tmp_path: Path) -> None:
    data = s1_stack(tmp_path / "s1", 32)
    data[:, ::2] = np.nan
    write_tif(tmp_path / "s1" / "s1_20200101.tif", data)
    spec = spec_from_dirs({"s1": tmp_path / "s1"}, chip_size="160m")
    with pytest.raises(
        ConfigError,
        match=r"all 4 chips dropped: 4 more than 10% nodata in "
        r"s1 \(the limits: --max-nodata 0.1\)",
    ):
        build_manifest(spec)


# -- item 13: guard band and classes of the splits -------------------------------------


def grid_boxes(n: int, chip: float, stride: float) -> np.ndarray:
    xs = np.arange(n) * stride
    return np.array([shapely.box(x, -y - chip, x + chip, -y) for y in xs for x in xs])


def assert_apart(geoms: np.ndarray, splits: np.ndarray, gap: float) -> None:
    """No chip of one split within ``gap`` of a chip of another (touching included)."""
    unions = {s: shapely.union_all(geoms[splits == s]) for s in set(splits)}
    for a in unions:
        for b in unions:
            if a < b:
                assert unions[a].distance(unions[b]) > gap, (a, b)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_edges_guard_keeps_more_chips_and_no_split_touches_another(seed: int) -> None:
    chip, stride = 160.0, 40.0
    geoms = grid_boxes(45, chip, stride)  # 2 km side, chips overlapping by 3/4
    fr = (0.7, 0.15, 0.15)
    kept = {}
    for guard in ("chips", "edges"):
        _, splits, drop = spatial_split(geoms, (0.0, 0.0), 320.0, fr, seed, 1e-6 * chip, guard)
        assert_apart(geoms[~drop], splits[~drop], 1e-6 * chip)
        assert set(splits[~drop]) == {"train", "val", "test"}
        kept[guard] = int((~drop).sum())
    assert kept["edges"] > kept["chips"] * 1.05, kept


def test_split_report_counts_the_guard_band_and_missing_classes() -> None:
    splits = np.array(["train"] * 4 + ["val"] * 3 + ["test"] * 3, dtype=object)
    drop = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0], bool)
    labels = np.array([0, 1, 2, 2, 0, 0, 1, 0, 1, -1])
    r = split_report(splits, drop, labels, (0.7, 0.15, 0.15), 320.0, "chips")
    assert (r.chips, r.guard_dropped, r.per_split) == (10, 4, {"train": 0, "val": 3, "test": 3})
    assert r.missing_classes == {"train": [0, 1, 2], "val": [2], "test": [2]}
    assert not r.ok and r.guard_fraction == pytest.approx(0.4)


def test_build_warns_about_the_guard_band_and_a_split_without_a_class(tmp_path: Path) -> None:
    s1_stack(tmp_path / "s1", 160)  # 1.6 km
    labels = np.zeros((1, 160, 160), np.uint8)
    labels[:, :40, :40] = 1  # class 1 only in the top-left 400 m
    write_tif(tmp_path / "labels.tif", labels)
    spec = spec_from_dirs(
        {"s1": tmp_path / "s1"},
        chip_size="160m",
        stride="40m",
        block_size="320m",
        seed=0,
        labels=LabelSpec(str(tmp_path / "labels.tif"), classes=("bare", "urban")),
    )
    m = build_manifest(spec)
    rep = m.meta["split_report"]
    assert rep["guard"] == "chips" and rep["block_size_m"] == 320.0
    assert (
        rep["chips"] == 37 * 37
        and rep["guard_dropped"] == m.meta["dropped"]["in the guard band between splits"]
    )
    assert rep["guard_fraction"] > 1 / 3
    assert rep["per_split"] == {s: int((m.chips["split"] == s).sum()) for s in rep["per_split"]}
    lacking = [
        s
        for s in ("train", "val", "test")
        if "urban" not in set(m.chips.loc[m.chips["split"] == s, "class_name"])
    ]
    assert lacking and rep["missing_classes"] == {s: ["urban"] for s in lacking}
    warnings = m.meta["warnings"]
    assert warnings[0].startswith(
        f"the guard band between splits dropped {rep['guard_dropped']} of 1369 chips"
    )
    assert any(
        w.startswith(f"split {lacking[0]} (") and "no chip of class urban" in w for w in warnings
    )
    assert "--guard edges keeps" in warnings[-1]
    if rep["suggested_block_size_m"] is not None:
        assert f"--block-size {rep['suggested_block_size_m']:g}m keeps" in warnings[-1]
    assert "\nwarning: the guard band" in m.summary()
    # the other guard on the same chips keeps more, still apart
    edges = build_manifest(replace(spec, guard="edges"))
    assert len(edges.chips) > len(m.chips)
    geoms, splits = edges.chips.geometry.values, edges.chips["split"].to_numpy()
    assert_apart(np.asarray(geoms), splits, 1e-6 * 160)
    assert edges.meta["guard"] == "edges"


def test_cli_guard_option_and_unknown_guard(tmp_path: Path, capsys) -> None:
    s1_stack(tmp_path / "s1", 96)
    out = tmp_path / "chips.parquet"
    rc = main(
        [
            "manifest",
            "build",
            "--s1",
            str(tmp_path / "s1"),
            "--chip-size",
            "160m",
            "--stride",
            "80m",
            "--block-size",
            "160m",
            "--guard",
            "edges",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    stdout = capsys.readouterr().out
    assert "dropped:" in stdout
    with pytest.raises(ConfigError, match="guard: expected chips or edges, got 'band'"):
        spec_from_dirs({"s1": tmp_path / "s1"}, guard="band")


# -- data traps: labels -------------------------------------------------------------


def _labels_file(tmp_path: Path, points: list[tuple[float, float]], classes: list[str]) -> Path:
    path = tmp_path / "labels.gpkg"
    gdf = gpd.GeoDataFrame(
        {"crop": classes}, geometry=[shapely.Point(x, y) for x, y in points], crs=CRS
    )
    if not points:
        gdf = gpd.GeoDataFrame({"crop": []}, geometry=[], crs=CRS)
    gdf.to_file(path, layer="fields")
    return path


def test_empty_labels_file_is_an_error_naming_it(tmp_path: Path) -> None:
    s1_stack(tmp_path / "s1", 64)
    path = _labels_file(tmp_path, [], [])
    spec = spec_from_dirs(
        {"s1": tmp_path / "s1"}, chip_size="160m", labels=LabelSpec(str(path), "crop")
    )
    with pytest.raises(
        DatasetFileError, match=f"labels file {path} holds no feature with a 'crop' value"
    ):
        build_manifest(spec)


def test_labels_outside_every_chip_are_an_error(tmp_path: Path) -> None:
    s1_stack(tmp_path / "s1", 64)
    path = _labels_file(tmp_path, [(X0 - 5000, Y0 + 5000)], ["wheat"])
    spec = spec_from_dirs(
        {"s1": tmp_path / "s1"}, chip_size="160m", labels=LabelSpec(str(path), "crop")
    )
    with pytest.raises(DatasetFileError, match=f"labels file {path} labels none of the 16 chips"):
        build_manifest(spec)


def test_single_class_labels_warn_that_fine_tuning_needs_two(tmp_path: Path) -> None:
    s1_stack(tmp_path / "s1", 64)
    pts = [(X0 + 80 + 160 * i, Y0 - 80 - 160 * j) for i in range(4) for j in range(4)]
    path = _labels_file(tmp_path, pts, ["wheat"] * 16)
    spec = spec_from_dirs(
        {"s1": tmp_path / "s1"},
        chip_size="160m",
        split=(1.0, 0.0, 0.0),
        labels=LabelSpec(str(path), "crop"),
    )
    m = build_manifest(spec)
    assert m.meta["warnings"] == [
        f"labels file {path} gives a single class (wheat, 16 of 16 chips): fine-tuning a "
        "classifier needs at least 2 classes"
    ]
    assert "warning: labels file" in m.summary()


# -- data traps: band orders --------------------------------------------------------


def test_four_s2_bands_without_names_are_not_guessed(tmp_path: Path) -> None:
    data = np.random.default_rng(0).integers(0, 10000, (4, 32, 32)).astype(np.uint16)
    path = write_tif(tmp_path / "s2" / "S2_20200101.tif", data)
    spec = spec_from_dirs({"s2": tmp_path / "s2"}, chip_size="160m", split=(1.0, 0.0, 0.0))
    with pytest.raises(DatasetFileError) as err:
        build_manifest(spec)
    msg = str(err.value)
    assert "cannot tell the order of the 4 bands" in msg and str(path) in msg
    assert "--s2-bands B02,B03,B04,B08" in msg
    # the band names given, or stored in the file, are used
    given = spec_from_dirs(
        {"s2": tmp_path / "s2"},
        bands={"s2": ("B04", "B03", "B02", "B08")},
        chip_size="160m",
        split=(1.0, 0.0, 0.0),
    )
    assert build_manifest(given).meta["modalities"]["s2"]["bands"] == ["B04", "B03", "B02", "B08"]
    write_tif(path, data, descriptions=("B4", "b03", "B02", "B08"))
    m = build_manifest(spec)
    assert m.meta["modalities"]["s2"]["bands"] == ["B04", "B03", "B02", "B08"]


def test_full_band_sets_keep_working_without_names(tmp_path: Path) -> None:
    s1_stack(tmp_path / "s1", 32)  # 2 bands: VV, VH
    data = np.random.default_rng(0).integers(1, 10000, (13, 32, 32)).astype(np.uint16)
    write_tif(tmp_path / "s2" / "S2_20200101.tif", data)
    m = build_manifest(
        spec_from_dirs(
            {"s1": tmp_path / "s1", "s2": tmp_path / "s2"}, chip_size="160m", split=(1.0, 0.0, 0.0)
        )
    )
    assert m.meta["modalities"]["s1"]["bands"] == ["VV", "VH"]
    assert len(m.meta["modalities"]["s2"]["bands"]) == 13


def test_manifest_stats_cli_refuses_a_constant_band(tmp_path: Path, capsys) -> None:
    """``rsmm manifest stats`` on Meter-ML whose Sentinel-1 files are all 0 (a nodata
    export): exit 2, one line naming the band, the dataset root and the samples."""
    import shutil

    src = Path(__file__).parent / "data" / "meterml"
    root = tmp_path / "meterml"
    shutil.copytree(src, root, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    for f in root.rglob("sentinel-1.npy"):
        np.save(f, np.zeros((72, 72, 2), np.uint16))
    with pytest.warns(UserWarning, match="left out"):
        rc = main(["manifest", "stats", "meterml", str(root)])
    err = capsys.readouterr().err
    assert rc != 0 and len(err.strip().splitlines()) == 1
    assert f"meterml under {root} (split 'train', 8 samples): band s1/VV has a standard " in err
    assert "every one of its 41472 valid pixels is 0" in err
