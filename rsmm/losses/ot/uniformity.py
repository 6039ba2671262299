"""Uniformity on the hypersphere: sliced OT to the uniform law, and Wang & Isola's losses.

- :func:`ssw_uniformity`: spherical sliced-Wasserstein ``SSW_2^2(mu, U)`` between the empirical
  law of the embeddings and the uniform law on the sphere (Bonet et al. 2023,
  arXiv:2206.08780; thesis eq. 3.14-3.16). Each slice projects the sphere onto a random
  great circle; on the circle the Wasserstein distance to the uniform law has a closed form.
- :func:`sw_uniformity`: the same with straight-line slices ``<theta, z>``, against the law of
  ``<theta, X>`` for ``X`` uniform on the sphere (``(t + 1) / 2 ~ Beta((d-1)/2, (d-1)/2)``),
  also in closed form.
- :func:`ssw_ssl`: the SSW-SSL objective, eq. 3.17.
- :func:`align_loss`, :func:`uniform_loss`: Wang & Isola (2020, arXiv:2005.10242).

All functions L2-normalise their inputs. Random projections come from an optional
``torch.Generator`` so that a loss can be reproduced exactly.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from scipy import special
from torch import Tensor, nn

from rsmm.losses.ot._views import anchor_mean, check_pair, unit_rows

__all__ = [
    "SSWSSLLoss",
    "align_loss",
    "circle_projections",
    "ssw_ssl",
    "ssw_uniformity",
    "sw_uniformity",
    "uniform_loss",
]


def _as_sphere(z: Tensor, name: str = "z") -> Tensor:
    if z.ndim != 2 or z.shape[0] < 1 or z.shape[1] < 2:
        raise ValueError(f"`{name}` must be an N x d tensor with d >= 2, got {tuple(z.shape)}")
    return unit_rows(z, dim=1)


def _randn(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None) -> Tensor:
    device = generator.device if generator is not None else like.device
    out = torch.randn(shape, generator=generator, device=device, dtype=like.dtype)
    return out.to(like.device)


def circle_projections(
    d: int, n_projections: int, generator: torch.Generator | None = None, like: Tensor | None = None
) -> Tensor:
    """Random great circles: ``n_projections x d x 2`` matrices with orthonormal columns.

    Drawn uniformly on the Stiefel manifold (QR of a Gaussian matrix, signs fixed so the law
    is exactly Haar), the same convention as POT's ``get_projections_sphere``.
    """
    like = like if like is not None else torch.empty(0)
    # QR has no half-precision kernel on CPU: half `like`s draw and factorise in float32,
    # and the result is cast back to their dtype.
    work = like if like.dtype == torch.float64 else like.float()
    Q, R = torch.linalg.qr(_randn((n_projections, d, 2), work, generator))
    return (Q * torch.sign(torch.diagonal(R, dim1=-2, dim2=-1)).unsqueeze(-2)).to(like.dtype)


def _circle_w2_to_uniform(t: Tensor) -> Tensor:
    r"""Closed-form ``W_2^2(mu_n, Unif(S^1))`` for circle coordinates ``t`` in ``[0, 1)``.

    ``t``: ``L x n``, one empirical law (uniform weights) per row. With ``t`` sorted,
    :math:`W_2^2 = \min_\theta \int_0^1 (F^{-1}(s) - s - \theta)^2 ds
    = \mathrm{Var}(t) + \bar t - \frac{1}{n^2}\sum_i (2i - 1) t_{(i)} + \frac{1}{12}`
    (Delon, Salomon & Sobolevski 2010; Bonet et al. 2023, Prop. 1).
    """
    n = t.shape[-1]
    t = torch.sort(t, dim=-1).values
    rank_weights = torch.arange(1, 2 * n, 2, dtype=t.dtype, device=t.device) / n**2
    mean = t.mean(dim=-1)
    var = t.pow(2).mean(dim=-1) - mean.pow(2)
    return var + mean - (t * rank_weights).sum(dim=-1) + 1.0 / 12.0


def ssw_uniformity(
    z: Tensor,
    n_projections: int = 10,
    generator: torch.Generator | None = None,
    projections: Tensor | None = None,
) -> Tensor:
    r"""Spherical sliced-Wasserstein ``SSW_2^2`` to the uniform law on the sphere, eq. 3.14-3.16.

    Bonet, Berg, Courty, Septier, Drumetz & Pham, "Spherical Sliced-Wasserstein", ICLR 2023.
    For each of ``L`` random great circles ``U`` (``d x 2``, orthonormal columns), the points
    are projected to ``U^T z / ||U^T z||``, parametrised by arc length in ``[0, 1)`` (a circle
    of length 1, POT's convention), and compared with the uniform law on the circle (the
    projection of the uniform law on the sphere) in closed form; the result is the mean over
    slices. About 0 for uniform points, ``1/12`` per slice for a collapsed batch.

    Args:
        z: embeddings, ``N x d`` (``d >= 2``), normalised here.
        n_projections: number of great circles ``L``.
        generator: random generator for the projections.
        projections: explicit ``L x d x 2`` projections (then ``n_projections`` and
            ``generator`` are ignored).

    Returns:
        Scalar ``SSW_2^2`` (POT's ``ot.sliced_wasserstein_sphere_unif`` returns its square root).
    """
    z = _as_sphere(z)
    if projections is None:
        projections = circle_projections(z.shape[1], n_projections, generator, like=z)
    if projections.ndim != 3 or projections.shape[1:] != (z.shape[1], 2):
        raise ValueError(
            f"`projections` must have shape L x {z.shape[1]} x 2, got {tuple(projections.shape)}"
        )
    p = torch.einsum("nd,ldk->lnk", z, projections.to(z))
    t = torch.remainder(torch.atan2(p[..., 1], p[..., 0]) / (2 * math.pi), 1.0)
    return _circle_w2_to_uniform(t).mean()


@functools.lru_cache(maxsize=64)
def _beta_bin_means(n: int, d: int) -> tuple[float, ...]:
    """``m_i = int_{(i-1)/n}^{i/n} G^{-1}(s) ds`` for ``G`` the law of ``<theta, X>``, X ~ U(S^{d-1}).

    ``(T + 1) / 2 ~ Beta(k, k)``, ``k = (d - 1) / 2``, so ``m_i = 2 E[B; B in bin_i] - 1/n`` and
    ``E[B; B <= x] = I_x(k + 1, k) / 2`` (regularised incomplete beta).
    """
    k = (d - 1) / 2
    edges = special.betaincinv(k, k, [i / n for i in range(n + 1)])
    partial = special.betainc(k + 1, k, edges)
    partial[0], partial[-1] = 0.0, 1.0
    return tuple(float(partial[i + 1] - partial[i] - 1.0 / n) for i in range(n))


def sw_uniformity(
    z: Tensor,
    n_projections: int = 10,
    generator: torch.Generator | None = None,
    projections: Tensor | None = None,
) -> Tensor:
    r"""Sliced-Wasserstein ``SW_2^2`` (straight-line slices) to the uniform law on the sphere.

    For each random direction ``theta`` the projections ``<theta, z_i>`` are compared with
    the law of ``<theta, X>``, ``X ~ Unif(S^{d-1})``, by the exact 1-D closed form
    :math:`W_2^2 = \frac1n \sum_i s_{(i)}^2 - 2 \sum_i s_{(i)} m_i + \frac1d` with
    :math:`m_i` the integral of the target quantile function over ``[(i-1)/n, i/n]``
    (the SW variant of eq. 3.17 in the thesis; Bonneel et al. 2015 for sliced OT).

    Args:
        z: embeddings, ``N x d`` (``d >= 2``), normalised here.
        n_projections: number of directions.
        generator: random generator for the directions.
        projections: explicit ``L x d`` unit directions.

    Returns:
        Scalar ``SW_2^2``.
    """
    z = _as_sphere(z)
    n, d = z.shape
    if projections is None:
        projections = F.normalize(_randn((n_projections, d), z, generator), dim=1)
    if projections.ndim != 2 or projections.shape[1] != d:
        raise ValueError(f"`projections` must have shape L x {d}, got {tuple(projections.shape)}")
    s = torch.sort(z @ projections.to(z).T, dim=0).values  # n x L
    m = torch.tensor(_beta_bin_means(n, d), dtype=z.dtype, device=z.device)
    w2 = s.pow(2).mean(dim=0) - 2 * (m.unsqueeze(1) * s).sum(dim=0) + 1.0 / d
    return w2.mean()


def align_loss(
    zA: Tensor, zB: Tensor, alpha: float = 2.0, anchors: Tensor | None = None
) -> Tensor:
    r"""Alignment ``mean_i ||zA_i - zB_i||^alpha`` (Wang & Isola, ICML 2020), rows normalised.

    ``anchors``: optional ``N`` booleans, False for samples that only serve as negatives
    (left out of the mean: their views are not pulled together)."""
    check_pair(zA, zB)
    diff = _as_sphere(zA, "zA") - _as_sphere(zB, "zB")
    sq = diff.pow(2).sum(dim=1)
    per = sq if alpha == 2 else sq.clamp_min(1e-12).pow(alpha / 2)
    return anchor_mean(per, anchors)


def uniform_loss(z: Tensor, t: float = 2.0) -> Tensor:
    r"""Uniformity ``log mean_{i<j} exp(-t ||z_i - z_j||^2)`` (Wang & Isola, ICML 2020).

    Computed with a log-sum-exp over the ``N(N-1)/2`` pairs (no square roots, so the
    gradient is finite even for coincident points).
    """
    z = _as_sphere(z)
    if z.shape[0] < 2:
        raise ValueError("`z` needs at least 2 rows for uniform_loss")
    i, j = torch.triu_indices(z.shape[0], z.shape[0], offset=1, device=z.device)
    sq = (2.0 - 2.0 * (z[i] * z[j]).sum(dim=1)).clamp_min(0.0)
    return torch.logsumexp(-t * sq, dim=0) - math.log(sq.numel())


def ssw_ssl(
    zA: Tensor,
    zB: Tensor,
    lam: float = 1.0,
    n_projections: int = 10,
    generator: torch.Generator | None = None,
    sliced: str = "spherical",
    anchors: Tensor | None = None,
) -> Tensor:
    r"""SSW-SSL objective, thesis eq. 3.17 (Bonet et al. 2023, section 5).

    .. math:: \frac1N \sum_i \|zA_i - zB_i\|^2
              + \frac{\lambda}{2}\big(SSW_2^2(zA, U) + SSW_2^2(zB, U)\big)

    on L2-normalised rows; both views share the same random slices.

    Args:
        zA: view A embeddings, ``N x d``.
        zB: view B embeddings, ``N x d``.
        lam: weight of the uniformity term.
        n_projections: number of slices.
        generator: random generator for the slices.
        sliced: ``"spherical"`` (great circles, SSW) or ``"linear"`` (straight lines, SW).
        anchors: optional ``N`` booleans, False for samples that only serve as negatives:
            left out of the alignment mean, kept in the uniformity terms.

    Returns:
        Scalar loss.
    """
    check_pair(zA, zB)
    zA, zB = _as_sphere(zA, "zA"), _as_sphere(zB, "zB")
    d = zA.shape[1]
    if sliced == "spherical":
        proj = circle_projections(d, n_projections, generator, like=zA)
        uniformity = ssw_uniformity(zA, projections=proj) + ssw_uniformity(zB, projections=proj)
    elif sliced == "linear":
        proj = F.normalize(_randn((n_projections, d), zA, generator), dim=1)
        uniformity = sw_uniformity(zA, projections=proj) + sw_uniformity(zB, projections=proj)
    else:
        raise ValueError(f"`sliced` must be 'spherical' or 'linear', got {sliced!r}")
    return align_loss(zA, zB, anchors=anchors) + lam / 2 * uniformity


class SSWSSLLoss(nn.Module):
    """Module form of :func:`ssw_ssl` (eq. 3.17); holds its own seeded generator."""

    def __init__(
        self,
        lam: float = 1.0,
        n_projections: int = 10,
        sliced: str = "spherical",
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self.lam, self.n_projections, self.sliced = lam, n_projections, sliced
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None

    def forward(self, zA: Tensor, zB: Tensor) -> Tensor:
        return ssw_ssl(zA, zB, self.lam, self.n_projections, self.generator, self.sliced)
