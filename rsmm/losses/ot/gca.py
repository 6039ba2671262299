"""Generalised contrastive alignment (GCA): contrastive losses as transport plans.

Z. Chen et al., "Your contrastive learning problem is secretly a
distribution alignment problem" (NeurIPS 2024, arXiv:2502.20141). The Gibbs kernel of the
two-view batch, ``K = exp(-C / tau)`` with ``C = 1 - z z^T`` and ``C_ii = +inf``, is turned into
a transport plan ``P`` by Bregman projections onto the marginal constraints, and ``P`` is
aligned with the target plan that couples each row with its positive:

- InfoNCE / NT-Xent is a *single* row projection (``P = diag(1 / K 1) K``) followed by
  ``-mean_i log P[i, twin(i)]`` (:func:`infonce_alignment`);
- GCA-INCE runs ``n_iters`` full Sinkhorn iterations instead (:func:`gca_ince`);
- GCA-RINCE applies the robust RINCE loss of Chuang et al. (CVPR 2022, arXiv:2201.04309)
  to the plan
  (:func:`gca_rince`);
- GCA-UOT relaxes the marginals (unbalanced OT, KL penalties of weight ``rho``) and uses the
  generalised KL divergence to the target (:func:`gca_uot`).

View layout (the same for every loss here and for L_Sample): ``z = concat(zA, zB)``, ``2N``
rows; row ``i`` and row ``twin(i) = (i + N) mod 2N`` are the two views of sample ``i``. Rows
are L2-normalised by the losses. ``tau`` plays the role of both the temperature and the
entropic ``eps``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rsmm.losses.ot._views import self_masked_cost, stack_views, twin_log_prob
from rsmm.losses.ot.plans import sample_loss
from rsmm.losses.ot.solvers import sinkhorn, sinkhorn_unbalanced

__all__ = ["GCALoss", "gca_ince", "gca_rince", "gca_uot", "infonce_alignment"]


def _check_tau(tau: float) -> None:
    if not (isinstance(tau, int | float) and tau > 0):
        raise ValueError(f"`tau` must be a positive number, got {tau!r}")


def infonce_alignment(zA: Tensor, zB: Tensor, tau: float = 0.5) -> Tensor:
    r"""InfoNCE as one row projection of the Gibbs kernel (GCA, arXiv:2502.20141).

    ``P = diag(1 / K 1) K`` with ``K = exp(-(1 - z z^T) / tau)``, zero diagonal; the loss
    ``-1/2N sum_i log P[i, twin(i)]`` is exactly SimCLR's NT-Xent with temperature ``tau``
    (lightly's ``NTXentLoss(temperature=tau)(zA, zB)``).

    Args:
        zA: view A embeddings, ``N x d``.
        zB: view B embeddings, ``N x d``.
        tau: temperature.

    Returns:
        Scalar loss.
    """
    _check_tau(tau)
    log_plan = torch.log_softmax(-self_masked_cost(stack_views(zA, zB)) / tau, dim=1)
    return -twin_log_prob(log_plan).mean()


def gca_ince(zA: Tensor, zB: Tensor, tau: float = 0.5, n_iters: int = 5) -> Tensor:
    r"""GCA-INCE: ``n_iters`` Sinkhorn iterations, target = the positive pairing.

    ``P`` = entropic plan (``eps = tau``, uniform marginals ``1/2N``) of the self-masked
    cosine cost; loss ``KL(P_tgt || P) = -1/2N sum_i log(2N P[i, twin(i)])`` with
    ``P_tgt = (1/2N) * permutation(twin)``. This is the same objective as L_Sample (eq. 3.3-3.6)
    with ``eps = tau``.

    Args:
        zA: view A embeddings, ``N x d``.
        zB: view B embeddings, ``N x d``.
        tau: temperature / entropic regularisation.
        n_iters: Sinkhorn iterations (each a column then a row projection).

    Returns:
        Scalar loss.
    """
    _check_tau(tau)
    return sample_loss(zA, zB, eps=tau, n_iters=n_iters)


def _rince(pos: Tensor, total: Tensor, q: float, lam: float) -> Tensor:
    """RINCE (Chuang et al. 2022): ``mean(-pos^q / q + (lam * total)^q / q)``."""
    if not (0 < q <= 1):
        raise ValueError(f"`q` must be in (0, 1], got {q!r}")
    if not lam > 0:
        raise ValueError(f"`lam` must be positive, got {lam!r}")
    return (-pos.pow(q) / q + (lam * total).pow(q) / q).mean()


def gca_rince(
    zA: Tensor, zB: Tensor, tau: float = 0.5, n_iters: int = 5, q: float = 0.5, lam: float = 0.01
) -> Tensor:
    r"""GCA-RINCE: the robust InfoNCE of Chuang et al. (CVPR 2022) on the Sinkhorn plan.

    With ``R = 2N P`` (``P`` as in :func:`gca_ince`, so each row of ``R`` is a distribution
    over the other rows), ``pos_i = R[i, twin(i)]`` and ``total_i = sum_j R_ij``,

    .. math:: L = \frac{1}{2N} \sum_i \Big(-\frac{pos_i^q}{q} + \frac{(\lambda\, total_i)^q}{q}\Big).

    RINCE replaces ``exp(s+)`` and ``sum_k exp(s_k)`` by the plan's entries. The last
    Sinkhorn step is a row projection, so ``total_i = 1`` and the second term is the
    constant ``lam^q / q``; the loss is then the generalised cross-entropy
    ``(1 - pos^q) / q`` shifted by a constant, bounded for noisy (false) positives
    and tending to :func:`gca_ince` as ``q -> 0``.

    Args:
        zA: view A embeddings, ``N x d``.
        zB: view B embeddings, ``N x d``.
        tau: temperature / entropic regularisation.
        n_iters: Sinkhorn iterations.
        q: robustness exponent in ``(0, 1]``.
        lam: weight of the negatives' mass.

    Returns:
        Scalar loss.
    """
    _check_tau(tau)
    z = stack_views(zA, zB)
    log_plan = sinkhorn(self_masked_cost(z), eps=tau, n_iters=n_iters, return_log=True)
    log_rows = log_plan + math.log(z.shape[0])
    return _rince(twin_log_prob(log_rows).exp(), log_rows.exp().sum(dim=1), q, lam)


def gca_uot(zA: Tensor, zB: Tensor, tau: float = 0.5, n_iters: int = 5, rho: float = 1.0) -> Tensor:
    r"""GCA-UOT: unbalanced plan (KL-relaxed marginals) aligned with the target pairing.

    ``P`` = :func:`~rsmm.losses.ot.sinkhorn_unbalanced` plan of the self-masked cosine cost
    (``eps = tau``, marginal penalty ``rho``, uniform measures ``1/2N``). As ``P`` need not
    have unit mass, the alignment is the generalised KL divergence to
    ``P_tgt = (1/2N) * permutation(twin)``:

    .. math:: \mathrm{KL}(P_{tgt} \| P) = -\frac{1}{2N} \sum_i \log(2N P_{i,twin(i)})
              - 1 + \sum_{ij} P_{ij}.

    Args:
        zA: view A embeddings, ``N x d``.
        zB: view B embeddings, ``N x d``.
        tau: temperature / entropic regularisation.
        n_iters: unbalanced Sinkhorn iterations.
        rho: marginal relaxation (``inf`` = balanced).

    Returns:
        Scalar loss.
    """
    _check_tau(tau)
    z = stack_views(zA, zB)
    C = self_masked_cost(z)
    log_plan = sinkhorn_unbalanced(C, eps=tau, rho=rho, n_iters=n_iters, return_log=True)
    cross_entropy = -(twin_log_prob(log_plan) + math.log(z.shape[0])).mean()
    return cross_entropy - 1.0 + log_plan.exp().sum()


class GCALoss(nn.Module):
    """Module form of the GCA family.

    Args:
        method: ``"infonce"``, ``"ince"``, ``"rince"`` or ``"uot"``.
        tau: temperature / entropic regularisation.
        n_iters: Sinkhorn iterations (ignored by ``"infonce"``).
        q: RINCE exponent (``"rince"`` only).
        lam: RINCE negative weight (``"rince"`` only).
        rho: marginal relaxation (``"uot"`` only).
    """

    def __init__(
        self,
        method: str = "ince",
        tau: float = 0.5,
        n_iters: int = 5,
        q: float = 0.5,
        lam: float = 0.01,
        rho: float = 1.0,
    ) -> None:
        super().__init__()
        if method not in {"infonce", "ince", "rince", "uot"}:
            raise ValueError(
                f"`method` must be 'infonce', 'ince', 'rince' or 'uot', got {method!r}"
            )
        self.method, self.tau, self.n_iters = method, tau, n_iters
        self.q, self.lam, self.rho = q, lam, rho

    def forward(self, zA: Tensor, zB: Tensor) -> Tensor:
        if self.method == "infonce":
            return infonce_alignment(zA, zB, self.tau)
        if self.method == "ince":
            return gca_ince(zA, zB, self.tau, self.n_iters)
        if self.method == "rince":
            return gca_rince(zA, zB, self.tau, self.n_iters, self.q, self.lam)
        return gca_uot(zA, zB, self.tau, self.n_iters, self.rho)
