"""Finding a stack's raster files and checking that each opens and reads.

A modality's files are any raster GDAL reads: by default every ``.tif``, ``.tiff``,
``.jp2`` and ``.vrt`` file under its folder (:data:`RASTER_SUFFIXES`; which of them
hold which band is told by band-name tokens of the names, :mod:`rsmm.stacks.sources`),
or those matching an explicit glob. A GDAL dataset name (``/vsizip/archive.zip/x.jp2``,
a subdataset string such as ``SENTINEL2_L2A:/p/MTD_MSIL2A.xml:10m:EPSG_32633``) may
stand for a folder: it is the modality's one file. Such names are written relative
to a manifest's folder by their file-system part only (:func:`relative_path`,
:func:`absolute_path`).

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
from rsmm.sensors import get_sensor

_DATE = re.compile(r"(?<!\d)((?:19|20)\d{6})(?!\d)")

#: Where a per-band file template names the band (``scene_{band}.tif``).
BAND_PLACEHOLDER = "{band}"
#: ``{gsd:s2}``: the native GSD in metres of the band, in the sensor's registry.
_GSD = re.compile(r"\{gsd:(?P<sensor>\w+)\}")


def band_path(template: str, band: str) -> str:
    """The file of ``band`` named by a per-band template: ``{band}`` is the band name,
    ``{gsd:<sensor>}`` its native GSD in whole metres (``R{gsd:s2}m`` is ``R20m`` for
    B05: Sentinel-2 L2A folders)."""
    path = template.replace(BAND_PLACEHOLDER, band)
    return _GSD.sub(lambda m: f"{get_sensor(m.group('sensor')).band(band).gsd:g}", path)


#: File suffixes of the rasters a modality folder is searched for by default.
RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt")

#: ``/vsizip/`` (or ``/vsitar/``...) + archive path + path inside the archive.
_VSI = re.compile(
    r"^(?P<prefix>/vsi(?:zip|tar|gzip|7z|rar)/)(?P<path>.+?\.(?:zip|tar|tar\.gz|tgz|gz|7z|rar))(?P<suffix>(?:/.*)?)$",
    re.IGNORECASE,
)
#: ``DRIVER:[token:...]path[:more]`` of a GDAL subdataset (``GTIFF_DIR:1:x.tif``,
#: ``SENTINEL2_L2A:MTD_MSIL2A.xml:10m:EPSG_32633``; the driver: two or more characters).
_SUBDATASET = re.compile(
    r'^(?P<prefix>[A-Za-z][A-Za-z0-9_]+:(?:\w+:)*"?)'
    r'(?P<path>[^":]+?\.[A-Za-z0-9]+)(?P<suffix>"?(?::.*)?)$'
)


def is_gdal_name(name: str | Path) -> bool:
    """Whether ``name`` is a GDAL dataset name rather than a plain file path
    (``/vsizip/...``, ``/vsicurl/...``, ``SENTINEL2_L2A:...``)."""
    text = str(name)
    return text.startswith("/vsi") or _SUBDATASET.match(text) is not None


def split_gdal_name(name: str) -> tuple[str, str, str]:
    """``(prefix, file-system path, suffix)`` of a GDAL dataset name; a plain path (or a
    name without a local file, ``/vsicurl/``) is ``("", name, "")``. A subdataset of
    a file in an archive (``SENTINEL2_L2A:/vsizip//p/x.zip/x.SAFE/MTD_MSIL2A.xml:10m:
    EPSG_32633``) has the archive as its path."""
    for pattern in (_VSI, _SUBDATASET):
        m = pattern.match(name)
        if m is not None:
            prefix, path, suffix = m.group("prefix"), m.group("path"), m.group("suffix")
            inner = _VSI.match(path) if pattern is _SUBDATASET else None
            if inner is not None:
                prefix += inner.group("prefix")
                path, suffix = inner.group("path"), inner.group("suffix") + suffix
            return prefix, path, suffix
    return "", name, ""


def relative_path(name: str, base: str | Path) -> str:
    """``name`` with its file-system part relative to ``base`` where possible."""
    if name.startswith("/vsi") and _VSI.match(name) is None:
        return name  # a remote file: nothing local to relativise
    prefix, path, suffix = split_gdal_name(name)
    try:
        path = Path(os.path.relpath(path, base)).as_posix()
    except ValueError:  # another drive
        pass
    return prefix + path + suffix


def absolute_path(name: str, base: str | Path) -> str:
    """The inverse of :func:`relative_path`: ``name`` with its file-system part
    resolved against ``base`` (absolute parts unchanged)."""
    if name.startswith("/vsi") and _VSI.match(name) is None:
        return name
    prefix, path, suffix = split_gdal_name(name)
    if not Path(path).is_absolute():
        path = str(Path(base) / path)
        if prefix:  # inside a GDAL name, GDAL sees the ".." of the path
            path = os.path.normpath(path)
    return prefix + path + suffix


def is_raster_name(name: str) -> bool:
    """Whether a file name has one of :data:`RASTER_SUFFIXES` (any case)."""
    return name.lower().endswith(RASTER_SUFFIXES)


def list_files(root: str | Path, glob: str | None, what: str) -> list[str]:
    """Absolute paths of the files under ``root`` matching ``glob``, sorted.

    Args:
        root: a folder searched recursively, or a GDAL dataset name (its one file).
        glob: file-name pattern; ``None``: every file with a :data:`RASTER_SUFFIXES`
            suffix.
        what: what the files are, for messages (the modality).

    Raises:
        DatasetNotFoundError: if ``root`` is not a folder or nothing matches (the
            message names ``what``, e.g. the modality, and the folder).
    """
    if is_gdal_name(root):
        return [str(root)]
    folder = Path(root)
    if not folder.is_dir():
        raise DatasetNotFoundError(f"{what} folder not found: {folder} is not a directory")
    if glob is None:
        found = (p for p in folder.rglob("*") if is_raster_name(p.name))
        wanted = ", ".join(repr(f"*{s}") for s in RASTER_SUFFIXES[:-1])
        wanted += f" or {'*' + RASTER_SUFFIXES[-1]!r}"
    else:
        found, wanted = folder.rglob(glob), repr(glob)
    files = sorted(os.path.abspath(p) for p in found if p.is_file())
    if not files:
        raise DatasetNotFoundError(f"{what}: no files matching {wanted} under {folder}")
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


def _kind(path: str | Path) -> str:
    """``"GeoTIFF"`` for ``.tif`` files, else ``"raster"`` (for messages)."""
    return "GeoTIFF" if str(path).lower().endswith((".tif", ".tiff")) else "raster"


def check_geotiff(path: str | Path) -> GeoTiffInfo:
    """Open a raster (GeoTIFF, JPEG2000, VRT, any GDAL dataset name) and read its last
    pixel of every band.

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
        raise DatasetFileError(f"corrupt or unreadable {_kind(path)} {path}: {err}") from err
    if crs is None:
        raise DatasetFileError(
            f"{_kind(path)} {path} has no CRS (it cannot be placed on the ground)"
        )
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
