"""The steps of a manifest build on known inputs (no files): chip layout, acquisition
choice, band statistics and the CRS checks."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest
import shapely
from rasterio.crs import CRS

from rsmm.errors import ConfigError
from rsmm.stacks.acquisitions import choose_acquisitions
from rsmm.stacks.crs import crs_problem, utm_crs
from rsmm.stacks.layout import ChipGrid, lay_chips
from rsmm.stacks.stats import band_sums, train_statistics


def grid(chip_px: int = 16, stride_px: int = 16) -> ChipGrid:
    return ChipGrid("s2", 10.0, chip_px, stride_px, 4 * chip_px, {"s2": chip_px})


@pytest.mark.parametrize(("stride_px", "n"), [(16, 5 * 3), (8, 10 * 6)])
def test_chips_are_laid_on_the_anchor_pixel_grid(stride_px: int, n: int) -> None:
    # 960 m x 640 m; pixel edges at x = 5 + 10 i, y = 645 - 10 j: the first whole pixel
    # inside is x = 1005, y = 635, leaving 955 m x 635 m for 160 m chips
    foot = shapely.box(1000.0, 0.0, 1960.0, 640.0)
    out = lay_chips(grid(16, stride_px), foot, (5.0, 645.0), "EPSG:32618")
    assert len(out.boxes) == n
    assert out.origin == (1005.0, 635.0)
    assert out.boxes[0].bounds == (1005.0, 475.0, 1165.0, 635.0)
    assert shapely.covers(foot, out.boxes).all()
    edges = np.array([b.bounds for b in out.boxes])
    assert np.allclose((edges[:, [0, 2]] - 5.0) % 10.0, 0) and np.allclose(
        edges[:, 2] - edges[:, 0], 160
    )


def test_only_chips_inside_the_footprint_are_kept() -> None:
    # an L: the top-right 320 m x 320 m square is missing
    foot = shapely.box(0, 0, 640, 320).union(shapely.box(0, 320, 320, 640))
    out = lay_chips(grid(), foot, (0.0, 0.0), "EPSG:32618")
    assert len(out.boxes) == 4 * 2 + 2 * 2
    assert not any(b.intersection(shapely.box(320, 320, 640, 640)).area for b in out.boxes)
    assert set(zip(out.cols.tolist(), out.rows.tolist())) >= {(0, 0), (1, 1), (3, 3)}


def test_a_chip_larger_than_the_footprint_is_refused() -> None:
    with pytest.raises(ConfigError, match="larger than the overlap"):
        lay_chips(grid(), shapely.box(0, 0, 150, 1000), (0.0, 0.0), "EPSG:32618")


def day(d: int) -> datetime:
    return datetime(2023, 6, 1) + timedelta(days=d)


def test_acquisitions_are_matched_in_time() -> None:
    options = {
        "s2": [(day(0), ["s2_a"], 1.0), (day(10), ["s2_b"], 0.9)],
        "s1": [(day(9), ["s1_a"], 1.0)],
        "naip": [(day(-200), ["naip_a"], 0.5)],
    }
    timed, required = ["s2", "s1"], ["s2", "s1"]
    # without a tolerance: the best covering file of each
    got = choose_acquisitions(options, timed, None, required)
    assert {k: a[1][0] for k, a in got.items()} == {"s2": "s2_a", "s1": "s1_a", "naip": "naip_a"}
    # within 2 days: the second S2 date is the only one with an S1 image near it
    got = choose_acquisitions(options, timed, 2, required)
    assert {k: a[1][0] for k, a in got.items()} == {"s2": "s2_b", "s1": "s1_a", "naip": "naip_a"}
    assert choose_acquisitions(options, timed, 0.5, required) is None
    # an optional timed modality too far in time is left out, the chip is kept
    got = choose_acquisitions(options, timed, 0.5, ["s2"])
    assert set(got) == {"s2", "naip"}


def test_train_statistics_are_the_nan_free_moments_of_the_train_chips() -> None:
    rng = np.random.default_rng(0)
    chips = [rng.normal(5.0, 2.0, (2, 4, 4)) for _ in range(3)]
    chips[0][1, :2] = np.nan
    sums = [{"s2": band_sums(c)} for c in chips]
    sums[2]["naip"] = band_sums(np.ones((1, 2, 2)))
    stats, counted = train_statistics(sums, [0, 1], {"s2": ("B02", "B03"), "naip": ("R",)})
    both = np.concatenate([chips[0], chips[1]], axis=1)
    for i, b in enumerate(("B02", "B03")):
        assert stats["s2"][b] == pytest.approx([np.nanmean(both[i]), np.nanstd(both[i])])
    assert "naip" not in stats and counted == {"s2": 2, "naip": 0}
    assert train_statistics(sums, [], {"s2": ("B02", "B03")}) == (None, {})


def test_utm_zone_and_scale_checks() -> None:
    assert utm_crs((14.0, 44.0, 16.0, 46.0)) == CRS.from_epsg(32633)
    assert utm_crs((-70.5, -34.0, -69.5, -33.0)) == CRS.from_epsg(32719)
    area = (14.9, 44.9, 15.1, 45.1)
    assert crs_problem(CRS.from_epsg(32633), area) is None
    # Web Mercator: 1 / cos(45.1 deg) at the north edge
    assert "distorts distances by 42% over the area (scale factor 1.417)" == crs_problem(
        CRS.from_epsg(3857), area
    )
    assert "geographic" in crs_problem(CRS.from_epsg(4326), area)
