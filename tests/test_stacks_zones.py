"""Chips in their own UTM zone (``--crs auto``): zone choice, anchoring on each file,
dedupe, cross-border splits and the six real BigEarthNet patches (issue 16).

The BigEarthNet example patches come from ``bigearthnet-common`` (code Apache-2.0,
data CDLA-Permissive-1.0).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from pyproj import Transformer
from rasterio.crs import CRS

from rsmm.datasets import CoRegisteredStack
from rsmm.io import write_geotiff
from rsmm.stacks import (
    build_manifest,
    generate_scene,
    read_manifest,
    spec_from_dirs,
    write_manifest,
)
from rsmm.stacks.scene import from_origin
from rsmm.stacks.zones import BLOCK_CRS, dedupe, equal_area, utm_epsg, utm_zone_of


def test_zone_of_a_centre() -> None:
    lon = np.array([14.9, 11.999, 12.0, -77.99, -78.01, -180.0, 179.99])
    lat = np.array([45.0, 45.0, 45.0, 38.9, 38.9, -10.0, -10.0])
    assert utm_epsg(lon, lat).tolist() == [32633, 32632, 32633, 32618, 32617, 32701, 32760]
    # UTM zones of other datums are zones too (NAIP in NAD83 keeps its own CRS)
    codes = (32618, 32733, 26918, 25833, 3857, 4326)
    assert [utm_zone_of(CRS.from_epsg(c)) for c in codes] == [32618, 32733, 32618, 32633, None, None]


def _patch(folder: Path, name: str, x0: float, y0: float, epsg: int, seed: int) -> np.ndarray:
    """A 1.2 km Sentinel-2-like patch (B02 and B03 at 10 m) with corner (x0, y0)."""
    rng = np.random.default_rng(seed)
    data = rng.integers(1, 10000, (2, 120, 120)).astype(np.uint16)
    for band, img in zip(("B02", "B03"), data):
        write_geotiff(
            folder / f"{name}_{band}.tif", img[None], f"EPSG:{epsg}", from_origin(x0, y0, 10, 10), 0
        )
    return data


def _build(folder: Path, **kw):
    spec = spec_from_dirs({"s2": folder}, chip_size="600m", split=(1.0, 0.0, 0.0), **kw)
    return build_manifest(spec)


def test_chips_anchor_on_each_file_and_read_its_pixels(tmp_path: Path) -> None:
    """Patches at any offset from round numbers hold 2 x 2 chips each, read exactly."""
    a = _patch(tmp_path, "S2A_20170613_a", 567180.0, 4358040.0, 32629, 0)
    b = _patch(tmp_path, "S2A_20170613_b", 405010.0, 5342390.0, 32633, 1)
    m = _build(tmp_path, crs="auto")  # the default, spelled out
    assert len(m.chips) == 8
    assert m.meta["zones"] == ["EPSG:32629", "EPSG:32633"]
    assert m.meta["crs"] == "EPSG:4326" and m.chips.crs.to_string() == "EPSG:4326"
    assert sorted(m.chips["xmin"][m.chips["crs"] == "EPSG:32629"]) == [567180.0] * 2 + [567780.0] * 2
    path = write_manifest(m, tmp_path / "chips.parquet")
    ds = CoRegisteredStack(path)
    for i in range(len(ds)):
        data, x0, y0 = (a, 567180.0, 4358040.0) if ds.chips["crs"][i] == "EPSG:32629" else (
            b, 405010.0, 5342390.0
        )
        c, r = round((ds.chips["xmin"][i] - x0) / 10), round((y0 - ds.chips["ymax"][i]) / 10)
        got = ds.read_raw(i)["s2"][0]
        assert np.array_equal(got, data[:, r : r + 60, c : c + 60].astype(np.float32))
    # the geometry is the chip's square moved to degrees
    lonlat = ds[0]["meta"]["lonlat"].numpy()
    assert shapely.Point(*lonlat).within(ds.chips.geometry[0])


def test_overlapping_files_give_one_chip_per_ground(tmp_path: Path) -> None:
    """Two patches of one zone overlapping by 900 m on another grid: 4 chips, not 8."""
    _patch(tmp_path, "S2A_20170613_a", 500000.0, 5000020.0, 32633, 0)
    _patch(tmp_path, "S2A_20170613_b", 500300.0, 5000020.0, 32633, 1)
    m = _build(tmp_path)
    assert len(m.chips) == 4
    geoms = np.asarray(shapely.box(*m.chips[["xmin", "ymin", "xmax", "ymax"]].to_numpy().T))
    inter = shapely.area(shapely.intersection(geoms[:, None], geoms[None, :]))
    assert np.allclose(inter - np.diag(np.diag(inter)), 0)
    # the same patch twice (one grid) gives its chips once
    _patch(tmp_path, "S2A_20170614_c", 500000.0, 5000020.0, 32633, 2)
    assert len(_build(tmp_path).chips) == 4


def test_dedupe_keeps_stride_overlaps_of_one_grid() -> None:
    boxes = shapely.box([0, 0.5, 0.25], 0, [1, 1.5, 1.25], 1)
    assert dedupe(boxes, np.arange(3), ["g", "g", "h"]).tolist() == [True, True, False]
    assert dedupe(boxes[[0, 0]], np.arange(2), ["g", "g"]).tolist() == [True, False]


def test_splits_across_a_zone_border(tmp_path: Path) -> None:
    """The scene straddling the 17/18 border: chips in both zones, one block grid, and
    no chip touches a chip of another split, measured in metres across the border."""
    scene = generate_scene(
        tmp_path / "scene", extent_m=(1600, 1200), seed=0, west_crs="EPSG:32617",
        origin=(239040.0, 4311000.0), s2_bands=("B02", "B03", "B04", "B08"),
    )  # fmt: skip
    spec = spec_from_dirs(
        {"s2": scene.root / "s2", "s1": scene.root / "s1"},
        chip_size="160m",
        block_size="320m",
        bands={"s2": ["B02", "B03", "B04", "B08"]},
    )
    m = build_manifest(spec)
    c = m.chips
    assert set(c["crs"]) == {"EPSG:32617", "EPSG:32618"}
    # each chip in the zone of its centre
    centres = shapely.centroid(c.geometry.values)
    zones = utm_epsg(shapely.get_x(centres), shapely.get_y(centres))
    assert [f"EPSG:{z}" for z in zones] == c["crs"].tolist()
    # blocks on the equal-area grid, the same for both zones
    ea = shapely.centroid(equal_area(c.geometry.values))
    row = np.floor(-shapely.get_y(ea) / m.meta["block_size_m"]).astype(np.int64)
    col = np.floor(shapely.get_x(ea) / m.meta["block_size_m"]).astype(np.int64)
    assert (c["block"].to_numpy() == row * 1_000_003 + col).all()
    assert m.meta["block_crs"] == BLOCK_CRS
    # measured in metres of zone 18: no pair of chips of different splits touches
    t = Transformer.from_crs("EPSG:4326", "EPSG:32618", always_xy=True)
    local = shapely.transform(shapely.segmentize(c.geometry.values, 1e-4), t.transform, interleaved=False)
    split = c["split"].to_numpy()
    cross = 0
    for i in range(len(c)):
        for j in range(i + 1, len(c)):
            if split[i] != split[j]:
                assert shapely.distance(local[i], local[j]) > 0.05, (i, j)
                cross += c["crs"][i] != c["crs"][j]
    assert cross > 0  # pairs of different splits across the border were checked


@pytest.fixture(scope="module")
def bigearthnet(tmp_path_factory) -> Path:
    pytest.importorskip("bigearthnet_common")
    from bigearthnet_examples import arrange_v1

    return arrange_v1(tmp_path_factory.mktemp("ben") / "root", lists=False)


def test_bigearthnet_patches_give_24_chips_in_three_zones(bigearthnet: Path) -> None:
    spec = spec_from_dirs(
        {"s2": bigearthnet / "BigEarthNet-v1.0", "s1": bigearthnet / "BigEarthNet-S1-v1.0"},
        chip_size="600m",
    )
    m = build_manifest(spec)
    assert len(m.chips) == 24
    assert m.meta["zones"] == ["EPSG:32629", "EPSG:32633", "EPSG:32635"]
    assert {m: i["chip_pixels"] for m, i in m.meta["modalities"].items()} == {"s2": 60, "s1": 60}
    assert (m.chips["modalities"] == "s2,s1").all()
    # 600 m is 10 pixels of the 60 m bands, 30 of the 20 m ones, read resampled to 10 m
    coarse = m.meta["modalities"]["s2"]["resampled_bands"]
    assert coarse["B01"] == {"gsd": 60.0, "whole_pixels": True} and coarse["B11"]["gsd"] == 20
    ds = CoRegisteredStack(read_manifest(write_manifest(m, bigearthnet / "chips.parquet")))
    b02 = ds.chip_manifest.meta["modalities"]["s2"]["bands"].index("B02")
    for i in range(len(ds)):
        raw = ds.read_raw(i)
        assert raw["s1"][0].shape == (2, 60, 60)
        path = json.loads(ds.chips["files_s2"][i])[0].replace("{band}", "B02")
        with rasterio.open(path) as src:
            assert src.crs.to_string() == ds.chips["crs"][i]
            c = round((ds.chips["xmin"][i] - src.transform.c) / 10)
            r = round((src.transform.f - ds.chips["ymax"][i]) / 10)
            want = src.read(1)[r : r + 60, c : c + 60]
        assert want.shape == (60, 60)
        assert np.array_equal(raw["s2"][0][b02], want.astype(np.float32))
