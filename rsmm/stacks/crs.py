"""The one coordinate reference system of ``--crs EPSG:xxxx``, and pixel sizes in it.

(With ``--crs auto``, the default, every chip is in its own UTM zone instead:
:mod:`rsmm.stacks.zones`.)

Chips are squares of ``chip_size`` metres, so the stack's CRS must be projected, in
metres, and keep distances within :data:`MAX_SCALE_ERROR` over the area.
:func:`choose_crs` takes the one given with ``--crs`` (refused if it does not fit),
else the CRS of the Sentinel-2 files, else of the first modality that fits, else the
area's UTM zone (:func:`utm_crs`), and says where it came from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rasterio.crs import CRS

from rsmm.errors import ConfigError
from rsmm.stacks.files import union_bounds
from rsmm.stacks.spec import StackSpec
from rsmm.stacks.zones import utm_epsg

if TYPE_CHECKING:
    from rsmm.stacks.sources import ModalitySource

#: Largest scale error of the common CRS over the area (1 %): beyond it, chip metres
#: are not metres on the ground (Web Mercator at 45 degrees N is off by 41 %).
MAX_SCALE_ERROR = 0.01

#: ``(west, south, east, north)`` in degrees (EPSG:4326).
LonLatBox = tuple[float, float, float, float]


def common_crs(spec: StackSpec, sources: Mapping[str, ModalitySource]) -> CRS:
    """The stack's CRS (see :func:`choose_crs`)."""
    return choose_crs(spec, sources)[0]


def choose_crs(spec: StackSpec, sources: Mapping[str, ModalitySource]) -> tuple[CRS, str]:
    """The stack's common CRS and a note saying where it comes from.

    Chips are laid out in metres of this CRS, so it must be projected in metres and
    keep distances within :data:`MAX_SCALE_ERROR` over the area. A CRS given with
    ``--crs`` that does not is refused. Otherwise the CRS of the Sentinel-2 files is
    used, else the first modality's whose CRS fits, else the area's UTM zone (e.g. for
    Sentinel-1 exported in Web Mercator or files in EPSG:4326).

    Raises:
        ConfigError: for an unknown CRS, or a given CRS that is geographic, not in
            metres, or distorts distances over the area.
    """
    area = union_bounds([s.lonlat_bounds for s in sources.values()])
    if spec.crs is not None:
        crs = parse_crs(spec.crs)
        problem = crs_problem(crs, area)
        if problem is not None:
            raise ConfigError(
                f"crs: {spec.crs} {problem}, so chip metres would not be metres on the "
                "ground; give a local projected CRS in metres such as "
                f"the area's UTM zone {utm_crs(area).to_string()}, or leave --crs out"
            )
        return crs, f"given with --crs ({spec.crs})"
    order = sorted(sources, key=lambda k: sources[k].spec.sensor != "s2")
    rejected = []
    for k in order:
        problem = crs_problem(sources[k].crs, area)
        if problem is None:
            note = f"the {k} files' CRS"
            if rejected:
                note += " (" + "; ".join(rejected) + ")"
            return sources[k].crs, note
        rejected.append(f"the {k} files' {crs_name(sources[k].crs)} {problem}")
    return utm_crs(area), "the area's UTM zone (" + "; ".join(rejected) + ")"


def parse_crs(text: str) -> CRS:
    """The rasterio CRS of a user's ``--crs`` (``"EPSG:32618"``, WKT, PROJ string).

    Raises:
        ConfigError: naming the text if PROJ does not know it.
    """
    from pyproj import CRS as ProjCRS
    from pyproj.exceptions import CRSError as ProjCRSError

    try:  # pyproj first: rasterio lets GDAL print "ERROR 1: PROJ: ..." on stderr
        given = ProjCRS.from_user_input(text)
    except ProjCRSError as err:
        raise ConfigError(f"crs: {text!r} is not a known CRS ({err})") from err
    return CRS.from_wkt(given.to_wkt())


def crs_name(crs: CRS) -> str:
    """``"EPSG:xxxx"``, else the PROJ projection name (for messages)."""
    return crs.to_string() if crs.to_epsg() is not None else (crs.to_dict().get("proj") or "?")


def crs_problem(crs: CRS, area: LonLatBox) -> str | None:
    """Why ``crs`` cannot hold chips measured in metres over ``area``, or ``None``."""
    from pyproj import Proj

    if not crs.is_projected:
        kind = "geographic, in degrees" if crs.is_geographic else "not projected"
        return f"is not a projected CRS in metres (it is {kind})"
    if (crs.linear_units or "").lower() not in ("metre", "meter", "m"):
        return f"is not a projected CRS in metres (its unit is {crs.linear_units})"
    w, s, e, n = area
    lon = np.array([w, e, w, e, (w + e) / 2])
    lat = np.array([s, s, n, n, (s + n) / 2])
    try:
        f = Proj(crs.to_wkt()).get_factors(lon, lat)
        scale = np.concatenate([np.ravel(f.meridional_scale), np.ravel(f.parallel_scale)])
    except Exception:  # projections pyproj cannot differentiate are accepted
        return None
    err = float(np.nanmax(np.abs(scale - 1))) if np.isfinite(scale).any() else 0.0
    if err <= MAX_SCALE_ERROR:
        return None
    k = float(scale[np.nanargmax(np.abs(scale - 1))])
    return f"distorts distances by {err:.0%} over the area (scale factor {k:.3f})"


def utm_crs(area: LonLatBox | Sequence[float]) -> CRS:
    """The WGS 84 UTM zone holding the centre of ``area`` (degrees, west south east north).

    The zone is :func:`rsmm.stacks.zones.utm_epsg`'s, the one rule of every build: the
    6-degree bands with the Norway and Svalbard exceptions (an area centred at 5 E,
    60 N is in zone 32, EPSG:32632, as Sentinel-2's 32V tiles are), so a one-CRS
    build falls back on the zone a ``--crs auto`` build would put its chips in.
    """
    lon, lat = (area[0] + area[2]) / 2, (area[1] + area[3]) / 2
    return CRS.from_epsg(int(utm_epsg(lon, lat)))


def gsd_in_crs(path: str | Path, crs: CRS) -> float:
    """Pixel size in metres of the raster ``path`` once warped into the projected ``crs``.

    A raster in a geographic CRS (degrees, e.g. ESA WorldCover in EPSG:4326) gets the
    size GDAL would choose when warping it into ``crs``, so that chip pixel counts
    are ``chip metres / GSD`` in metres, never in degrees.
    """
    import rasterio
    from rasterio.warp import calculate_default_transform

    with rasterio.open(path) as src:
        if src.crs == crs:
            return float(min(abs(src.res[0]), abs(src.res[1])))
        transform, _, _ = calculate_default_transform(
            src.crs, crs, src.width, src.height, *src.bounds
        )
    return float(min(abs(transform.a), abs(transform.e)))
