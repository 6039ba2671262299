"""Windowed reads: one chip of a modality from the files that cover it.

:func:`read_window` reads a chip's bounds in the stack's CRS, resampled into an exact
``size x size`` pixel grid (``chip metres / GSD``) at the modality's own GSD, merging
the files that cover it. Open file handles are cached per process (:func:`open_cached`).
A chip on a file's own pixel grid (same CRS, same pixel size, whole-pixel offset, inside
the file) is read as a plain window (:func:`aligned_window`): no resampling, the file's
pixels exactly.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from rasterio.crs import CRS

from rsmm.errors import DatasetFileError

_HANDLES: OrderedDict[str, object] = OrderedDict()
_HANDLES_PID = [os.getpid()]
MAX_OPEN_FILES = 256


def open_cached(path: str):
    """An open rasterio dataset for ``path``, cached per process (LRU, closed on eviction)."""
    import rasterio

    if _HANDLES_PID[0] != os.getpid():  # forked worker: never share GDAL handles
        _HANDLES.clear()
        _HANDLES_PID[0] = os.getpid()
    src = _HANDLES.get(path)
    if src is None:
        try:
            src = rasterio.open(path)
        except (rasterio.errors.RasterioError, OSError) as err:
            raise DatasetFileError(f"cannot read GeoTIFF {path}: {err}") from err
        _HANDLES[path] = src
        if len(_HANDLES) > MAX_OPEN_FILES:
            _HANDLES.popitem(last=False)[1].close()  # type: ignore[attr-defined]
    else:
        _HANDLES.move_to_end(path)
    return src


@lru_cache(maxsize=64)
def as_crs(crs: str) -> CRS:
    """The rasterio CRS of ``"EPSG:xxxx"`` (cached: chips name their CRS as text)."""
    return CRS.from_user_input(crs)


def window_transform(bounds: Sequence[float], size: int):
    """Affine transform of a ``size x size`` grid exactly covering ``bounds``."""
    from affine import Affine

    xmin, ymin, xmax, ymax = bounds
    return Affine((xmax - xmin) / size, 0.0, xmin, 0.0, -(ymax - ymin) / size, ymax)


def read_window(
    paths: Sequence[str] | Sequence[Sequence[str]],
    bounds: Sequence[float],
    size: int,
    crs: CRS | str,
    nodata: float | None = None,
    resampling: str = "nearest",
    dtype: type = np.float32,
    indexes: Sequence[int] | None = None,
    shifts: Sequence[float] | None = None,
) -> np.ndarray:
    """Read ``bounds`` (in ``crs``) into a ``C x size x size`` array.

    Args:
        paths: files to merge (the first valid pixel wins); each entry is one
            multi-band file, or a sequence of single-band files (one per band).
        bounds: ``(xmin, ymin, xmax, ymax)`` in ``crs``.
        size: pixels per side; the pixel size is ``(xmax - xmin) / size``.
        crs: the destination CRS.
        nodata: stored value marking missing pixels (default: each file's own).
        resampling: a :class:`rasterio.enums.Resampling` name.
        dtype: float output dtype; missing pixels are NaN.
        indexes: 1-based bands read from multi-band files (default: all of them);
            single-band files of per-band products are read whole.
        shifts: added to the valid values of each entry of ``paths`` (files whose
            radiometric offset differs from their modality's:
            :meth:`rsmm.stacks.sources.ModalitySource.shift`).

    Raises:
        DatasetFileError: naming a file that cannot be read.
    """
    from rasterio.enums import Resampling
    from rasterio.errors import RasterioError
    from rasterio.warp import reproject

    if isinstance(crs, str):
        crs = as_crs(crs)
    transform = window_transform(bounds, size)
    out: np.ndarray | None = None
    for n, entry in enumerate(paths):
        multiband = isinstance(entry, str)
        files = [entry] if multiband else list(entry)
        parts = []
        for path in files:
            src = open_cached(path)
            bands = list(indexes) if multiband and indexes else list(range(1, src.count + 1))
            if max(bands) > src.count or min(bands) < 1:
                raise DatasetFileError(
                    f"GeoTIFF {path} has {src.count} bands; cannot read band(s) {bands}"
                )
            window = aligned_window(src, bounds, size, crs)
            if window is not None:
                parts.append(_read_aligned(src, bands, window, nodata, dtype, path))
                continue
            tmp = np.full((len(bands), size, size), np.nan, dtype=dtype)
            try:
                reproject(
                    source=_band(src, bands),
                    destination=tmp,
                    dst_transform=transform,
                    dst_crs=crs,
                    src_nodata=src.nodata if nodata is None else nodata,
                    dst_nodata=np.nan,
                    resampling=Resampling[resampling],
                )
            except (RasterioError, OSError) as err:
                raise DatasetFileError(f"cannot read GeoTIFF {path}: {err}") from err
            parts.append(tmp)
        arr = parts[0] if len(parts) == 1 else np.concatenate(parts)
        if shifts is not None and shifts[n]:
            arr += shifts[n]
        if out is None:
            out = arr
        else:
            hole = np.isnan(out) & ~np.isnan(arr)
            out[hole] = arr[hole]
        if not np.isnan(out).any():
            break
    assert out is not None
    return out


def aligned_window(src, bounds: Sequence[float], size: int, crs: CRS, tol: float = 1e-6):
    """The window of ``src`` that is exactly ``bounds`` on its own pixel grid, or ``None``.

    ``None`` unless ``src`` is in ``crs``, north-up, with pixels of the chip's pixel
    size, the chip's corner on a pixel corner (within ``tol`` pixels) and the chip
    inside the file.
    """
    from rasterio.windows import Window

    t = src.transform
    xmin, _, xmax, ymax = bounds
    res = (xmax - xmin) / size
    if t.b or t.d or abs(t.a - res) > tol * res or abs(-t.e - res) > tol * res:
        return None
    col, row = (xmin - t.c) / res, (t.f - ymax) / res
    c, r = round(col), round(row)
    if abs(col - c) > tol or abs(row - r) > tol:
        return None
    if c < 0 or r < 0 or c + size > src.width or r + size > src.height:
        return None
    if src.crs != crs:
        return None
    return Window(c, r, size, size)


def _read_aligned(src, bands: list[int], window, nodata, dtype, path: str) -> np.ndarray:
    """The window's pixels as ``dtype``, NaN where they equal the nodata value."""
    from rasterio.errors import RasterioError

    try:
        raw = src.read(bands, window=window)
    except (RasterioError, OSError) as err:
        raise DatasetFileError(f"cannot read GeoTIFF {path}: {err}") from err
    arr = raw.astype(dtype)
    missing = src.nodata if nodata is None else nodata
    if missing is not None and not np.isnan(missing):
        arr[raw == missing] = np.nan
    return arr


def _band(src, indexes: list[int]):
    import rasterio

    return rasterio.band(src, indexes)
