"""User co-registered stacks: manifest building, chip reads, labels, splits (fake scene)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from pyproj import Transformer
from rasterio.transform import from_origin
from rasterio.warp import calculate_default_transform, reproject

from rsmm.datasets import CoRegisteredStack
from rsmm.stacks import build_manifest, read_manifest, write_manifest
from rsmm.stacks import spec_from_dirs as _spec_from_dirs
from rsmm.stacks.build import whole_pixels
from rsmm.stacks.spec import CloudSpec, LabelSpec

DATA = Path(__file__).parent / "data" / "stacks"
SCENE = DATA / "scene"
sys.path.insert(0, str(DATA))
from data import generate  # noqa: E402

CHIP = 160.0


@pytest.fixture(scope="module")
def truth(tmp_path_factory: pytest.TempPathFactory):
    """The ground truth of the committed scene (regenerated, same seed)."""
    return generate(tmp_path_factory.mktemp("scene"))


#: The scene's S2 CRS, given so that these tests check the one-CRS chip grid.
ONE_CRS = "EPSG:32618"


def spec_from_dirs(*args, **kw):
    """The spec on the one-CRS grid (:data:`ONE_CRS` unless given) these tests check."""
    return _spec_from_dirs(*args, **{"crs": ONE_CRS, **kw})


def dirs(*mods: str) -> dict[str, Path]:
    return {m: SCENE / m for m in mods}


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory):
    """Manifest of S1 + S2 + NAIP with polygon labels, written and read back."""
    spec = spec_from_dirs(
        dirs("s2", "s1", "naip"),
        chip_size="160m",
        split=(1.0, 0.0, 0.0),
        labels=LabelSpec(str(SCENE / "labels.gpkg"), "landcover", "fields"),
        crs=ONE_CRS,  # the one-CRS layout these tests check (--crs auto: test_stacks_zones)
    )
    path = write_manifest(build_manifest(spec), tmp_path_factory.mktemp("m") / "chips.parquet")
    return read_manifest(path)


def _box_in(bounds, src: str, dst: str) -> shapely.Polygon:
    """A raster's bounds (in ``src``) as a densified polygon in ``dst``."""
    t = Transformer.from_crs(src, dst, always_xy=True)
    ring = np.asarray(shapely.box(*bounds).segmentize(5.0).exterior.coords)
    x, y = t.transform(ring[:, 0], ring[:, 1])
    return shapely.Polygon(np.column_stack([x, y]))


def test_committed_scene_matches_generator(truth) -> None:
    for layer in ("s1", "s2", "naip"):
        for path in truth.files[layer]:
            with rasterio.open(path) as a, rasterio.open(SCENE / layer / path.name) as b:
                np.testing.assert_array_equal(a.read(), b.read())


