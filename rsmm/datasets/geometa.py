"""Numeric location and date metadata of samples, for metadata-weighted objectives.

Datasets that know where and when a sample was taken put, next to its string metadata,

* ``meta["lonlat"]``: float32 tensor ``[lon, lat]`` in degrees (EPSG:4326) of the
  chip's or patch's centre;
* ``meta["date"]``: float32 scalar tensor, the acquisition date in days since
  1970-01-01 (NaN when unknown);

so that the default collate stacks them into ``B x 2`` and ``B`` tensors (see
:class:`rsmm.models.views.SampleInfo` and :func:`rsmm.losses.mm_kernel_ntxent`).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rsmm.models.views import META_KEYS

_EPOCH = dt.date(1970, 1, 1)

__all__ = ["META_KEYS", "date_tensor", "days_since_epoch", "raster_centre_lonlat", "to_lonlat"]


def to_lonlat(crs: Any, x: Any, y: Any) -> np.ndarray:
    """``N x 2`` float64 ``[lon, lat]`` of the points ``(x, y)`` given in ``crs``.

    Args:
        crs: anything :class:`pyproj.CRS` takes (``"EPSG:32618"``, a rasterio CRS).
        x: ``N`` eastings (or longitudes).
        y: ``N`` northings (or latitudes).
    """
    from pyproj import CRS, Transformer

    source = CRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)
    transformer = Transformer.from_crs(source, "EPSG:4326", always_xy=True)
    lon, lat = transformer.transform(np.asarray(x, float), np.asarray(y, float))
    return np.stack([np.atleast_1d(lon), np.atleast_1d(lat)], axis=1)


def raster_centre_lonlat(path: str | Path) -> torch.Tensor:
    """``[lon, lat]`` (float32) of the centre of a georeferenced raster (its header only);
    NaN when it has no CRS."""
    import rasterio

    with rasterio.open(path) as src:
        if src.crs is None:
            return torch.full((2,), float("nan"))
        b = src.bounds
        centre = to_lonlat(src.crs, [(b.left + b.right) / 2], [(b.bottom + b.top) / 2])
    return torch.from_numpy(centre[0].astype(np.float32))


def days_since_epoch(date: str | None) -> float:
    """``YYYY-MM-DD`` (or ``YYYYMMDD``) as days since 1970-01-01; NaN for ``None``/``""``."""
    if not date:
        return float("nan")
    text = date.replace("-", "")
    day = dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    return float((day - _EPOCH).days)


def date_tensor(date: str | None) -> torch.Tensor:
    """:func:`days_since_epoch` as a float32 scalar tensor."""
    return torch.tensor(days_since_epoch(date), dtype=torch.float32)
