"""Chips in their own UTM zone (``--crs auto``, the default): zones, anchors, dedupe.

With ``--crs auto`` every chip is a square of ``chip_size`` metres in the WGS 84 UTM
zone of its centre, laid on the pixel grid of one file of the reference modality
(Sentinel-2 if required): each reference file in a UTM zone anchors chips at its own
top-left corner (:func:`zone_plan`), so a 1.2 km BigEarthNet patch starting at any
x holds 2 x 2 chips of 600 m, and those chips are read without resampling. A
UTM zone on the NAD83 or ETRS89 datum (NAIP) keeps its own CRS. A reference file in
another CRS (Web Mercator, degrees, a state plane) anchors chips on the GSD grid of the
WGS 84 UTM zone of its centre, from that zone's origin.

A chip laid on a file of zone Z whose centre lies in zone Z' is kept only when no
reference file of Z' holds that centre (Sentinel-2 tiles reach past their zone's
edge; the tile of the neighbouring zone gives that ground its chips). Where files
overlap, a piece of ground gives one chip: chips are kept in order (chips in the
zone of their centre first, then file order) and a chip overlapping a kept one by
more than :data:`OVERLAP_TOLERANCE` of its area is dropped, unless both lie on one
grid (overlapping as the stride lays them; then only the same chip twice is dropped)
(:func:`dedupe`, in lon/lat, so across zones too).

Zones are the 6-degree bands with the standard exceptions (:data:`UTM_EXCEPTIONS`:
zone 32 widened over south-west Norway, zones 31, 33, 35 and 37 over Svalbard), as
Sentinel-2's MGRS tiles use them (a ``32V`` tile on the Norwegian coast at 4 E is in
EPSG:32632, not 32631). Block splits use :data:`BLOCK_CRS`, one equal-area grid for
every zone (see :func:`equal_area`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from rasterio.crs import CRS

#: The ``--crs`` value (and the default) that puts every chip in its own UTM zone.
AUTO = "auto"
#: CRS of the GeoParquet geometry column of an ``auto`` manifest.
GEOMETRY_CRS = "EPSG:4326"
#: Global equal-area CRS (NSIDC EASE-Grid 2.0, metres) of the block grid across zones.
BLOCK_CRS = "EPSG:6933"
#: Share of a chip's area another chip may overlap before one of them is dropped.
OVERLAP_TOLERANCE = 1e-3
#: Points per chip edge when chips are moved between CRSs (edges bend slightly).
EDGE_POINTS = 16


def is_auto(crs: str | None) -> bool:
    """Whether a spec's ``crs`` asks for per-zone chips (``None`` or ``"auto"``)."""
    return crs is None or str(crs).strip().lower() == AUTO


#: The standard exceptions to the 6-degree UTM bands, ``(west, east, south, north,
#: zone)`` in degrees: zone 32 widened to 3-12 E between 56 and 64 N (south-west
#: Norway; zone 31 narrowed to 0-3 E there) and, between 72 and 84 N (Svalbard), zones
#: 31, 33, 35 and 37 widened to 9 or 12 degrees (zones 32, 34 and 36 are not used).
#: West and south edges belong to the exception, east and north edges do not, except
#: 84 N, the top of UTM.
UTM_EXCEPTIONS = ((3.0, 12.0, 56.0, 64.0, 32),
                  (0.0, 9.0, 72.0, 84.0, 31), (9.0, 21.0, 72.0, 84.0, 33),
                  (21.0, 33.0, 72.0, 84.0, 35), (33.0, 42.0, 72.0, 84.0, 37))  # fmt: skip
#: The northern limit of UTM (a band ending there includes it).
UTM_NORTH = 84.0


def utm_epsg(lon: Any, lat: Any) -> np.ndarray:
    """EPSG code of the WGS 84 UTM zone of every ``(lon, lat)`` (326zz north, 327zz
    south), with the Norway and Svalbard exceptions (:data:`UTM_EXCEPTIONS`)."""
    lon, lat = np.asarray(lon, np.float64), np.asarray(lat, np.float64)
    zone = np.clip(np.floor((lon + 180.0) / 6.0).astype(np.int64) + 1, 1, 60)
    for west, east, south, north, number in UTM_EXCEPTIONS:
        below = lat <= north if north >= UTM_NORTH else lat < north
        inside = (lon >= west) & (lon < east) & (lat >= south) & below
        zone = np.where(inside, number, zone)
    return np.where(lat >= 0, 32600, 32700) + zone