def test_chip_count_and_footprint(full, truth) -> None:
    crs = truth.crs["s2"]
    valid = {
        "s2": shapely.box(*truth.bounds["s2"]),
        "s1": _box_in(truth.bounds["s1"], truth.crs["s1"], crs).difference(
            _box_in(truth.s1_nan_bounds, truth.crs["s1"], crs)
        ),
        "naip": _box_in(truth.bounds["naip"], truth.crs["naip"], crs),
    }
    x0, ymin, xmax, y1 = truth.bounds["s2"]
    expected, fractions = set(), []
    for c in range(int((xmax - x0) // CHIP)):
        for r in range(int((y1 - ymin) // CHIP)):
            chip = shapely.box(
                x0 + c * CHIP, y1 - (r + 1) * CHIP, x0 + (c + 1) * CHIP, y1 - r * CHIP
            )
            cover = min(chip.intersection(v).area / chip.area for v in valid.values())
            fractions.append(cover)
            if cover >= 0.9:
                expected.add(f"x{c:04d}_y{r:04d}")
    # the scene is laid out so that no chip sits near the 10 % nodata threshold
    assert not any(0.8 < f < 0.97 for f in fractions)
    guard = full.meta["dropped"].get("in the guard band between splits", 0)
    assert len(full.chips) + guard == len(expected) == 15
    assert set(full.chips["chip_id"]) <= expected
    nodata_drops = sum(n for r, n in full.meta["dropped"].items() if "nodata" in r)
    assert nodata_drops == 3  # S1's NaN strip covers the first chip column
    common = shapely.intersection_all(
        list(valid.values())[:1]
        + [_box_in(truth.bounds[m], truth.crs[m], crs) for m in ("s1", "naip")]
    )
    for g in full.chips.geometry:
        assert g.within(common.buffer(0.1 * CHIP))
        assert abs(g.area - CHIP**2) < 1e-6
    assert full.meta["crs"] == "EPSG:32618"
    assert {m: i["chip_pixels"] for m, i in full.meta["modalities"].items()} == {
        "s2": 16,
        "s1": 16,
        "naip": 80,
    }


def assert_splits_apart(chips, chip_m: float) -> None:
    """No two splits overlap, touch, or come closer than a millionth of a chip."""
    assert set(chips["split"]) == {"train", "val", "test"}
    unions = {
        s: shapely.union_all(chips.geometry[chips["split"] == s].values)
        for s in ("train", "val", "test")
    }
    for a, b in (("train", "test"), ("train", "val"), ("val", "test")):
        assert unions[a].distance(unions[b]) > 1e-6 * chip_m, (a, b)


@pytest.mark.parametrize("stride", ["160m", "80m"])
def test_spatial_splits_do_not_touch(stride: str) -> None:
    spec = spec_from_dirs(
        dirs("s2", "s1"), chip_size="160m", stride=stride, block_size="320m", seed=3
    )
    m = build_manifest(spec)
    c = m.chips
    assert c["chip_id"].is_unique
    assert_splits_apart(c, CHIP)
    # chip edges lie on the S2 pixel grid (the tiles' origin is 370000, 4306000)
    edges = np.array([g.bounds for g in c.geometry]) - [370000, 4306000, 370000, 4306000]
    np.testing.assert_allclose(edges / 10, np.round(edges / 10), atol=1e-9)
    # a chip's block is the block holding its centre
    ox, oy = m.meta["grid_origin"]
    for g, b in zip(c.geometry, c["block"]):
        col = int((g.centroid.x - ox) // 320)
        row = int((oy - g.centroid.y) // 320)
        assert b == row * 1_000_003 + col


def test_naip_06m_chips_of_256px_do_not_touch_across_splits(tmp_path: Path) -> None:
    """256 px of 0.6 m NAIP = 153.6 m, not exact in floating point: neighbours' edges
    computed as ``left + size`` and ``origin + (c + 1) * stride`` missed each other by
    ~6e-11 m, so the guard band kept train chips touching test chips."""
    naip = tmp_path / "naip"
    naip.mkdir()
    n, (ox, oy) = 1536, (443400.252896992, 4306123.3713)  # 6 x 6 chips
    pattern = ((np.arange(n)[:, None] + np.arange(n)[None]) % 251).astype(np.uint8)
    with rasterio.open(
        naip / "m_3807661_ne_18_060_20220815.tif", "w", driver="GTiff", width=n, height=n,
        count=4, dtype="uint8", crs="EPSG:26918", transform=from_origin(ox, oy, 0.6, 0.6),
        compress="deflate",
    ) as dst:  # fmt: skip
        dst.write(np.broadcast_to(pattern, (4, n, n)))
    m = build_manifest(
        spec_from_dirs(
            {"naip": naip}, chip_size="256px", block_size="512px", seed=0, crs="EPSG:26918"
        )
    )
    assert m.meta["chip_size_m"] == pytest.approx(153.6)
    assert m.meta["crs"] == "EPSG:26918"
    assert_splits_apart(m.chips, 153.6)
    # chip edges are whole NAIP pixels from the file's origin
    edges = np.array([g.bounds for g in m.chips.geometry]) - [ox, oy, ox, oy]
    np.testing.assert_allclose(edges / 0.6, np.round(edges / 0.6), atol=1e-6)


def test_whole_pixels_names_the_parameter_and_the_nearest_lengths() -> None:
    gsds = {"s2": 10.0, "naip": 0.6}
    assert whole_pixels("--chip-size", (600.0, "m"), 600.0, gsds) == 60
    assert whole_pixels("--chip-size", (256.0, "px"), 256 * 0.6, {"naip": 0.6}) == 256
    with pytest.raises(ValueError, match=r"^--stride 155m is not a whole number of s2 pixels "):
        whole_pixels("--stride", (155.0, "m"), 155.0, {"s2": 10.0})
    with pytest.raises(ValueError, match=r"\(10 m\): use 150m or 160m$"):
        whole_pixels("--stride", (155.0, "m"), 155.0, {"s2": 10.0})
    # 640 m is 1066.67 NAIP pixels; lengths that fit 10 m and 0.6 m are multiples of 30 m
    with pytest.raises(ValueError, match=r"naip pixels \(0.6 m\): use 630m or 660m \(multiples"):
        whole_pixels("--chip-size", (640.0, "m"), 640.0, gsds)
    with pytest.raises(ValueError, match=r"^--stride 1.5px .*s2 pixels .* use 30m \(multiples"):
        whole_pixels("--stride", (1.5, "px"), 15.0, gsds)


def apply(tr, cols, rows):
    """Ground coordinates of pixel positions (``cols``, ``rows``) under transform ``tr``."""
    cols, rows = np.asarray(cols, dtype=float), np.asarray(rows, dtype=float)
    return tr.c + cols * tr.a + rows * tr.b, tr.f + cols * tr.d + rows * tr.e


def _file_values(path: str, xs: np.ndarray, ys: np.ndarray, crs: str):
    with rasterio.open(path) as src:
        t = Transformer.from_crs(crs, src.crs.to_string(), always_xy=True)
        fx, fy = t.transform(xs, ys)
        col, row = apply(~src.transform, fx, fy)
        data = src.read()
    ok = (np.abs(col - np.round(col)) > 0.2) & (np.abs(row - np.round(row)) > 0.2)
    ci, ri = np.floor(col).astype(int), np.floor(row).astype(int)
    ok &= (ci >= 0) & (ri >= 0) & (ci < data.shape[2]) & (ri < data.shape[1])
    vals = np.full((data.shape[0], *xs.shape), np.nan)
    vals[:, ok] = data[:, ri[ok], ci[ok]]
    return vals, ok


def test_chip_reads_are_co_registered(full, truth) -> None:
    ds = CoRegisteredStack(full)
    assert len(ds) == len(full.chips)
    classes = list(truth.classes)
    from rsmm.stacks.scene import S2_SIGNATURES

    sig = np.array([S2_SIGNATURES[c] for c in classes], dtype=np.float64)
    checked, same = {"s1": 0, "naip": 0}, {"s1": 0, "naip": 0}
    for i in range(len(ds)):
        raw = ds.read_raw(i)
        xmin, ymin, xmax, ymax = full.chips.geometry.iloc[i].bounds
        for _m, (arr, tr) in raw.items():
            h, w = arr.shape[1:]
            np.testing.assert_allclose(apply(tr, 0, 0), (xmin, ymax), atol=1e-6)
            np.testing.assert_allclose(apply(tr, w, h), (xmax, ymin), atol=1e-6)
            np.testing.assert_allclose(apply(tr, 0, h), (xmin, ymin), atol=1e-6)
        # S1 and NAIP pixels are the file pixels under the same ground points
        for m in ("s1", "naip"):
            arr, tr = raw[m]
            n = arr.shape[1]
            cc, rr = np.meshgrid(np.arange(n) + 0.5, np.arange(n) + 0.5)
            xs, ys = apply(tr, cc, rr)
            files = json.loads(full.chips[f"files_{m}"].iloc[i])
            bands = ["VV", "VH"] if m == "s1" else [None]
            got = []
            for b in bands:
                path = files[0].replace("{band}", b) if b else files[0]
                vals, ok = _file_values(path, xs, ys, full.meta["crs"])
                got.append(vals)
            vals = np.concatenate(got)
            same[m] += int(np.isclose(vals[:, ok], arr[:, ok], equal_nan=True).sum())
            checked[m] += vals[:, ok].size
        # S2 pixels show the spectrum of the ground truth class (cloud-free pixels)
        arr, tr = raw["s2"]
        cc, rr = np.meshgrid(np.arange(16) + 0.5, np.arange(16) + 0.5)
        xs, ys = apply(tr, cc, rr)
        cls = truth.class_at(xs, ys)
        clear = ~truth.cloud_at(xs, ys)
        near = np.zeros_like(clear)
        for dx, dy in ((6, 0), (-6, 0), (0, 6), (0, -6)):
            near |= truth.class_at(xs + dx, ys + dy) != cls
        keep = clear & ~near
        pix = arr.reshape(13, -1).T[keep.ravel()]
        pred = np.argmin(((pix[:, None, :] - sig[None]) ** 2).sum(-1), 1)
        assert (pred == cls[keep]).mean() > 0.98
    for m in checked:
        assert checked[m] > 500
        assert same[m] / checked[m] > 0.99


def _rect_share(fields: np.ndarray, bounds, k: int) -> np.ndarray:
    xmin, ymin, xmax, ymax = bounds
    share = np.zeros(k)
    for fx0, fy0, fx1, fy1, c in fields:
        w = max(0.0, min(xmax, fx1) - max(xmin, fx0))
        h = max(0.0, min(ymax, fy1) - max(ymin, fy0))
        share[int(c)] += w * h
    return share / ((xmax - xmin) * (ymax - ymin))


def test_labels_from_polygons(full, truth) -> None:
    names = full.classes
    assert sorted(truth.classes) == names
    decided = 0
    for g, label in zip(full.chips.geometry, full.chips["label"]):
        share = _rect_share(truth.fields, g.bounds, len(truth.classes))
        top = int(share.argmax())
        if share[top] > 0.52:
            assert names[label] == truth.classes[top]
            decided += 1
        elif share[top] < 0.48:
            assert label == -1
    assert decided >= 3
    assert all(
        bool(pd.isna(n)) == (v < 0) and (v < 0 or names[v] == n)
        for v, n in zip(full.chips["label"], full.chips["class_name"])
    )


def test_labels_from_points_and_raster(truth) -> None:
    spec = spec_from_dirs(
        dirs("s2"),
        chip_size="160m",
        split=(1.0, 0.0, 0.0),
        labels=LabelSpec(str(SCENE / "labels.gpkg"), "landcover", "points"),
    )
    m = build_manifest(spec)
    names = m.classes
    f = truth.fields
    cx, cy = (f[:, 0] + f[:, 2]) / 2, (f[:, 1] + f[:, 3]) / 2
    labelled = 0
    for g, label in zip(m.chips.geometry, m.chips["label"]):
        xmin, ymin, xmax, ymax = g.bounds
        votes = np.zeros(len(names), dtype=int)
        for x, y, c in zip(cx, cy, f[:, 4]):
            if xmin < x < xmax and ymin < y < ymax:
                votes[names.index(truth.classes[int(c)])] += 1
        expected = int(votes.argmax()) if votes.any() else -1
        assert label == expected
        labelled += expected >= 0
    assert labelled >= 10
    # a label raster of class ids with the class names given
    spec = spec_from_dirs(
        dirs("s2"),
        chip_size="160m",
        split=(1.0, 0.0, 0.0),
        labels=LabelSpec(str(SCENE / "labels.tif"), classes=truth.classes),
    )
    r = build_manifest(spec)
    assert r.classes == list(truth.classes)
    for g, label in zip(r.chips.geometry, r.chips["label"]):
        xmin, ymin, xmax, ymax = g.bounds
        xs, ys = np.meshgrid(np.arange(xmin + 5, xmax, 10), np.arange(ymin + 5, ymax, 10))
        counts = np.bincount(truth.class_at(xs, ys).ravel(), minlength=len(truth.classes))
        expected = int(counts.argmax()) if counts.max() >= 0.5 * counts.sum() else -1
        assert label == expected


def test_cloud_fraction_and_filter(truth) -> None:
    spec = spec_from_dirs(
        dirs("s2"), chip_size="160m", split=(1.0, 0.0, 0.0), cloud=CloudSpec(str(SCENE / "s2_scl"))
    )
    m = build_manifest(spec)
    for g, frac in zip(m.chips.geometry, m.chips["cloud_fraction"]):
        xmin, ymin, xmax, ymax = g.bounds
        xs, ys = np.meshgrid(np.arange(xmin + 10, xmax, 20), np.arange(ymin + 10, ymax, 20))
        assert frac == pytest.approx(truth.cloud_at(xs, ys).mean())
    assert (m.chips["cloud_fraction"] > 0.3).any()
    spec2 = spec_from_dirs(
        dirs("s2"),
        chip_size="160m",
        split=(1.0, 0.0, 0.0),
        cloud=CloudSpec(str(SCENE / "s2_scl")),
        max_cloud=0.3,
    )
    m2 = build_manifest(spec2)
    assert (m2.chips["cloud_fraction"] <= 0.3).all()
    cloudy = int((m.chips["cloud_fraction"] > 0.3).sum())
    assert m2.meta["dropped"] == {"more than 30% cloud": cloudy}
    assert len(m2.chips) == len(m.chips) - cloudy


def _warp(src_path: Path, dst_path: Path, crs: str = "EPSG:4326") -> Path:
    """Copy of a single-band GeoTIFF warped (nearest) into ``crs`` at GDAL's default size."""
    with rasterio.open(src_path) as src:
        tr, w, h = calculate_default_transform(src.crs, crs, src.width, src.height, *src.bounds)
        profile = {**src.profile, "crs": crs, "transform": tr, "width": w, "height": h}
        with rasterio.open(dst_path, "w", **profile) as dst:
            reproject(rasterio.band(src, 1), rasterio.band(dst, 1))
    return dst_path


def test_label_raster_and_cloud_layer_in_epsg4326(tmp_path: Path, truth) -> None:
    """WorldCover-style rasters in degrees: their GSD is taken in metres of the stack CRS
    (it was taken in degrees: a chip of 160 / 9e-5 pixels, a MemoryError)."""
    labels = _warp(SCENE / "labels.tif", tmp_path / "labels_4326.tif")
    scl = tmp_path / "scl"
    scl.mkdir()
    for f in sorted((SCENE / "s2_scl").glob("*.tif")):
        _warp(f, scl / f.name)
    with rasterio.open(labels) as src:
        assert src.crs.is_geographic and src.res[0] < 1e-3
    spec = spec_from_dirs(
        dirs("s2"),
        chip_size="160m",
        split=(1.0, 0.0, 0.0),
        labels=LabelSpec(str(labels), classes=truth.classes),
        cloud=CloudSpec(str(scl)),
    )
    m = build_manifest(spec)
    assert len(m.chips) == 48
    decided = 0
    for g, label, frac in zip(m.chips.geometry, m.chips["label"], m.chips["cloud_fraction"]):
        xmin, ymin, xmax, ymax = g.bounds
        xs, ys = np.meshgrid(np.arange(xmin + 5, xmax, 10), np.arange(ymin + 5, ymax, 10))
        counts = np.bincount(truth.class_at(xs, ys).ravel(), minlength=len(truth.classes))
        share = counts.max() / counts.sum()
        if share > 0.6:
            assert label == counts.argmax()
            decided += 1
        elif share < 0.4:
            assert label == -1
        assert frac == pytest.approx(truth.cloud_at(xs, ys).mean(), abs=0.1)
    assert decided >= 20


def test_chips_outside_the_cloud_layer_are_kept_and_counted(tmp_path: Path) -> None:
    """A cloud layer over part of the area: chips outside it get a NaN cloud fraction,
    are kept (not counted as too cloudy) and are reported in the summary."""
    scl = tmp_path / "scl"
    scl.mkdir()
    tile = SCENE / "s2_scl" / "T18SUJ_20230605T155819_SCL.tif"
    (scl / tile.name).write_bytes(tile.read_bytes())
    with rasterio.open(tile) as src:
        covered = shapely.box(*src.bounds)

    def build(max_cloud):
        return build_manifest(
            spec_from_dirs(
                dirs("s2"),
                chip_size="160m",
                split=(1.0, 0.0, 0.0),
                cloud=CloudSpec(str(scl)),
                max_cloud=max_cloud,
            )
        )

    every = build(None)
    outside = every.chips["cloud_fraction"].isna().to_numpy()
    expected = np.array([g.intersection(covered).area == 0 for g in every.chips.geometry])
    assert outside.any() and (~outside).any()
    np.testing.assert_array_equal(outside, expected)
    cloudy = int((every.chips["cloud_fraction"] > 0.3).sum())
    m = build(0.3)
    assert len(m.chips) == len(every.chips) - cloudy
    assert int(m.chips["cloud_fraction"].isna().sum()) == int(outside.sum())
    assert m.meta["dropped"] == ({"more than 30% cloud": cloudy} if cloudy else {})
    expected_line = f"cloud: {int(outside.sum())} chips outside the cloud layer"
    assert expected_line in m.summary()


def test_stack_chip_size_accepts_the_cli_syntax(full) -> None:
    assert len(CoRegisteredStack(full.path, chip_size="16px")) == len(full.chips)
    assert len(CoRegisteredStack(full.path, chip_size="160m")) == len(full.chips)
    assert len(CoRegisteredStack(full.path, chip_size=160)) == len(full.chips)
    with pytest.raises(ValueError, match=r"chip_size: 17px differs from the manifest's 160 m"):
        CoRegisteredStack(full.path, chip_size="17px")
    with pytest.raises(ValueError, match=r"chip_size: expected a length such as 640m"):
        CoRegisteredStack(full.path, chip_size="16 pixels")


def test_per_band_s2_and_time_matching(tmp_path: Path) -> None:
    scene = generate(
        tmp_path / "a", s2_layout="per_band", extent_m=(640.0, 480.0), dates={"s1": "20230601"}
    )
    both = {"s2": scene.root / "s2", "s1": scene.root / "s1"}
    m = build_manifest(spec_from_dirs(both, chip_size="160m", max_days=5, split=(1, 0, 0)))
    info = m.meta["modalities"]["s2"]
    assert info["separate_files"] and info["bands"] == list(get_s2_bands())
    assert (m.chips["date_s2"] == "2023-06-05").all() and (m.chips["date_s1"] == "2023-06-01").all()
    ds = CoRegisteredStack(m)
    sample = ds[0]
    assert sample["s2"].shape == (13, 16, 16) and sample["s1"].shape == (2, 16, 16)
    # B05 (20 m) read at 10 m: every value repeated in 2 x 2 blocks on the S2 pixel grid
    b05 = sample["s2"][4].numpy()
    assert np.array_equal(b05[::2, ::2], b05[1::2, 1::2])
    with pytest.raises(ValueError, match="within 2 days"):
        build_manifest(spec_from_dirs(both, chip_size="160m", max_days=2, split=(1, 0, 0)))


def get_s2_bands():
    from rsmm.sensors import get_sensor

    return get_sensor("s2").band_names


def test_summary_warns_about_an_empty_split(full) -> None:
    assert "warning" not in full.summary()  # split 1,0,0: empty val/test are wanted
    meta = {**full.meta, "split_fractions": [0.6, 0.2, 0.2]}
    lines = type(full)(chips=full.chips, meta=meta).summary().splitlines()
    assert lines[-2].startswith("warning: the val split is empty although its fraction is 0.2")
    assert lines[-1].startswith("warning: the test split is empty")
    assert "--block-size" in lines[-1]
