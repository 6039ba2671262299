"""Raster, array and image readers and writers, with errors that name the file.

The file layer under :mod:`rsmm.stacks` and :mod:`rsmm.datasets`: every reader
raises :class:`~rsmm.errors.DatasetFileError` naming the offending path for a missing,
corrupt or wrongly shaped file, so that a user never sees a bare traceback from deep
inside rasterio or numpy.

Non-finite pixels (NaN borders of Sentinel-1 scenes) are *not* errors: they are
replaced by :func:`fill_nonfinite` and counted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from rsmm.errors import DatasetFileError, DatasetNotFoundError


def require_dir(path: str | Path, what: str) -> Path:
    """Return ``path`` as a Path, raising :class:`DatasetNotFoundError` if it is no directory."""
    path = Path(path)
    if not path.is_dir():
        raise DatasetNotFoundError(f"{what} not found: {path} is not a directory")
    return path


def read_geotiff(path: str | Path, expected_bands: int | None = None) -> np.ndarray:
    """Read every band of a GeoTIFF as a ``C x H x W`` array in its stored dtype.

    Raises:
        DatasetFileError: if the file is missing, corrupt or has the wrong band count.
    """
    import rasterio
    from rasterio.errors import RasterioError

    path = Path(path)
    if not path.is_file():
        raise DatasetFileError(f"missing file: {path}")
    try:
        with rasterio.open(path) as src:
            arr = src.read()
    except (RasterioError, OSError) as err:
        raise DatasetFileError(f"cannot read GeoTIFF {path}: {err}") from err
    if expected_bands is not None and arr.shape[0] != expected_bands:
        raise DatasetFileError(f"{path} has {arr.shape[0]} bands, expected {expected_bands}")
    return arr


def write_geotiff(
    path: str | Path,
    array: np.ndarray,
    crs: Any,
    transform: Any,
    nodata: float | None = None,
    **profile: Any,
) -> Path:
    """Write a ``C x H x W`` array as a deflate-compressed GeoTIFF (parent folders made).

    Args:
        path: output file.
        array: ``C x H x W`` array; its dtype is the file's.
        crs: CRS (anything rasterio accepts, e.g. ``"EPSG:32618"``).
        transform: affine geotransform of the top-left corner.
        nodata: nodata value recorded in the file.
        **profile: more rasterio creation options (``tiled``, ``blockxsize`` ...).

    Returns:
        ``path``.
    """
    import rasterio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {
        "driver": "GTiff",
        "height": array.shape[1],
        "width": array.shape[2],
        "count": array.shape[0],
        "dtype": array.dtype.name,
        "crs": crs,
        "transform": transform,
        "compress": "deflate",
        "predictor": 3 if array.dtype.kind == "f" else 2,
        "nodata": nodata,
        **profile,
    }
    with rasterio.open(path, "w", **options) as dst:
        dst.write(array)
    return path


def read_npy(path: str | Path, expected_shape: tuple[int | None, ...] | None = None) -> np.ndarray:
    """Read a ``.npy`` array without unpickling (``allow_pickle=False``).

    ``expected_shape`` may hold ``None`` for free dimensions.

    Raises:
        DatasetFileError: if the file is missing, corrupt or has an unexpected shape.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetFileError(f"missing file: {path}")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DatasetFileError(f"cannot read array {path}: {err}") from err
    if expected_shape is not None:
        ok = arr.ndim == len(expected_shape) and all(
            e is None or e == s for e, s in zip(expected_shape, arr.shape)
        )
        if not ok:
            raise DatasetFileError(
                f"{path} has shape {tuple(arr.shape)}, expected "
                f"{tuple('*' if e is None else e for e in expected_shape)}"
            )
    return arr


def read_image(path: str | Path, expected_channels: int | None = None) -> np.ndarray:
    """Read a PNG/JPEG as an ``H x W x C`` uint8 array, keeping an alpha channel.

    Raises:
        DatasetFileError: if the file is missing, corrupt or has the wrong channel count.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DatasetFileError(f"missing file: {path}")
    try:
        with Image.open(path) as img:
            img.load()
            arr = np.asarray(img)
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DatasetFileError(f"cannot read image {path}: {err}") from err
    if arr.ndim == 2:
        arr = arr[..., None]
    if expected_channels is not None and arr.shape[-1] != expected_channels:
        raise DatasetFileError(f"{path} has {arr.shape[-1]} channels, expected {expected_channels}")
    return arr


def fill_nonfinite(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Replace non-finite pixels by their band's mean over the finite pixels.

    A band with no finite pixel at all is filled with 0. This keeps a sample usable
    (S1 scenes have NaN borders) without inventing extreme values.

    Args:
        x: ``C x H x W`` float tensor.

    Returns:
        The filled tensor (a new one if anything was filled) and the number of pixels
        (summed over bands) that were filled.
    """
    bad = ~torch.isfinite(x)
    count = int(bad.sum())
    if count == 0:
        return x, 0
    flat = x.reshape(x.shape[0], -1)
    good = ~bad.reshape(x.shape[0], -1)
    sums = torch.where(good, flat, torch.zeros_like(flat)).sum(1)
    means = sums / good.sum(1).clamp_min(1)
    fill = means[:, None, None].expand_as(x)
    return torch.where(bad, fill, x), count