#: EPSG ranges of UTM zones on other datums: ``(first code, last code, WGS 84 code of
#: the first)``: NAD83 (NAIP's CRS) and ETRS89. Files in them keep their own CRS.
UTM_DATUMS = ((32601, 32660, 32601), (32701, 32760, 32701), (26901, 26923, 32601),
              (25828, 25838, 32628))  # fmt: skip


def utm_zone_of(crs: CRS) -> int | None:
    """The WGS 84 UTM EPSG code of the zone ``crs`` is, if it is a UTM zone (WGS 84,
    NAD83 or ETRS89), else ``None``."""
    code = crs.to_epsg()
    for first, last, wgs84 in UTM_DATUMS:
        if code is not None and first <= code <= last:
            return wgs84 + code - first
    return None


@dataclass(frozen=True)
class Anchor:
    """One reference file laying chips in a zone.

    Attributes:
        epsg: the zone's WGS 84 UTM EPSG code (which zone it is).
        crs: the CRS its chips are laid and read in: the file's own if it is a UTM
            zone (WGS 84, NAD83 or ETRS89), else ``"EPSG:<epsg>"``.
        path: the file (its first band's file for per-band products).
        origin: top-left corner ``(x, y)`` chips are laid from, in the zone's metres
            (the file's own corner, or the zone's origin ``(0, 0)`` for a file in
            another CRS).
        own_grid: whether ``origin`` is the file's own pixel grid.
        lonlat_bounds: the file's ``(west, south, east, north)`` in degrees.
    """

    epsg: int
    crs: str
    path: str
    origin: tuple[float, float]
    own_grid: bool
    lonlat_bounds: tuple[float, float, float, float]


def zone_plan(paths: Sequence[str]) -> list[Anchor]:
    """The :class:`Anchor` of every reference file, in file order."""
    import rasterio
    from rasterio.warp import transform_bounds

    out = []
    for path in paths:
        with rasterio.open(path) as src:
            crs, tr, bounds = src.crs, src.transform, src.bounds
        ll = transform_bounds(crs, GEOMETRY_CRS, *bounds, densify_pts=21)
        epsg = utm_zone_of(crs)
        if epsg is not None:
            out.append(Anchor(epsg, crs.to_string(), path, (tr.c, tr.f), True, ll))
        else:
            code = int(utm_epsg((ll[0] + ll[2]) / 2, (ll[1] + ll[3]) / 2))
            out.append(Anchor(code, f"EPSG:{code}", path, (0.0, 0.0), False, ll))
    return out


def to_crs(geoms: Any, src: str, dst: str, chip_m: float | None = None) -> np.ndarray:
    """Polygons moved from ``src`` to ``dst``; with ``chip_m`` (metres of ``src``), chip
    edges get :data:`EDGE_POINTS` points first so that they may bend."""
    import geopandas as gpd
    import shapely

    geoms = np.asarray(geoms)
    if chip_m is not None:
        geoms = shapely.segmentize(geoms, chip_m / EDGE_POINTS)
    return np.asarray(gpd.GeoSeries(geoms, crs=src).to_crs(dst).values)


def chip_zone(boxes: Any, crs: str) -> np.ndarray:
    """WGS 84 UTM EPSG code of the centre of every chip of ``boxes`` (polygons in ``crs``)."""
    import shapely
    from pyproj import Transformer

    centres = shapely.centroid(np.asarray(boxes))
    t = Transformer.from_crs(crs, GEOMETRY_CRS, always_xy=True)
    lon, lat = t.transform(shapely.get_x(centres), shapely.get_y(centres))
    return utm_epsg(lon, lat)


def home_mask(
    boxes: Any, anchor: Anchor, anchors: Sequence[Anchor]
) -> tuple[np.ndarray, np.ndarray]:
    """Which chips of ``anchor`` to keep, and which of them lie in their centre's zone.

    A chip whose centre is in another zone is kept only if no reference file of that
    zone holds the centre (see the module docstring).
    """
    import shapely
    from pyproj import Transformer

    zones = chip_zone(boxes, anchor.crs)
    home = zones == anchor.epsg
    keep = home.copy()
    if (~home).any():
        centres = shapely.centroid(np.asarray(boxes))
        t = Transformer.from_crs(anchor.crs, GEOMETRY_CRS, always_xy=True)
        lon, lat = t.transform(shapely.get_x(centres), shapely.get_y(centres))
        for i in np.flatnonzero(~home):
            held = any(
                a.epsg == zones[i]
                and a.lonlat_bounds[0] <= lon[i] <= a.lonlat_bounds[2]
                and a.lonlat_bounds[1] <= lat[i] <= a.lonlat_bounds[3]
                for a in anchors
            )
            keep[i] = not held
    return keep, home


