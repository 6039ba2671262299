"""Separable filters with one kernel per sample, as batched matrix products.

kornia's :func:`kornia.filters.gaussian_blur2d` with one sigma per sample runs a grouped
(depthwise) convolution with a different kernel for every (sample, band) pair. On the
CPU oneDNN executes that at well under 1 GFLOP/s, and the reflection padding before it
costs another pass over the batch: together they were ~60 % of a two-view
``torchgeo_simclr`` batch on one core (``benchmarks/augment.py``). The same filter is a
product with a banded ``H x H`` matrix along the rows and a ``W x W`` one along the
columns; folding the reflection into the band turns the whole blur into two batched
``matmul`` calls, which BLAS (and cuBLAS) run near peak. The result equals kornia's to
float rounding (``tests/test_augment_filters.py``).
"""

from __future__ import annotations

import torch
from kornia.filters import get_gaussian_kernel1d
from torch import Tensor


def reflect_index(i: Tensor, size: int) -> Tensor:
    """Reflect integer positions into ``[0, size)`` without repeating the edge pixel
    (``torch.nn.functional.pad(mode="reflect")``: ``-1 -> 1``, ``size -> size - 2``)."""
    if size == 1:
        return torch.zeros_like(i)
    period = 2 * (size - 1)
    i = torch.remainder(i, period)
    return torch.where(i >= size, period - i, i)


def band_matrices(weights: Tensor, size: int) -> Tensor:
    """Per-sample ``size x size`` matrices of a centred 1-D filter with reflect borders.

    Row ``i`` of sample ``b`` holds ``weights[b, k]`` at column
    ``reflect(i + k - K // 2)`` (summed where reflections coincide), so
    ``M[b] @ v`` filters the vector ``v`` exactly as a reflect-padded convolution does.

    Args:
        weights: ``n x K`` filter taps (``K`` odd, ``K // 2 < size``).
        size: length of the filtered axis.

    Returns:
        ``n x size x size`` matrices, on the device and in the dtype of ``weights``.
    """
    k = weights.shape[1]
    rows = torch.arange(size, device=weights.device)
    offsets = torch.arange(k, device=weights.device) - k // 2
    cols = reflect_index(rows[:, None] + offsets[None, :], size)  # size x K
    # one 0/1 matrix per tap, shared by every sample: taps[k, i, j] = [cols[i, k] == j]
    taps = torch.zeros(k, size, size, device=weights.device, dtype=weights.dtype)
    tap = torch.arange(k, device=weights.device)
    taps.index_put_(
        (tap[None, :].expand(size, k), rows[:, None].expand(size, k), cols),
        torch.ones((), device=weights.device, dtype=weights.dtype).expand(size, k),
        accumulate=True,
    )
    return torch.einsum("nk,kij->nij", weights, taps)


def separable_filter(x: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """Filter ``x`` (``n x C x H x W``) with per-sample matrices: ``rows[b] @ x[b, c] @
    cols[b].T`` for every band ``c``.

    Args:
        x: batch.
        rows: ``n x H x H`` matrices acting along the rows (vertical filter).
        cols: ``n x W x W`` matrices acting along the columns (horizontal filter).
    """
    n, c, h, w = x.shape
    # columns: one (C*H x W) @ (W x W) product per sample
    y = torch.bmm(x.reshape(n, c * h, w), cols.transpose(1, 2)).reshape(n, c, h, w)
    # rows: (H x H) @ (H x C*W) per sample, on a band-interleaved view
    y = torch.bmm(rows, y.transpose(1, 2).reshape(n, h, c * w))
    return y.reshape(n, h, c, w).transpose(1, 2).contiguous()


def gaussian_blur(x: Tensor, sigma: Tensor, kernel_size: int) -> Tensor:
    """Gaussian blur with one sigma (pixels) per sample and reflect borders.

    The same filter as ``kornia.filters.gaussian_blur2d(x, (k, k), sigma[:, None].expand(-1,
    2), border_type="reflect")`` (kornia's normalised Gaussian taps), computed as two
    batched matrix products (see the module docstring for why).

    Args:
        x: ``n x C x H x W`` floating-point batch.
        sigma: ``n`` standard deviations in pixels.
        kernel_size: odd number of taps, smaller than ``2 * min(H, W)``.
    """
    h, w = x.shape[-2:]
    # taps in float32 at least (bf16/fp16 batches), float64 for float64 batches
    work = torch.promote_types(x.dtype, torch.float32)
    taps = get_gaussian_kernel1d(kernel_size, sigma.to(x.device, work)[:, None]).to(x.dtype)
    cols = band_matrices(taps, w)
    rows = cols if h == w else band_matrices(taps, h)
    return separable_filter(x, rows, cols)
