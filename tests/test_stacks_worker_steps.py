"""The per-chip steps a parallel manifest build runs in its workers (issue 22): vector
labels one chip at a time, contiguous runs of chips, the dedupe's fast path, and the
one-CRS build's UTM zone from the same rule as ``--crs auto``."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from types import SimpleNamespace

import geopandas as gpd
import numpy as np
import pytest
import shapely
from rasterio.crs import CRS
from test_stacks_multilabel import CRS as LABEL_CRS
from test_stacks_multilabel import TWO_CHIPS, polygons

from rsmm.stacks import build_manifest, spec_from_dirs
from rsmm.stacks.crs import choose_crs, utm_crs
from rsmm.stacks.labels import label_chips
from rsmm.stacks.parallel import MAX_RUN, batch_size, chip_runs, read_chips
from rsmm.stacks.spec import LabelSpec
from rsmm.stacks.vector_labels import VectorLabels, class_fractions, vector_chip_labels
from rsmm.stacks.zones import OVERLAP_TOLERANCE, dedupe, utm_epsg

SCENE = Path(__file__).parent / "data" / "stacks" / "scene"
UTM = LABEL_CRS  # EPSG:32618, the label polygons' CRS


def test_one_chip_at_a_time_gives_the_label_rules(tmp_path: Path) -> None:
    path = polygons(
        tmp_path,
        TWO_CHIPS,
    )
    chips = [
        shapely.box(0, 0, 100, 100),
        shapely.box(100, 0, 200, 100),
        shapely.box(0, 500, 9, 509),
    ]
    spec = LabelSpec(path, "lc", min_cover=0.5)
    vl = VectorLabels.load(spec, UTM)
    assert vl.classes == ["forest", "urban", "water"] and not vl.points
    assert np.allclose(vl.fractions(chips[0]), [0.35, 0.05, 0.60])
    assert np.allclose(vl.fractions(chips[1]), [0.96, 0.04, 0.0])
    assert [vl.chip_entries(c, spec) for c in chips] == [{"label": 2}, {"label": 0}, {"label": -1}]
    assert vl.chip_label(chips[0], min_cover=0.7) == -1  # water covers 60 % only
    multi = LabelSpec(path, "lc", multilabel=True, min_class_fraction=0.05)
    assert vl.chip_entries(chips[0], multi) == {"label": 2, "labels": [0, 1, 2]}
    assert vl.chip_entries(chips[2], multi) == {"label": -1, "labels": []}
    # the many-chip functions are the per-chip ones
    series, table = gpd.GeoSeries(chips, crs=UTM), vl_table(path)
    frac = class_fractions(series, table, vl.classes)
    assert np.array_equal(frac, np.stack([vl.fractions(c) for c in chips]))
    assert vector_chip_labels(series, table, vl.classes).tolist() == [2, 0, -1]


def vl_table(path: str) -> gpd.GeoDataFrame:
    from rsmm.stacks.vector_labels import load_vector_labels

    return load_vector_labels(LabelSpec(path, "lc"), UTM)


def test_points_vote_and_ties_go_to_the_lowest_id(tmp_path: Path) -> None:
    pts = [("b", shapely.Point(10, 10)), ("a", shapely.Point(20, 20)), ("b", shapely.Point(30, 30))]
    pts += [("a", shapely.Point(150, 50)), ("b", shapely.Point(160, 50))]
    spec = LabelSpec(polygons(tmp_path, pts), "lc")
    vl = VectorLabels.load(spec, UTM)
    assert vl.points and vl.classes == ["a", "b"]
    chips = [
        shapely.box(0, 0, 100, 100),
        shapely.box(100, 0, 200, 100),
        shapely.box(300, 0, 400, 9),
    ]
    assert [vl.chip_label(c) for c in chips] == [1, 0, -1]
    with pytest.raises(Exception, match="need polygons"):
        VectorLabels.load(LabelSpec(spec.path, "lc", multilabel=True), UTM)


def test_labels_the_reads_gave_are_the_labels_of_the_parent(tmp_path: Path) -> None:
    """label_chips with the reads' labeller keeps their columns; without it, it labels
    the chips itself: the same values."""
    path = polygons(
        tmp_path, [("water", shapely.box(0, 0, 150, 100)), ("crop", shapely.box(150, 0, 300, 100))]
    )
    boxes = [shapely.box(100 * i, 0, 100 * (i + 1), 100) for i in range(3)]
    spec = LabelSpec(path, "lc", multilabel=True, min_class_fraction=0.2)
    vl = VectorLabels.load(spec, UTM)
    rows = [{"files_s2": "[]", **vl.chip_entries(b, spec)} for b in boxes]
    from_reads = gpd.GeoDataFrame(rows, geometry=boxes, crs=UTM)
    here = gpd.GeoDataFrame({"files_s2": ["[]"] * 3}, geometry=boxes, crs=UTM)
    a = label_chips(from_reads, spec, UTM, "s2", labeller=vl)
    b = label_chips(here, spec, UTM, "s2")
    assert a == b and a[0] == ["crop", "water"]
    for col in ("label", "labels", "class_name"):
        assert from_reads[col].tolist() == here[col].tolist()
    assert here["labels"].tolist() == ["[1]", "[0, 1]", "[0]"]


def test_multilabel_one_crs_build_is_the_same_with_two_workers() -> None:
    spec = spec_from_dirs(
        {"s2": SCENE / "s2", "s1": SCENE / "s1"},
        chip_size="160m",
        crs=UTM,
        labels=LabelSpec(
            str(SCENE / "labels.gpkg"), "landcover", "fields", multilabel=True,
            min_class_fraction=0.1,
        ),
    )  # fmt: skip
    a, b = build_manifest(spec), build_manifest(spec, workers=2)
    assert a.meta["multilabel"] and len(a.chips) > 10
    assert a.chips.equals(b.chips)
    assert {k: v for k, v in a.meta.items() if k != "created"} == {
        k: v for k, v in b.meta.items() if k != "created"
    }


@pytest.mark.parametrize(("chips", "workers"), [(1, 2), (10, 2), (203, 3), (450, 2), (5000, 4)])
def test_runs_are_contiguous_long_first_and_short_last(chips: int, workers: int) -> None:
    runs = chip_runs(chips, workers)
    assert runs[0][0] == 0 and runs[-1][1] == chips
    assert all(a[1] == b[0] for a, b in pairwise(runs))  # every chip once, in order
    sizes = [b - a for a, b in runs]
    assert sizes == sorted(sizes, reverse=True)  # long runs first
    assert max(sizes) <= max(MAX_RUN, batch_size(chips, workers))
    assert all(s >= batch_size(chips, workers) for s in sizes[:-1])
    if chips >= 450:
        assert sizes[0] == MAX_RUN and sizes[-1] <= batch_size(chips, workers)


class _Square:
    def read(self, chip_id: str, chip: int) -> int:
        return chip * chip


def test_a_caller_that_stops_early_leaves_no_run_behind() -> None:
    it = read_chips(_Square(), [str(i) for i in range(300)], list(range(300)), workers=2)
    assert [next(it) for _ in range(3)] == [0, 1, 4]
    it.close()  # cancels the runs not started and joins the workers


def _reference_dedupe(geoms: np.ndarray, order: np.ndarray, groups: list[str]) -> np.ndarray:
    """The dedupe rule intersecting every kept chip it meets (no bounding-box test)."""
    tree, areas = shapely.STRtree(geoms), shapely.area(geoms)
    kept = np.zeros(len(geoms), dtype=bool)
    for i in np.argsort(order, kind="stable"):
        hits = tree.query(geoms[i], predicate="intersects")
        hits = hits[kept[hits]]
        if len(hits):
            shared = shapely.area(shapely.intersection(geoms[hits], geoms[i])) / areas[i]
            same = np.array([groups[h] == groups[i] for h in hits])
            if (shared > np.where(same, 1 - OVERLAP_TOLERANCE, OVERLAP_TOLERANCE)).any():
                continue
        kept[i] = True
    return kept


def test_dedupe_bounding_box_test_changes_no_choice() -> None:
    """Grids of touching chips, shifted and rotated copies, the same chip twice."""
    rng = np.random.default_rng(0)
    geoms, groups = [], []
    for g, (dx, dy, angle) in enumerate(
        [(0, 0, 0), (0.3, 0.1, 0), (0, 0, 0), (0.05, 0, 7), (1e-4, 0, 0)]
    ):
        for x in range(6):
            for y in range(5):
                box = shapely.box(x + dx, y + dy, x + dx + 1, y + dy + 1)
                geoms.append(shapely.affinity.rotate(box, angle, origin=(3, 3)))
                groups.append(f"g{g % 4}")
    geoms_a = shapely.segmentize(np.array(geoms), 0.1)
    for seed in range(3):
        order = rng.permutation(len(geoms_a)) if seed else np.arange(len(geoms_a))
        got = dedupe(geoms_a, order, groups)
        assert np.array_equal(got, _reference_dedupe(geoms_a, order, groups))
        assert 0 < got.sum() < len(geoms_a)


@pytest.mark.parametrize(
    ("lon", "lat"),
    [(5.0, 60.0), (2.9, 60.0), (10.0, 78.0), (22.0, 78.0), (-77.0, 38.0), (4.0, -60.0)],
)
def test_one_crs_utm_zone_is_the_auto_builds_zone(lon: float, lat: float) -> None:
    box = (lon - 0.05, lat - 0.05, lon + 0.05, lat + 0.05)
    assert utm_crs(box) == CRS.from_epsg(int(utm_epsg(lon, lat)))


def test_one_crs_fallback_in_south_west_norway_is_zone_32() -> None:
    """Files in degrees over Bergen (5.3 E, 60.4 N): no file CRS fits, so the build
    falls back on the area's UTM zone: 32 (EPSG:32632, Sentinel-2's 32V tiles), not the
    plain 6-degree band's 31."""
    source = SimpleNamespace(
        lonlat_bounds=(5.25, 60.35, 5.35, 60.45),
        crs=CRS.from_epsg(4326),
        spec=SimpleNamespace(sensor="s2"),
    )
    spec = SimpleNamespace(crs=None)
    crs, note = choose_crs(spec, {"s2": source})  # type: ignore[arg-type]
    assert crs == CRS.from_epsg(32632) and note.startswith("the area's UTM zone")
