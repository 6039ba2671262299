"""The two-view layout shared by the sample-plan losses (L_Sample and the GCA family).

Two views ``zA, zB`` (``N x d`` each, row ``i`` of both = sample ``i``) are stacked as
``z = concat(zA, zB)``: ``2N`` rows, rows ``0..N-1`` from view A, rows ``N..2N-1`` from view B.
The positive of row ``i`` is its twin ``twin(i) = (i + N) mod 2N``; the self-pair is
forbidden (cost ``+inf``, so its Gibbs kernel entry is exactly zero).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def check_pair(zA: Tensor, zB: Tensor, name: str = "zA, zB", min_rows: int = 1) -> None:
    """Raise a clear error unless ``zA`` and ``zB`` are matching ``N x d`` tensors."""
    if zA.ndim != 2 or zA.shape != zB.shape:
        raise ValueError(
            f"`{name}` must be two N x d tensors of the same shape, "
            f"got {tuple(zA.shape)} and {tuple(zB.shape)}"
        )
    if zA.shape[0] < min_rows:
        raise ValueError(f"`{name}` need at least {min_rows} rows, got {zA.shape[0]}")


def unit_rows(z: Tensor, dim: int = -1) -> Tensor:
    """``z`` L2-normalised along ``dim``, in float32 (float64 stays float64).

    Rows of norm above ``1e-12`` are divided by their norm, exactly as
    :func:`torch.nn.functional.normalize` does; smaller (zero) rows are left as they are.
    ``F.normalize`` divides them by ``1e-12`` instead, whose gradient ``1e12`` overflows
    once autograd casts it back to a float16 input (largest finite 65504), and a second
    normalisation of the result multiplies it again; here the gradient at a zero row is
    the identity.
    """
    z = z if z.dtype == torch.float64 else z.float()
    norm = torch.linalg.vector_norm(z, dim=dim, keepdim=True)
    return z / torch.where(norm > 1e-12, norm, torch.ones_like(norm))


def stack_views(zA: Tensor, zB: Tensor) -> Tensor:
    """``concat(zA, zB)`` in float32 (or float64), rows L2-normalised (:func:`unit_rows`)."""
    check_pair(zA, zB)
    return unit_rows(torch.cat([zA, zB], dim=0), dim=1)


def twin_index(n: int, device: torch.device | None = None) -> Tensor:
    """``twin(i) = (i + n) mod 2n`` for the ``2n`` stacked rows."""
    return (torch.arange(2 * n, device=device) + n) % (2 * n)


def self_masked_cost(z: Tensor) -> Tensor:
    """Cosine cost ``1 - z z^T`` with ``+inf`` on the diagonal (``C_ii = +inf``)."""
    C = 1.0 - z @ z.T
    eye = torch.eye(z.shape[0], dtype=torch.bool, device=z.device)
    return C.masked_fill(eye, math.inf)


def twin_log_prob(log_plan: Tensor) -> Tensor:
    """``log P[i, twin(i)]`` of a ``2N x 2N`` (log-)plan, one value per row."""
    n2 = log_plan.shape[0]
    rows = torch.arange(n2, device=log_plan.device)
    return log_plan[rows, twin_index(n2 // 2, log_plan.device)]


def anchor_mean(per_row: Tensor, anchors: Tensor | None) -> Tensor:
    """Mean of per-row losses over the rows of anchor samples.

    Args:
        per_row: ``V * N`` losses, rows ordered (view, sample) as :func:`stack_views`.
        anchors: ``N`` booleans, False for samples that only serve as negatives (their
            rows are left out of the mean); ``None`` = every row.

    Raises:
        ValueError: when no sample is an anchor.
    """
    if anchors is None:
        return per_row.mean()
    keep = anchors.to(per_row.device).repeat(per_row.shape[0] // anchors.shape[0])
    if not bool(keep.any()):
        raise ValueError("every sample of the batch is negative-only: no anchor is left")
    return per_row[keep].mean()
