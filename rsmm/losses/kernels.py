"""Kernels on sample metadata, for the y-aware contrastive loss :func:`mm_kernel_ntxent`.

Each kernel is a pure function of two batches of metadata, ``x`` (``A`` samples) and
``y`` (``B`` samples), returning the ``A x B`` matrix ``K(x_a, y_b)`` with values in
``[0, 1]`` and 1 on identical metadata:

* :func:`geo_kernel`: Gaussian of the geodesic (great-circle, haversine) distance in km
  between ``[lon, lat]`` points in degrees, ``exp(-d^2 / (2 sigma_km^2))``;
* :func:`doy_kernel`: Gaussian of the circular difference of dates in days (day of
  year, or days since any epoch: only the difference modulo ``period`` counts),
  ``exp(-delta^2 / (2 sigma_days^2))`` with ``delta = min(|t - s| mod P, P - |t - s| mod P)``;
* :func:`geo_time_kernel`: their product;
* :func:`delta_kernel`: 1 for equal ids (with it, the y-aware loss is eq. 4.1);
* :func:`label_kernel`: 1 for equal labels ``>= 0`` (with it, the y-aware loss is SupCon).

The Gaussians are computed in float64 on devices that have it (float32 otherwise) and
returned in float32.

Example:
    >>> lonlat = torch.tensor([[2.35, 48.85], [2.36, 48.86], [13.40, 52.52]])
    >>> geo_kernel(lonlat, lonlat, sigma_km=2.0)[0]     # Paris, 1.3 km away, Berlin
    tensor([1.0000, 0.8013, 0.0000])
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: mean Earth radius in km (IUGG)
EARTH_RADIUS_KM = 6371.0088
#: the mean length of a year in days, the period of :func:`doy_kernel`
YEAR_DAYS = 365.25


def _wide(t: Tensor) -> Tensor:
    wide = torch.float32 if t.device.type == "mps" else torch.float64
    return t.to(wide)


def _gaussian(d: Tensor, sigma: float, name: str) -> Tensor:
    if not sigma > 0:
        raise ValueError(f"{name} must be > 0, got {sigma}")
    return torch.exp(-0.5 * (d / sigma) ** 2).float()


def haversine_km(x: Tensor, y: Tensor) -> Tensor:
    """Great-circle distances in km between ``[lon, lat]`` points in degrees.

    Args:
        x: ``A x 2`` longitudes and latitudes.
        y: ``B x 2`` longitudes and latitudes.

    Returns:
        ``A x B`` distances (in the wide dtype, see the module).
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != 2 or y.shape[1] != 2:
        raise ValueError(f"lon/lat must be N x 2, got {tuple(x.shape)} and {tuple(y.shape)}")
    x, y = torch.deg2rad(_wide(x)), torch.deg2rad(_wide(y))
    lon1, lat1 = x[:, 0, None], x[:, 1, None]
    lon2, lat2 = y[None, :, 0], y[None, :, 1]
    h = (
        torch.sin((lat2 - lat1) / 2) ** 2
        + torch.cos(lat1) * torch.cos(lat2) * torch.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * torch.asin(torch.sqrt(h.clamp(0.0, 1.0)))


def geo_kernel(x: Tensor, y: Tensor, sigma_km: float) -> Tensor:
    """Gaussian of the geodesic distance: ``exp(-d_km(x, y)^2 / (2 sigma_km^2))``.

    Args:
        x: ``A x 2`` ``[lon, lat]`` in degrees.
        y: ``B x 2`` ``[lon, lat]`` in degrees.
        sigma_km: bandwidth in km.
    """
    return _gaussian(haversine_km(x, y), sigma_km, "sigma_km")


def circular_days(s: Tensor, t: Tensor, period: float = YEAR_DAYS) -> Tensor:
    """``A x B`` circular differences in days, in ``[0, period / 2]``, of ``A`` and ``B``
    dates (day of year or days since an epoch)."""
    diff = torch.remainder(_wide(s).reshape(-1, 1) - _wide(t).reshape(1, -1), period)
    return torch.minimum(diff, period - diff)


def doy_kernel(s: Tensor, t: Tensor, sigma_days: float, period: float = YEAR_DAYS) -> Tensor:
    """Gaussian of the circular date difference: ``exp(-delta^2 / (2 sigma_days^2))``.

    Args:
        s: ``A`` dates in days (day of year, or days since an epoch).
        t: ``B`` dates in days.
        sigma_days: bandwidth in days.
        period: the period in days (a year by default: the kernel compares seasons).
    """
    if not period > 0 or not math.isfinite(period):
        raise ValueError(f"period must be a finite number > 0, got {period}")
    return _gaussian(circular_days(s, t, period), sigma_days, "sigma_days")


def geo_time_kernel(
    x: Tensor,
    y: Tensor,
    s: Tensor,
    t: Tensor,
    sigma_km: float,
    sigma_days: float,
    period: float = YEAR_DAYS,
) -> Tensor:
    """Product of :func:`geo_kernel` (``x``, ``y``: ``[lon, lat]``) and
    :func:`doy_kernel` (``s``, ``t``: dates): near in space and in season."""
    return geo_kernel(x, y, sigma_km) * doy_kernel(s, t, sigma_days, period)


def delta_kernel(a: Tensor, b: Tensor) -> Tensor:
    """``A x B`` float32, 1 where ``a_i == b_j`` (ids): with it the y-aware loss is eq. 4.1."""
    return (a.reshape(-1, 1) == b.reshape(1, -1)).float()


def label_kernel(a: Tensor, b: Tensor) -> Tensor:
    """``A x B`` float32, 1 where the integer labels are equal and ``>= 0`` (``-1`` =
    unlabelled pairs with nothing): with it the y-aware loss is SupCon (eq. 4.3-4.4)."""
    a, b = a.reshape(-1, 1), b.reshape(1, -1)
    return ((a == b) & (a >= 0) & (b >= 0)).float()


__all__ = [
    "EARTH_RADIUS_KM",
    "YEAR_DAYS",
    "circular_days",
    "delta_kernel",
    "doy_kernel",
    "geo_kernel",
    "geo_time_kernel",
    "haversine_km",
    "label_kernel",
]
