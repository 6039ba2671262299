"""Plan-based OT losses for self-supervised learning: L_Sample, L_Feature and L_COOT.

Each loss builds an entropic transport plan between the two views (between samples,
between features, or both jointly by co-optimal transport) and takes the cross-entropy of
the plan against the known pairing (thesis chapter 3, eq. 3.3-3.10). Plans are computed
with :func:`rsmm.losses.ot.sinkhorn` and differentiated by unrolling its iterations; the
losses read the exact log-plan, so a vanishing plan entry gives a large finite loss, not
``inf``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rsmm.losses.ot._views import (
    anchor_mean,
    check_pair,
    self_masked_cost,
    stack_views,
    twin_log_prob,
    unit_rows,
)
from rsmm.losses.ot.solvers import sinkhorn

__all__ = [
    "COOTLoss",
    "FeatureLoss",
    "SampleLoss",
    "coot_loss",
    "coot_plans",
    "feature_loss",
    "sample_loss",
]


def sample_loss(
    zA: Tensor, zB: Tensor, eps: float = 0.01, n_iters: int = 5, anchors: Tensor | None = None
) -> Tensor:
    r"""L_Sample, thesis eq. 3.3-3.6: cross-entropy of the sample plan against the pairing.

    With ``z = concat(zA, zB)`` (``2N`` rows, L2-normalised here), cost
    ``C = 1 - z z^T`` with ``C_ii = +inf``, and ``P`` the entropic plan with uniform
    marginals ``1/2N`` after ``n_iters`` Sinkhorn iterations,

    .. math:: L = -\frac{1}{2N} \sum_i \log\big(2N\, P_{i,\mathrm{twin}(i)}\big),
              \quad \mathrm{twin}(i) = i \pm N.

    A mean over the ``2N`` rows (as printed), so the learning rate does not depend on the
    batch size.

    Args:
        zA: view A embeddings, ``N x d`` (row ``i`` pairs with row ``i`` of ``zB``).
        zB: view B embeddings, ``N x d``.
        eps: entropic regularisation of the plan (thesis default 0.01).
        n_iters: Sinkhorn iterations (thesis default 5).
        anchors: optional ``N`` booleans, False for samples that only serve as negatives:
            their rows stay in the plan (its marginals and every row's competition) but
            their twin terms are left out of the mean.

    Returns:
        Scalar loss; 0 when the plan is the perfect pairing.

    Example:
        >>> zA, zB = torch.randn(8, 16), torch.randn(8, 16)
        >>> sample_loss(zA, zB).ndim
        0
    """
    z = stack_views(zA, zB)
    log_plan = sinkhorn(self_masked_cost(z), eps=eps, n_iters=n_iters, return_log=True)
    return anchor_mean(-(twin_log_prob(log_plan) + math.log(z.shape[0])), anchors)


def _standardise(z: Tensor) -> Tensor:
    """Columns centred and scaled to unit (biased) variance over the batch, then / sqrt(N)."""
    z = z if z.dtype == torch.float64 else z.float()
    z = z - z.mean(dim=0, keepdim=True)
    var = z.pow(2).mean(dim=0, keepdim=True)
    return z / torch.sqrt(var + 1e-8) / math.sqrt(z.shape[0])


def _identity_cross_entropy(log_plan: Tensor) -> Tensor:
    """``-mean_i log(n P_ii)`` for a square ``n x n`` log-plan (target = identity / n)."""
    n = log_plan.shape[-1]
    return -(torch.diagonal(log_plan) + math.log(n)).mean()


def feature_loss(
    zA: Tensor,
    zB: Tensor,
    eps: float = 0.01,
    n_iters: int = 5,
    standardise: bool = True,
    anchors: Tensor | None = None,
) -> Tensor:
    r"""L_Feature, thesis eq. 3.7-3.8: cross-entropy of the feature plan against the identity.

    ``Q`` is the entropic plan between the ``d`` features of both views (uniform marginals
    ``1/d``) for the cost ``C_ij = 1 - \sum_b a_{bi} b_{bj}``, and

    .. math:: L = -\frac{1}{d} \sum_i \log(d\, Q_{ii}).

    Two forms of ``a, b``:

    * ``standardise=True`` (rsmm's default): the columns of ``zA, zB`` are centred, scaled to
      unit variance over the batch and divided by ``sqrt(N)``, so ``C_ij`` is one minus the
      *correlation* of feature ``i`` of view A with feature ``j`` of view B: the cost stays
      in ``[0, 2]`` whatever the batch size, and ``eps`` means the same for every ``N``.
    * ``standardise=False``: eq. 3.7 as printed, raw inner products of the L2-normalised
      rows (``a = zA / ||zA_b||``). The cost then shrinks with the spread of the features
      (a feature's column has squared norm ~ ``N / d``), so the same ``eps`` gives a flatter
      plan for small ``N / d``.

    The loss is a mean over the ``d`` features (both forms), so the learning rate does not
    depend on ``d``.

    Args:
        zA: view A embeddings, ``N x d`` (``N >= 2``).
        zB: view B embeddings, ``N x d``.
        eps: entropic regularisation (thesis default 0.01).
        n_iters: Sinkhorn iterations (thesis default 5).
        standardise: correlation cost (rsmm) or the printed raw inner products.
        anchors: optional ``N`` booleans, False for samples that only serve as negatives:
            the cost sums over the paired samples only, so such samples are left out (the
            feature plan has no per-sample denominator for them to stay in).

    Returns:
        Scalar loss.
    """
    check_pair(zA, zB, min_rows=2)
    if anchors is not None:
        zA, zB = zA[anchors], zB[anchors]
        if zA.shape[0] < 2:
            raise ValueError("feature_loss needs at least 2 samples that are not negative-only")
    if standardise:
        a, b = _standardise(zA), _standardise(zB)
    else:
        a, b = unit_rows(zA, dim=1), unit_rows(zB, dim=1)
    C = 1.0 - a.T @ b
    return _identity_cross_entropy(sinkhorn(C, eps=eps, n_iters=n_iters, return_log=True))


def _coot_log_plans(
    X: Tensor,
    Y: Tensor,
    eps_samples: float,
    eps_features: float,
    n_bcd: int,
    n_iters: int,
    mask_self: bool = False,
) -> tuple[Tensor, Tensor]:
    """Block-coordinate COOT with uniform weights; returns (log sample plan, log feature plan).

    ``mask_self``: forbid the sample pairs ``(i, i)`` (cost ``+inf``; ``X`` and ``Y`` are then
    the same rows)."""
    if not (isinstance(n_bcd, int) and n_bcd >= 1):
        raise ValueError(f"`n_bcd` must be an integer >= 1, got {n_bcd!r}")
    X2, Y2 = X.pow(2), Y.pow(2)
    # Constant parts of sum_kl (X_ik - Y_jl)^2 Q_kl (and of its feature analogue).
    const_samples = X2.mean(dim=1).unsqueeze(1) + Y2.mean(dim=1).unsqueeze(0)
    const_features = X2.mean(dim=0).unsqueeze(1) + Y2.mean(dim=0).unsqueeze(0)
    d, e = X.shape[1], Y.shape[1]
    Q = torch.full((d, e), 1.0 / (d * e), dtype=X.dtype, device=X.device)
    eye = torch.eye(X.shape[0], dtype=torch.bool, device=X.device) if mask_self else None
    for _ in range(n_bcd):
        cost_samples = const_samples - 2 * X @ Q @ Y.T
        if eye is not None:
            cost_samples = cost_samples.masked_fill(eye, math.inf)
        log_P = sinkhorn(cost_samples, eps=eps_samples, n_iters=n_iters, return_log=True)
        cost_features = const_features - 2 * X.T @ log_P.exp() @ Y
        log_Q = sinkhorn(cost_features, eps=eps_features, n_iters=n_iters, return_log=True)
        Q = log_Q.exp()
    return log_P, log_Q


def _eps_pair(eps: float | tuple[float, float]) -> tuple[float, float]:
    if isinstance(eps, tuple | list):
        if len(eps) != 2:
            raise ValueError(f"`eps` must be a number or a pair (samples, features), got {eps}")
        return float(eps[0]), float(eps[1])
    return float(eps), float(eps)


def coot_plans(
    X: Tensor,
    Y: Tensor,
    eps: float | tuple[float, float] = 0.01,
    n_bcd: int = 3,
    n_iters: int = 5,
) -> tuple[Tensor, Tensor]:
    r"""Entropic co-optimal transport plans (Redko et al. 2020, arXiv:2002.03731), uniform weights.

    Block-coordinate descent on :math:`\sum_{ijkl} (X_{ik} - Y_{jl})^2 P_{ij} Q_{kl}
    + \varepsilon_s \mathrm{KL}(P) + \varepsilon_f \mathrm{KL}(Q)`, the objective of POT's
    ``ot.coot.co_optimal_transport``: starting from the uniform feature plan ``Q``, solve the
    sample plan for the cost ``mean_k X_ik^2 + mean_l Y_jl^2 - 2 (X Q Y^T)_ij`` (entropic,
    ``n_iters`` Sinkhorn iterations), then the feature plan for
    ``mean_i X_ik^2 + mean_j Y_jl^2 - 2 (X^T P Y)_kl``; repeat ``n_bcd`` times.

    Args:
        X: ``n x d`` matrix (samples x features).
        Y: ``m x e`` matrix.
        eps: entropic regularisation, one number or ``(eps_samples, eps_features)``.
        n_bcd: block-coordinate iterations.
        n_iters: Sinkhorn iterations per inner solve.

    Returns:
        ``(P, Q)``: the ``n x m`` sample plan and the ``d x e`` feature plan.
    """
    eps_s, eps_f = _eps_pair(eps)
    log_P, log_Q = _coot_log_plans(X, Y, eps_s, eps_f, n_bcd, n_iters)
    return log_P.exp(), log_Q.exp()


#: how :func:`coot_loss` reduces each term over its rows
REDUCTIONS = ("mean", "sum")


def coot_loss(
    zA: Tensor,
    zB: Tensor,
    eps: float | tuple[float, float] = 0.01,
    n_iters: int = 5,
    n_bcd: int = 3,
    lambda_samples: float = 1.0,
    lambda_features: float = 1.0,
    twins: bool = False,
    reduction: str = "mean",
    anchors: Tensor | None = None,
) -> Tensor:
    r"""L_COOT, thesis eq. 3.9-3.10: cross-entropies of the joint sample and feature plans.

    Two forms of the sample plan:

    * ``twins=False`` (rsmm's default): ``(P, Q) = coot_plans(zA, zB)`` between the two
      views (``N x N`` sample plan, target the identity ``P_ii``);
    * ``twins=True`` (eq. 3.10 as printed): co-optimal transport of ``z = concat(zA, zB)``
      (``2N`` L2-normalised rows) with itself, the self-pairs forbidden (cost ``+inf``), the
      sample plan ``2N x 2N`` indexed with the twins ``(i, twin(i) = i +- N)`` as in
      L_Sample; the feature plan is ``d x d``, target the identity.

    and two reductions of each term's per-row cross-entropies:

    .. math:: L = \lambda_s\, R_i\big(-\log(n P_{i,t(i)})\big)
              + \lambda_f\, R_k\big(-\log(d\, Q_{kk})\big),

    ``n`` the number of sample rows (``N`` or ``2N``), ``R`` the mean (``reduction="mean"``,
    rsmm's default: both terms weigh the same whatever ``N`` and ``d``, and the learning
    rate does not depend on them) or the sum (``reduction="sum"``, as printed: the terms
    are balanced ``n : d`` and the gradient grows with the batch size and the embedding
    size, so the learning rate must shrink by as much to train alike).

    ``twins=True, reduction="sum"`` is the literal eq. 3.10.

    Args:
        zA: view A embeddings, ``N x d``.
        zB: view B embeddings, ``N x d``.
        eps: entropic regularisation of both plans (or a pair); thesis default 0.01.
        n_iters: Sinkhorn iterations per inner solve (thesis default 5).
        n_bcd: block-coordinate iterations.
        lambda_samples: weight of the sample term.
        lambda_features: weight of the feature term.
        twins: ``2N x 2N`` sample plan indexed with twins (eq. 3.10) instead of ``N x N``.
        reduction: ``"mean"`` or ``"sum"`` of each term over its rows.
        anchors: optional ``N`` booleans, False for samples that only serve as negatives:
            their rows stay in both plans but their sample terms are left out.

    Returns:
        Scalar loss.
    """
    check_pair(zA, zB)
    if reduction not in REDUCTIONS:
        raise ValueError(f"`reduction` must be one of {REDUCTIONS}, got {reduction!r}")
    eps_s, eps_f = _eps_pair(eps)
    if twins:
        X = Y = stack_views(zA, zB)
    else:
        X, Y = unit_rows(zA, dim=1), unit_rows(zB, dim=1)
    log_P, log_Q = _coot_log_plans(X, Y, eps_s, eps_f, n_bcd, n_iters, mask_self=twins)
    n = log_P.shape[0]
    per_sample = twin_log_prob(log_P) if twins else torch.diagonal(log_P)
    per_sample = -(per_sample + math.log(n))
    per_feature = -(torch.diagonal(log_Q) + math.log(log_Q.shape[0]))
    if reduction == "sum":
        keep = None if anchors is None else anchors.repeat(n // anchors.shape[0])
        samples = per_sample.sum() if keep is None else per_sample[keep].sum()
        return lambda_samples * samples + lambda_features * per_feature.sum()
    return lambda_samples * anchor_mean(per_sample, anchors) + lambda_features * per_feature.mean()


class SampleLoss(nn.Module):
    """Module form of :func:`sample_loss` (L_Sample, eq. 3.3-3.6)."""

    def __init__(self, eps: float = 0.01, n_iters: int = 5) -> None:
        super().__init__()
        self.eps, self.n_iters = eps, n_iters

    def forward(self, zA: Tensor, zB: Tensor) -> Tensor:
        return sample_loss(zA, zB, self.eps, self.n_iters)


class FeatureLoss(nn.Module):
    """Module form of :func:`feature_loss` (L_Feature, eq. 3.7-3.8)."""

    def __init__(self, eps: float = 0.01, n_iters: int = 5, standardise: bool = True) -> None:
        super().__init__()
        self.eps, self.n_iters, self.standardise = eps, n_iters, standardise

    def forward(self, zA: Tensor, zB: Tensor) -> Tensor:
        return feature_loss(zA, zB, self.eps, self.n_iters, self.standardise)


class COOTLoss(nn.Module):
    """Module form of :func:`coot_loss` (L_COOT, eq. 3.9-3.10)."""

    def __init__(
        self,
        eps: float | tuple[float, float] = 0.01,
        n_iters: int = 5,
        n_bcd: int = 3,
        lambda_samples: float = 1.0,
        lambda_features: float = 1.0,
        twins: bool = False,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        self.eps, self.n_iters, self.n_bcd = eps, n_iters, n_bcd
        self.lambda_samples, self.lambda_features = lambda_samples, lambda_features
        self.twins, self.reduction = twins, reduction

    def forward(self, zA: Tensor, zB: Tensor) -> Tensor:
        return coot_loss(
            zA,
            zB,
            self.eps,
            self.n_iters,
            self.n_bcd,
            self.lambda_samples,
            self.lambda_features,
            twins=self.twins,
            reduction=self.reduction,
        )
