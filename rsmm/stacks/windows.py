"""Windowed reads: one chip of a modality from the files that cover it.

:func:`read_window` reads a chip's bounds in the stack's CRS, resampled into an exact
``size x size`` pixel grid (``chip metres / GSD``) at the modality's own GSD, merging
the files that cover it. Open file handles are cached per process (:func:`open_cached`).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence

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


def window_transform(bounds: Sequence[float], size: int):
    """Affine transform of a ``size x size`` grid exactly covering ``bounds``."""
    from affine import Affine

    xmin, ymin, xmax, ymax = bounds
    return Affine((xmax - xmin) / size, 0.0, xmin, 0.0, -(ymax - ymin) / size, ymax)


def read_window(
    paths: Sequence[str] | Sequence[Sequence[str]],
    bounds: Sequence[float],
    size: int,
    crs: CRS,
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


def _band(src, indexes: list[int]):
    import rasterio

    return rasterio.band(src, indexes)