def grid_key(anchor: Anchor, stride_m: float, gsd: float) -> tuple[str, int, int]:
    """Anchors with the same key lay chips on one grid (same zone, origins a whole
    number of strides apart): their chips coincide where they overlap."""
    ox, oy = anchor.origin
    return (
        anchor.crs,
        round((ox % stride_m) / gsd * 1000) % round(stride_m / gsd * 1000),
        round((oy % stride_m) / gsd * 1000) % round(stride_m / gsd * 1000),
    )


def dedupe(lonlat_geoms: Any, order: np.ndarray, groups: Sequence[Any]) -> np.ndarray:
    """Mask of the chips kept so that a piece of ground gives one chip.

    Chips are taken in ``order`` (lowest first). A chip is dropped when a kept chip of
    the same grid (``groups``, :func:`grid_key`) is the same chip, or a kept chip of
    another grid overlaps it by more than :data:`OVERLAP_TOLERANCE` of its area (chips
    of one grid may overlap as the stride lays them).

    Args:
        lonlat_geoms: chip polygons in degrees (any zone).
        order: the priority of every chip.
        groups: the grid of every chip.
    """
    import shapely

    geoms = np.asarray(lonlat_geoms)
    areas = shapely.area(geoms)
    codes: dict[Any, int] = {}
    group = np.array([codes.setdefault(g, len(codes)) for g in groups], dtype=np.int64)
    rank = np.empty(len(geoms), dtype=np.int64)
    rank[np.argsort(order, kind="stable")] = np.arange(len(geoms))
    i, j, limit = _near_pairs(geoms, areas, group, rank)
    kept = np.ones(len(geoms), dtype=bool)  # a chip near no chip taken before it
    first = np.flatnonzero(np.r_[True, i[1:] != i[:-1]]) if len(i) else np.zeros(0, int)
    for a, b in zip(first, np.r_[first[1:], len(i)]):  # by rank: earlier chips are final
        c, mine = i[a], slice(a, b)
        taken = kept[j[mine]]
        shared = shapely.area(shapely.intersection(geoms[j[mine]][taken], geoms[c])) / areas[c]
        kept[c] = not (shared > limit[mine][taken]).any()
    return kept


#: Chips whose intersecting pairs :func:`dedupe` looks at in one go (bounds its memory).
PAIR_BLOCK = 65536


def _near_pairs(
    geoms: np.ndarray, areas: np.ndarray, group: np.ndarray, rank: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(i, j, limit)`` of every chip ``i`` and chip ``j`` taken before it that
    intersect with bounding boxes overlapping by more than the share of ``i`` they
    may share (``limit``), ordered by ``rank[i]``. The overlap of two bounding boxes
    bounds the shared area from above: the other pairs (neighbours of one grid,
    which only touch) can drop no chip."""
    import shapely

    tree, box = shapely.STRtree(geoms), shapely.bounds(geoms)
    out: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for start in range(0, len(geoms), PAIR_BLOCK):
        i, j = tree.query(geoms[start : start + PAIR_BLOCK], predicate="intersects")
        i = i + start
        limit = np.where(group[i] == group[j], 1 - OVERLAP_TOLERANCE, OVERLAP_TOLERANCE)
        w = np.minimum(box[i, 2], box[j, 2]) - np.maximum(box[i, 0], box[j, 0])
        h = np.minimum(box[i, 3], box[j, 3]) - np.maximum(box[i, 1], box[j, 1])
        near = np.maximum(w, 0) * np.maximum(h, 0) / areas[i] > limit * (1 - 1e-9)
        near &= rank[j] < rank[i]
        out.append((i[near], j[near], limit[near]))
    i, j, limit = (np.concatenate(v) for v in zip(*out)) if out else (np.zeros(0, int),) * 3
    by = np.argsort(rank[i], kind="stable")
    return i[by], j[by], limit[by]


def equal_area(lonlat_geoms: Any) -> np.ndarray:
    """Chip polygons (degrees) in :data:`BLOCK_CRS`, where the block grid of every zone is one.

    Blocks of ``block_size`` metres are squares of that area on EASE-Grid 2.0 (equal
    area, true scale at 30 degrees; blocks are taller than wide nearer the poles).
    """
    return to_crs(lonlat_geoms, GEOMETRY_CRS, BLOCK_CRS)
