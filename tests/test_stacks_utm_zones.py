"""UTM zones of chip centres with the Norway and Svalbard exceptions (rsmm.stacks.zones).

The independent reference is pyproj's UTM zone query (the EPSG database's areas of
use). Those areas are the plain 6-degree bands, so inside an exception pyproj names
the plain band's zone: there the test checks that it does (the point is inside an
exception) and that rsmm names the exception's zone instead.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from pyproj import Transformer
from pyproj.aoi import AreaOfInterest
from pyproj.database import query_utm_crs_info

from rsmm.stacks.zones import Anchor, chip_zone, home_mask, utm_epsg


def pyproj_zones(lon: float, lat: float) -> list[int]:
    """The WGS 84 UTM EPSG codes pyproj gives for the point ``(lon, lat)``."""
    info = query_utm_crs_info(
        datum_name="WGS 84", area_of_interest=AreaOfInterest(lon, lat, lon, lat)
    )
    return sorted(int(i.code) for i in info)


# (lon, lat, the zone rsmm gives, the plain band's zone where an exception applies)
POINTS = [
    # zone 32 over south-west Norway: 3-12 E, 56-64 N
    (2.9, 60.0, 31, None),  # west of the west edge
    (3.1, 60.0, 32, 31),
    (11.9, 60.0, 32, None),  # the east edge is also a plain band edge
    (12.1, 60.0, 33, None),
    (4.0, 55.9, 31, None),  # south of the south edge
    (4.0, 56.1, 32, 31),
    (4.0, 63.9, 32, 31),
    (4.0, 64.1, 31, None),  # north of the north edge
    # Svalbard, 72-84 N: 31 (0-9 E), 33 (9-21 E), 35 (21-33 E), 37 (33-42 E)
    (-0.1, 78.0, 30, None),
    (0.1, 78.0, 31, None),
    (7.0, 71.9, 32, None),  # south of the south edge
    (7.0, 72.1, 31, 32),
    (7.0, 83.9, 31, 32),
    (8.9, 78.0, 31, 32),
    (9.1, 78.0, 33, 32),
    (20.9, 78.0, 33, 34),
    (21.1, 78.0, 35, 34),
    (32.9, 78.0, 35, 36),
    (33.1, 78.0, 37, 36),
    (41.9, 78.0, 37, None),
    (42.1, 78.0, 38, None),
    # the exceptions are northern only
    (4.0, -60.0, 31, None),
    (10.0, -78.0, 32, None),
]


@pytest.mark.parametrize(("lon", "lat", "zone", "plain"), POINTS)
def test_zone_of_a_point_either_side_of_every_exception_edge(
    lon: float, lat: float, zone: int, plain: int | None
) -> None:
    hemisphere = 32600 if lat >= 0 else 32700
    assert int(utm_epsg(lon, lat)) == hemisphere + zone
    reference = pyproj_zones(lon, lat)
    if plain is None:  # outside the exceptions: pyproj is the reference
        assert reference == [hemisphere + zone]
    else:  # inside: pyproj has the plain band, rsmm the exception's zone
        assert reference == [hemisphere + plain]
        assert plain != zone


def test_zones_of_many_points_at_once_match_one_by_one() -> None:
    lon = np.array([p[0] for p in POINTS])
    lat = np.array([p[1] for p in POINTS])
    one_by_one = [int(utm_epsg(x, y)) for x, y in zip(lon, lat)]
    assert utm_epsg(lon, lat).tolist() == one_by_one


def test_regular_bands_match_pyproj_away_from_the_exceptions() -> None:
    # one point in the middle of every 6-degree band, north and south
    for zone in range(1, 61):
        lon = -180.0 + 6.0 * zone - 3.0
        for lat in (-45.0, 45.0):
            assert [int(utm_epsg(lon, lat))] == pyproj_zones(lon, lat)


def test_top_of_utm_belongs_to_svalbard_and_north_of_it_the_plain_band() -> None:
    assert int(utm_epsg(7.0, 84.0)) == 32631
    assert int(utm_epsg(7.0, 84.1)) == 32632
    assert pyproj_zones(7.0, 84.1) == []  # UTM ends at 84 N (UPS beyond)


def _box_at(lon: float, lat: float, crs: str, size: float = 600.0) -> shapely.Polygon:
    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
    return shapely.box(x - size / 2, y - size / 2, x + size / 2, y + size / 2)


def test_a_chip_on_the_norwegian_coast_is_at_home_in_zone_32() -> None:
    # a 32V Sentinel-2 tile and a 31V one both cover 4.5 E 60 N: the chip belongs to
    # zone 32 (the exception), so the 32 tile lays it and the 31 tile leaves it
    bounds = (3.0, 59.5, 6.0, 60.5)
    a32 = Anchor(32632, "EPSG:32632", "t32.jp2", (0.0, 0.0), True, bounds)
    a31 = Anchor(32631, "EPSG:32631", "t31.jp2", (0.0, 0.0), True, bounds)
    box32 = np.array([_box_at(4.5, 60.0, "EPSG:32632")], dtype=object)
    box31 = np.array([_box_at(4.5, 60.0, "EPSG:32631")], dtype=object)
    assert chip_zone(box31, "EPSG:32631").tolist() == [32632]
    keep, home = home_mask(box32, a32, [a32, a31])
    assert keep.tolist() == [True] and home.tolist() == [True]
    keep, home = home_mask(box31, a31, [a32, a31])
    assert keep.tolist() == [False] and home.tolist() == [False]
