"""Poincaré-ball maps: the Busemann function and the Euclidean -> ball layer.

The Poincaré ball of curvature ``-c`` (``c > 0``) is ``{x : c ||x||^2 < 1}`` with the
metric ``lambda_x^2 <dx, dx>``, ``lambda_x = 2 / (1 - c ||x||^2)``; this is geoopt's
:class:`geoopt.PoincareBall`, whose ``dist`` and ``expmap0`` rsmm uses throughout.
Ideal points (points at infinity) are identified with unit vectors ``p`` (the point
``p / sqrt(c)`` of the boundary sphere).
"""

from __future__ import annotations

import geoopt
import torch
from torch import Tensor, nn

#: Smallest value ``1 - c ||x||^2`` and ``||p - sqrt(c) x||^2`` may take inside a log.
BOUNDARY_EPS = 1e-7


def _compute_dtype(x: Tensor) -> torch.dtype:
    """float32 for half-precision inputs (and anything below), the input dtype otherwise."""
    return torch.promote_types(x.dtype, torch.float32)


def busemann(x: Tensor, p: Tensor, c: float = 1.0) -> Tensor:
    """Busemann function of the ideal points ``p`` at the points ``x`` of the Poincaré ball.

    Eq. 2.17 of the thesis::

        B_p(x) = (1 / sqrt(c)) * log( ||p - sqrt(c) x||^2 / (1 - c ||x||^2) )

    It equals ``lim_{t -> inf} d(x, gamma(t)) - t`` for the unit-speed geodesic ray
    ``gamma`` from the origin towards ``p``: zero at the origin, ``-d(0, x)`` along the ray,
    negative near ``p`` and ``+inf`` at the other points of the boundary. Its level sets are
    the horospheres centred at ``p`` (Ghadimi Atigh et al., "Hyperbolic Busemann learning
    with ideal prototypes", NeurIPS 2021).

    The computation runs in float32 (or the input dtype when wider, e.g. float64) with
    autocast disabled, and both arguments of the logarithm are clamped to at least
    :data:`BOUNDARY_EPS`, so points on or past the boundary give finite values.

    Args:
        x: points inside the ball, ``N x d`` (any leading shape ``... x d``).
        p: ideal points as unit vectors, ``K x d`` (or a single ``d`` vector).
        c: curvature magnitude (ball radius ``1 / sqrt(c)``).

    Returns:
        ``... x K`` Busemann values (``...`` for a single ``p``), in the compute dtype.

    Example:
        >>> x = torch.tensor([[0.5, 0.0]])
        >>> p = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
        >>> busemann(x, p)  # -d(0, x) towards p, +d(0, x) away from it
        tensor([[-1.0986,  1.0986]])
    """
    if c <= 0:
        raise ValueError(f"curvature c must be positive, got {c}")
    if x.shape[-1] != p.shape[-1]:
        raise ValueError(
            f"x and p must have the same last dimension, got {tuple(x.shape)} and {tuple(p.shape)}"
        )
    single = p.dim() == 1
    dtype = torch.promote_types(_compute_dtype(x), _compute_dtype(p))
    sqrt_c = c**0.5
    with torch.autocast(device_type=x.device.type, enabled=False):
        xs = x.to(dtype) * sqrt_c
        ps = p.to(dtype).reshape(-1, p.shape[-1])
        x_sq = xs.pow(2).sum(-1, keepdim=True)
        # ||p - xs||^2 = ||p||^2 - 2 <p, xs> + ||xs||^2, one matmul instead of N x K x d.
        diff_sq = ps.pow(2).sum(-1) - 2.0 * xs @ ps.transpose(0, 1) + x_sq
        log_num = diff_sq.clamp_min(BOUNDARY_EPS).log()
        log_den = (1.0 - x_sq).clamp_min(BOUNDARY_EPS).log()
        out = (log_num - log_den) / sqrt_c
    return out.squeeze(-1) if single else out


def clip_features(x: Tensor, clip_r: float | None) -> Tensor:
    """Feature clipping (Guo et al., CVPR 2022): ``min(1, clip_r / ||x||) x`` row-wise
    (``x`` itself when ``clip_r`` is None)."""
    if clip_r is None:
        return x
    norm = x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return x * (clip_r / norm).clamp(max=1.0)


def poincare_ball(c: float = 1.0) -> geoopt.PoincareBall:
    """The geoopt Poincaré ball of curvature ``-c``."""
    if c <= 0:
        raise ValueError(f"curvature c must be positive, got {c}")
    return geoopt.PoincareBall(c=c)


class ToPoincare(nn.Module):
    """Map Euclidean features into the Poincaré ball: clip, ``expmap0``, project.

    1. Feature clipping (Guo et al., "Clipped hyperbolic classifiers are super-hyperbolic
       classifiers", CVPR 2022): ``x <- min(1, clip_r / ||x||) x`` when ``clip_r`` is set.
    2. The exponential map at the origin, ``tanh(sqrt(c) ||x||) x / (sqrt(c) ||x||)``.
    3. geoopt's projection strictly inside the ball (norm at most ``(1 - eps) / sqrt(c)``).

    Half-precision inputs are computed and returned in float32.

    Args:
        c: curvature magnitude.
        clip_r: maximum Euclidean feature norm before the exponential map (None: no clip).
    """

    def __init__(self, c: float = 1.0, clip_r: float | None = None) -> None:
        super().__init__()
        if clip_r is not None and clip_r <= 0:
            raise ValueError(f"clip_r must be positive or None, got {clip_r}")
        self.c = float(c)
        self.clip_r = clip_r
        self.ball = poincare_ball(c)

    def forward(self, x: Tensor) -> Tensor:
        """Map ``... x d`` Euclidean features to ``... x d`` points of the ball."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = clip_features(x.to(_compute_dtype(x)), self.clip_r)
            return self.ball.projx(self.ball.expmap0(x))

    def extra_repr(self) -> str:
        return f"c={self.c}, clip_r={self.clip_r}"
