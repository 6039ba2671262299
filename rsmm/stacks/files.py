"""Finding a stack's raster files and checking that each opens and reads.

torchgeo's :class:`~torchgeo.datasets.RasterDataset` skips unreadable files silently;
rsmm names them, all of them in one error (:func:`check_geotiffs`). Acquisition dates
come from the file names (:func:`parse_date`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import numpy as np
from rasterio.crs import CRS

from rsmm.errors import CorruptFilesError, DatasetFileError, DatasetNotFoundError

_DATE = re.compile(r"(?<!\d)((?:19|20)\d{6})(?!\d)")


def list_files(root: str | Path, glob: str, what: str) -> list[str]:
    """Absolute paths of the files under ``root`` matching ``glob``, sorted.

    Raises:
        DatasetNotFoundError: if ``root`` is not a folder or nothing matches (the
            message names ``what``, e.g. the modality, and the folder).
    """
    folder = Path(root)
    if not folder.is_dir():
        raise DatasetNotFoundError(f"{what} folder not found: {folder} is not a directory")
    files = sorted(os.path.abspath(p) for p in folder.rglob(glob) if p.is_file())
    if not files:
        raise DatasetNotFoundError(f"{what}: no files matching {glob!r} under {folder}")
    return files


def parse_date(name: str) -> datetime | None:
    """The first ``YYYYMMDD`` date (years 1900-2099) in a file name, or ``None``."""
    for m in _DATE.finditer(name):
        try:
            return datetime.strptime(m.group(1), "%Y%m%d")
        except ValueError:
            continue
    return None


class GeoTiffInfo(NamedTuple):
    """What :func:`check_geotiff` reads of a file's header."""

    crs: CRS
    res: tuple[float, float]
    count: int
    #: ``(west, south, east, north)`` in degrees (EPSG:4326)
    lonlat_bounds: tuple[float, float, float, float]


def check_geotiff(path: str | Path) -> GeoTiffInfo:
    """Open a GeoTIFF and read its last pixel of every band.

    Raises:
        DatasetFileError: naming the file if it is corrupt, truncated or has no CRS.
    """
    import rasterio
    from rasterio.errors import RasterioError
    from rasterio.warp import transform_bounds
    from rasterio.windows import Window

    try:
        with rasterio.open(path) as src:
            src.read(window=Window(src.width - 1, src.height - 1, 1, 1))
            crs, res, count, bounds = src.crs, src.res, src.count, src.bounds
    except (RasterioError, OSError) as err:
        raise DatasetFileError(f"corrupt or unreadable GeoTIFF {path}: {err}") from err
    if crs is None:
        raise DatasetFileError(f"GeoTIFF {path} has no CRS (it cannot be placed on the ground)")
    return GeoTiffInfo(crs, res, count, transform_bounds(crs, "EPSG:4326", *bounds))


def union_bounds(boxes: Sequence[Sequence[float]]) -> tuple[float, float, float, float]:
    """The ``(xmin, ymin, xmax, ymax)`` box holding every one of ``boxes``."""
    b = np.asarray(boxes, dtype=np.float64)
    return float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max())


def check_geotiffs(paths: Sequence[str]) -> dict[str, GeoTiffInfo]:
    """:func:`check_geotiff` on every file of ``paths``.

    Raises:
        CorruptFilesError: naming every file that failed, not only the first.
    """
    infos, bad = {}, []
    for path in paths:
        try:
            infos[path] = check_geotiff(path)
        except DatasetFileError as err:
            bad.append(str(err))
    if bad:
        raise CorruptFilesError(bad)
    return infos
