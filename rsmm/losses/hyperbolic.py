"""Hyperbolic multimodal NT-Xent: eq. 4.1 with minus the Poincaré distance as similarity.

The rows are points of the Poincaré ball of curvature ``-c`` (projector outputs mapped by
:class:`~rsmm.hyperbolic.ToPoincare`); positives and negatives are those of eq. 4.1 (the
other modalities and views of the anchor's sample are its positives, every other row a
negative), and the similarity of rows ``x, y`` is ``s(x, y) = -d_c(x, y)``, the geodesic
distance of :class:`geoopt.PoincareBall` (Ermolov et al., "Hyperbolic Vision
Transformers: Combining Improvements in Metric Learning", CVPR 2022, arXiv:2203.10833).

As ``c -> 0`` the ball's metric ``lambda_x^2 <dx, dx>`` with ``lambda_x = 2 / (1 - c||x||^2)``
tends to ``4 <dx, dx>``, so ``d_c(x, y) -> 2 ||x - y||`` and the loss tends to the
Euclidean-distance contrastive loss with ``s(x, y) = -2 ||x - y||``.

Example:
    >>> from rsmm.hyperbolic import ToPoincare
    >>> z = ToPoincare(c=1.0, clip_r=2.3)(torch.randn(12, 32))
    >>> loss = hyp_ntxent(z, torch.arange(4).repeat(3), tau=0.1, c=1.0)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from rsmm.losses.contrastive import _reduce, _same, per_anchor_contrastive


def poincare_similarity(c: float = 1.0) -> Callable[[Tensor, Tensor], Tensor]:
    """``(a, b) -> -d_c(a_i, b_j)``: the ``A x K`` similarity of :func:`hyp_ntxent`.

    The distance is geoopt's :meth:`~geoopt.PoincareBall.dist`, computed in float32
    (float64 for float64 inputs) with autocast disabled. Points are first pulled onto the
    ball of radius ``(1 - 1e-7) / sqrt(c)`` when they are further out (points on or past the
    boundary, or rounded onto it in half precision), so values and gradients stay finite;
    points inside it are unchanged.

    Args:
        c: curvature magnitude of the ball.
    """
    # geoopt (and rsmm.hyperbolic's peers) load when a ball is asked for, not with rsmm.losses
    from rsmm.hyperbolic.ball import BOUNDARY_EPS, poincare_ball

    ball = poincare_ball(c)
    max_norm = (1.0 - BOUNDARY_EPS) / c**0.5

    def inside(x: Tensor) -> Tensor:
        norm = x.norm(dim=-1, keepdim=True).clamp_min(1e-30)
        return x * (max_norm / norm).clamp(max=1.0)

    def similarity(a: Tensor, b: Tensor) -> Tensor:
        dtype = torch.promote_types(torch.promote_types(a.dtype, b.dtype), torch.float32)
        with torch.autocast(device_type=a.device.type, enabled=False):
            a, b = inside(a.to(dtype)), inside(b.to(dtype))
            return -ball.dist(a[:, None, :], b[None, :, :])

    return similarity


def hyp_ntxent(
    z_ball: Tensor,
    sample_ids: Tensor,
    tau: float = 0.1,
    c: float = 1.0,
    anchor_mask: Tensor | None = None,
    anchor_rows: Tensor | None = None,
) -> Tensor:
    """Hyperbolic multimodal NT-Xent: eq. 4.1 with ``s(x, y) = -d_c(x, y)``.

    For each anchor row ``r`` with positives ``P(r)`` (the other rows of its sample)::

        L_r = -1/|P(r)| * sum_{p in P(r)} log( exp(-d_c(z_r, z_p) / tau)
                                               / sum_{k != r} exp(-d_c(z_r, z_k) / tau) )

    averaged over the anchors that have a positive, where ``d_c`` is the geodesic distance
    of the Poincaré ball of curvature ``-c`` (geoopt's), as in Ermolov et al., "Hyperbolic
    Vision Transformers", CVPR 2022 (arXiv:2203.10833). As ``c -> 0`` it tends to the same
    loss with ``s(x, y) = -2 ||x - y||``. Memory is ``O(A K d)`` (the distances are
    computed pairwise by geoopt's Möbius addition).

    Args:
        z_ball: ``K x d`` points of the ball (``c ||z||^2 < 1``), one row per (sample,
            modality, view), e.g. the output of :class:`~rsmm.hyperbolic.ToPoincare`.
        sample_ids: ``K`` ids; rows with the same id are positives of each other.
        tau: temperature.
        c: curvature magnitude of the ball.
        anchor_mask: optional ``K`` boolean; False rows only act as negatives.
        anchor_rows: optional anchor subset (see :func:`~rsmm.losses.mm_ntxent`).

    Returns:
        Scalar loss, in float32 (float64 for float64 inputs).

    Raises:
        ValueError: if no anchor has a positive, or ``c <= 0``.
    """
    loss, valid = per_anchor_contrastive(
        z_ball,
        _same(sample_ids, anchor_rows),
        tau,
        anchor_rows,
        anchor_mask,
        similarity=poincare_similarity(c),
    )
    return _reduce(loss, valid, "hyp_ntxent")
