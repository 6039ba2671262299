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

from rsmm.losses.ot._views import anchor_mean, self_masked_cost, stack_views, twin_log_prob
from rsmm.losses.ot.plans import sample_loss
from rsmm.losses.ot.solvers import sinkhorn, sinkhorn_unbalanced

__all__ = ["GCALoss", "cross_view_infonce", "gca_ince", "gca_rince", "gca_uot", "infonce_alignment"]


def _check_tau(tau: float) -> None:
    if not (isinstance(tau, int | float) and tau > 0):
        raise ValueError(f"`tau` must be a positive number, got {tau!r}")


def infonce_alignment(
    zA: Tensor,
    zB: Tensor,
    tau: float = 0.5,
    cross_view: bool = False,
    anchors: Tensor | None = None,
) -> Tensor:
    r"""InfoNCE as one row projection of the Gibbs kernel (GCA, arXiv:2502.20141).

    ``P = diag(1 / K 1) K`` with ``K = exp(-(1 - z z^T) / tau)``, zero diagonal; the loss
    ``-1/2N sum_i log P[i, twin(i)]`` is exactly SimCLR's NT-Xent with temperature ``tau``
    (lightly's ``NTXentLoss(temperature=tau)(zA, zB)``).

    Args:
        zA: view A embeddings, ``N x d``.
        zB: view B embeddings, ``N x d``.
        tau: temperature.
        cross_view: :func:`cross_view_infonce` instead (eq. 3.20 as printed: view-A
            anchors, view-B candidates only, one direction).
        anchors: optional ``N`` booleans, False for samples that only serve as negatives
            (their rows stay in every denominator; their terms are left out of the mean).

    Both forms are means over their anchors (``2N`` or ``N``), so the learning rate does
    not depend on the batch size.

    Returns:
        Scalar loss.
    """
    if cross_view:
        return cross_view_infonce(zA, zB, tau, anchors)
    _check_tau(tau)
    log_plan = torch.log_softmax(-self_masked_cost(stack_views(zA, zB)) / tau, dim=1)
    return anchor_mean(-twin_log_prob(log_plan), anchors)


def cross_view_infonce(
    zA: Tensor, zB: Tensor, tau: float = 0.5, anchors: Tensor | None = None
) -> Tensor:
    r"""One-directional cross-view InfoNCE, thesis eq. 3.20 (the global term of dense
    contrastive learning, as printed).

    Each row of view A is an anchor, its positive the same sample's row of view B and
    its candidates the ``N`` rows of view B only:

    .. math:: L = -\frac1N \sum_i \log
              \frac{e^{\langle a_i, b_i\rangle / \tau}}{\sum_n e^{\langle a_i, b_n\rangle / \tau}}

    (``a, b`` the L2-normalised rows). rsmm's default global term is SimCLR's NT-Xent
    (:func:`infonce_alignment`): both views are anchors and the other rows of both views
    are candidates, which gives each step twice the anchors and ``2N - 2`` negatives.
    A mean over the anchors, so the learning rate does not depend on ``N``.

    Args:
        zA: view A embeddings (anchors), ``N x d``.
        zB: view B embeddings (candidates), ``N x d``.
        tau: temperature.
        anchors: optional ``N`` booleans, False for negative-only samples (their rows of
            view B stay candidates; they are no anchor).

    Returns:
        Scalar loss.
    """
    _check_tau(tau)
    a, b = stack_views(zA, zB).split(zA.shape[0])
    log_prob = torch.log_softmax(a @ b.T / tau, dim=1)
    return anchor_mean(-torch.diagonal(log_prob), anchors)


def gca_ince(
    zA: Tensor, zB: Tensor, tau: float = 0.5, n_iters: int = 5, anchors: Tensor | None = None
) -> Tensor:
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
        anchors: optional ``N`` booleans, False for negative-only samples (see
            :func:`~rsmm.losses.ot.sample_loss`).

    Returns:
        Scalar loss.
    """
    _check_tau(tau)
    return sample_loss(zA, zB, eps=tau, n_iters=n_iters, anchors=anchors)


#: what ``total_i`` of :func:`gca_rince` sums over a plan row
RINCE_TOTALS = ("all", "negatives")


def _rince(pos: Tensor, total: Tensor, q: float, lam: float) -> Tensor:
    """RINCE (Chuang et al. 2022) per row: ``-pos^q / q + (lam * total)^q / q``."""
    if not (0 < q <= 1):
        raise ValueError(f"`q` must be in (0, 1], got {q!r}")
    if not lam > 0:
        raise ValueError(f"`lam` must be positive, got {lam!r}")
    return -pos.pow(q) / q + (lam * total).pow(q) / q


def gca_rince(
    zA: Tensor,
    zB: Tensor,
    tau: float = 0.5,
    n_iters: int = 5,
    q: float = 0.5,
    lam: float = 0.01,
    total: str = "all",
    anchors: Tensor | None = None,
) -> Tensor:
    r"""GCA-RINCE: the robust InfoNCE of Chuang et al. (CVPR 2022) on the Sinkhorn plan.

    With ``R = 2N P`` (``P`` as in :func:`gca_ince`, so each row of ``R`` is a distribution
    over the other rows), ``pos_i = R[i, twin(i)]`` and ``total_i`` a sum over row ``i``,

    .. math:: L = \frac{1}{2N} \sum_i \Big(-\frac{pos_i^q}{q} + \frac{(\lambda\, total_i)^q}{q}\Big).

    RINCE replaces ``exp(s+)`` and ``sum_k exp(s_k)`` by the plan's entries. Two forms of
    ``total_i``:

    * ``total="all"`` (default, RINCE as printed): ``sum_j R_ij``, positive included. The
      last Sinkhorn step is a row projection, so ``total_i = 1`` and the second term is the
      constant ``lam^q / q``: ``lam`` shifts the loss but has **no effect on training**;
      the loss is the generalised cross-entropy ``(1 - pos^q) / q`` shifted by a
      constant, bounded for noisy (false) positives and tending to :func:`gca_ince` (plus
      ``log lam``) as ``q -> 0``.
    * ``total="negatives"`` (rsmm's fix): ``sum_{j != twin(i)} R_ij = 1 - pos_i``, the
      negatives' mass, so that ``lam`` weighs how hard the negatives are pushed away
      (the gradient of the second term is ``-lam^q (1 - pos)^(q-1)`` in ``pos``).

    A mean over the ``2N`` rows, so the learning rate does not depend on the batch size.

    Args:
        zA: view A embeddings, ``N x d``.
        zB: view B embeddings, ``N x d``.
        tau: temperature / entropic regularisation.
        n_iters: Sinkhorn iterations.
        q: robustness exponent in ``(0, 1]``.
        lam: weight of the negatives' mass.
        total: ``"all"`` or ``"negatives"`` (see above).
        anchors: optional ``N`` booleans, False for negative-only samples (their rows stay
            in the plan; their terms are left out of the mean).

    Returns:
        Scalar loss.
    """
    _check_tau(tau)
    if total not in RINCE_TOTALS:
        raise ValueError(f"`total` must be one of {RINCE_TOTALS}, got {total!r}")
    z = stack_views(zA, zB)
    log_plan = sinkhorn(self_masked_cost(z), eps=tau, n_iters=n_iters, return_log=True)
    log_rows = log_plan + math.log(z.shape[0])
    pos = twin_log_prob(log_rows).exp()
    mass = log_rows.exp().sum(dim=1)
    if total == "negatives":
        mass = (mass - pos).clamp_min(0.0)
    return anchor_mean(_rince(pos, mass, q, lam), anchors)


def gca_uot(
    zA: Tensor,
    zB: Tensor,
    tau: float = 0.5,
    n_iters: int = 5,
    rho: float = 1.0,
    anchors: Tensor | None = None,
) -> Tensor:
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
        anchors: optional ``N`` booleans, False for negative-only samples (their rows stay
            in the plan and its mass; their cross-entropy terms are left out of the mean).

    Returns:
        Scalar loss.
    """
    _check_tau(tau)
    z = stack_views(zA, zB)
    C = self_masked_cost(z)
    log_plan = sinkhorn_unbalanced(C, eps=tau, rho=rho, n_iters=n_iters, return_log=True)
    cross_entropy = anchor_mean(-(twin_log_prob(log_plan) + math.log(z.shape[0])), anchors)
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
