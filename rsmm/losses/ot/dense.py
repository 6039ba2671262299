"""Dense (patch-level) contrastive learning with transport-plan targets (DenseCL family).

Thesis eq. 3.18-3.24, generalising DenseCL (Wang, Zhang, Shen, Kong & Li, CVPR 2021,
arXiv:2011.09157): the
patches of view 1 of an image are matched to the patches of view 2 of the same image by a
plan ``T`` (argmax similarity as in DenseCL, exact OT, entropic OT, unbalanced OT, or
uniform), and each row of ``T`` (normalised to sum to 1) is the soft target of that query
patch in a dense InfoNCE whose negatives are the patches of the *other* images of the batch.

Exactly what :func:`dense_contrastive_loss` computes, for query patch ``i`` of image ``b``
(``q``: view-1 patches, ``k``: view-2 patches, both L2-normalised, ``s(x, y) = <x, y> / tau``):

.. math::
    \\ell_{b,i} = -\\sum_j T^b_{ij} \\log
        \frac{e^{s(q_{bi}, k_{bj})}}{e^{s(q_{bi}, k_{bj})}
        + \\sum_{b' \ne b} \\sum_{j'} e^{s(q_{bi}, k_{b'j'})}}

i.e. every candidate positive ``j`` of the same image is contrasted with the negatives only
(the other patches of the same image are neither positives nor negatives), and with a one-hot
``T`` (argmax) this is DenseCL's dense loss with in-batch negatives. ``negatives="pooled"``
uses one negative per other image instead, its mean view-2 patch (DenseCL's second queue
holds such pooled keys). ``negatives="images"`` is eq. 3.19/3.24 as printed: each query
patch is contrasted with the image-level representations of *all* ``N`` images of the
batch (its own included), ``g_n`` (the mean view-2 patch of image ``n``, L2-normalised,
unless ``image_keys`` gives them):

.. math::
    \\ell_{b,i} = -\\sum_j T^b_{ij} \\log
        \frac{e^{s(q_{bi}, k_{bj})}}{e^{s(q_{bi}, k_{bj})} + \\sum_{n=1}^{N} e^{s(q_{bi}, g_n)}}

The loss is averaged over all query patches and, when
``symmetric``, over both directions (view 1 -> 2 and 2 -> 1, each with its own matching).
Plans are targets: they are computed without gradient.
"""

from __future__ import annotations

import ot
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rsmm.losses.ot._views import unit_rows
from rsmm.losses.ot.gca import cross_view_infonce, infonce_alignment
from rsmm.losses.ot.solvers import sinkhorn, sinkhorn_unbalanced

__all__ = [
    "DENSE_NEGATIVES",
    "MATCHING_METHODS",
    "DenseContrastiveLoss",
    "combine_global_dense",
    "dense_contrastive_loss",
    "dense_matching",
    "patch_set",
]

#: Matching plans accepted by :func:`dense_matching`.
MATCHING_METHODS = ("argmax", "emd", "sinkhorn", "unbalanced", "uniform")


def patch_set(f: Tensor, name: str = "f") -> Tensor:
    """``B x D x H x W`` feature map or ``B x P x D`` patch set -> ``B x P x D``."""
    if f.ndim == 4:
        return f.flatten(2).transpose(1, 2)
    if f.ndim == 3:
        return f
    raise ValueError(f"`{name}` must be B x D x H x W or B x P x D, got {tuple(f.shape)}")


def _unit_patches(f: Tensor, name: str) -> Tensor:
    f = patch_set(f, name)
    return unit_rows(f, dim=-1)


@torch.no_grad()
def dense_matching(
    f1: Tensor,
    f2: Tensor,
    method: str = "argmax",
    eps: float = 0.05,
    n_iters: int = 50,
    rho: float = 1.0,
) -> Tensor:
    """Row-normalised matching plan from the patches of ``f1`` to those of ``f2``, per image.

    The cost is ``1 - cos(f1_i, f2_j)`` within each image; marginals are uniform.

    Args:
        f1: view-1 features, ``B x D x H x W`` or ``B x P1 x D``.
        f2: view-2 features, ``B x D x H' x W'`` or ``B x P2 x D``.
        method: ``"argmax"`` (one-hot at the most similar patch, DenseCL), ``"emd"`` (exact
            OT, ``ot.emd`` per image), ``"sinkhorn"`` (entropic OT), ``"unbalanced"``
            (unbalanced entropic OT) or ``"uniform"`` (every patch equally).
        eps: entropic regularisation (``"sinkhorn"``, ``"unbalanced"``).
        n_iters: Sinkhorn iterations (``"sinkhorn"``, ``"unbalanced"``).
        rho: marginal relaxation (``"unbalanced"``).

    Returns:
        ``B x P1 x P2`` plan whose rows sum to 1 (no gradient).
    """
    q, k = _unit_patches(f1, "f1"), _unit_patches(f2, "f2")
    if q.shape[0] != k.shape[0] or q.shape[2] != k.shape[2]:
        raise ValueError(
            f"`f1` and `f2` need the same batch size and channels, got {tuple(q.shape)} "
            f"and {tuple(k.shape)} (as B x P x D)"
        )
    sim = q @ k.transpose(1, 2)
    if method == "argmax":
        plan = F.one_hot(sim.argmax(dim=-1), sim.shape[-1]).to(sim.dtype)
    elif method == "uniform":
        plan = torch.ones_like(sim)
    elif method == "sinkhorn":
        plan = sinkhorn(1.0 - sim, eps=eps, n_iters=n_iters)
    elif method == "unbalanced":
        plan = sinkhorn_unbalanced(1.0 - sim, eps=eps, rho=rho, n_iters=n_iters)
    elif method == "emd":
        cost = (1.0 - sim).double().cpu().numpy()
        plan = torch.stack([torch.from_numpy(ot.emd([], [], c)) for c in cost]).to(sim)
    else:
        raise ValueError(f"`method` must be one of {MATCHING_METHODS}, got {method!r}")
    return plan / plan.sum(dim=-1, keepdim=True)


#: the negatives of a query patch in :func:`dense_contrastive_loss`
DENSE_NEGATIVES = ("patches", "pooled", "images")


def _one_direction(
    q: Tensor,
    k: Tensor,
    target: Tensor,
    tau: float,
    negatives: str,
    keys: Tensor | None = None,
    anchors: Tensor | None = None,
) -> Tensor:
    """Soft dense InfoNCE of queries ``q`` (B x P1 x D) against keys ``k`` (B x P2 x D);
    ``keys``: the image-level keys of ``negatives="images"`` (B x D, L2-normalised)."""
    batch = q.shape[0]
    same = q @ k.transpose(1, 2) / tau  # B x P1 x P2
    if negatives == "patches":
        keys = k.reshape(-1, k.shape[-1])  # (B P2) x D
        owner = torch.arange(batch, device=q.device).repeat_interleave(k.shape[1])
    elif negatives in ("pooled", "images"):
        keys = unit_rows(k.mean(dim=1), dim=-1) if keys is None else keys  # B x D
        owner = torch.arange(batch, device=q.device)
    else:
        raise ValueError(f"`negatives` must be one of {DENSE_NEGATIVES}, got {negatives!r}")
    logits = torch.einsum("bpd,nd->bpn", q, keys) / tau
    if negatives == "images":  # every image's representation, its own included
        neg_lse = torch.logsumexp(logits, dim=-1)
    else:
        own = owner.unsqueeze(0) == torch.arange(batch, device=q.device).unsqueeze(1)  # B x N
        neg_lse = torch.logsumexp(logits.masked_fill(own.unsqueeze(1), float("-inf")), dim=-1)
    log_prob = same - torch.logaddexp(same, neg_lse.unsqueeze(-1))
    per_image = -(target * log_prob).sum(dim=-1).mean(dim=-1)  # B
    return per_image.mean() if anchors is None else per_image[anchors].mean()


def dense_contrastive_loss(
    f1: Tensor,
    f2: Tensor,
    method: str = "argmax",
    tau: float = 0.2,
    eps: float = 0.05,
    n_iters: int = 50,
    rho: float = 1.0,
    match_features: tuple[Tensor, Tensor] | None = None,
    negatives: str = "patches",
    symmetric: bool = True,
    image_keys: tuple[Tensor, Tensor] | None = None,
    anchors: Tensor | None = None,
) -> Tensor:
    """Soft dense contrastive loss with plan-row targets, thesis eq. 3.18-3.24 (see module doc).

    Args:
        f1: view-1 dense features (e.g. projected), ``B x D x H x W`` or ``B x P x D``; B >= 2.
        f2: view-2 dense features, same layout and ``B``, ``D``.
        method: matching plan, one of :data:`MATCHING_METHODS`.
        tau: temperature of the dense InfoNCE.
        eps: entropic regularisation of the matching.
        n_iters: Sinkhorn iterations of the matching.
        rho: marginal relaxation of the unbalanced matching.
        match_features: optional ``(g1, g2)`` features used for matching only (DenseCL matches
            with backbone features); ``(f1, f2)`` otherwise.
        negatives: ``"patches"`` (all patches of the other images, rsmm's default),
            ``"pooled"`` (one mean key per other image) or ``"images"`` (eq. 3.19/3.24 as
            printed: the image-level representations of all ``N`` images).
        symmetric: average both directions (rsmm's default); ``False`` = view 1 -> 2 only,
            as printed.
        image_keys: ``(keys of view 1, keys of view 2)``, ``B x D`` each, the image-level
            representations of ``negatives="images"`` (default: the mean patch of the
            other view, L2-normalised).
        anchors: optional ``B`` booleans, False for images that only serve as negatives:
            their patches are no queries (their own patches are not pulled together) but
            stay keys and negatives of the others.

    The loss is a mean over the query patches (and directions), as printed, so the
    learning rate does not depend on the batch size or the number of patches.

    Returns:
        Scalar loss.
    """
    q, k = _unit_patches(f1, "f1"), _unit_patches(f2, "f2")
    if q.shape[0] < 2 or q.shape[0] != k.shape[0] or q.shape[2] != k.shape[2]:
        raise ValueError(
            "`f1` and `f2` need the same batch size (>= 2, the other images are the negatives) "
            f"and channels, got {tuple(q.shape)} and {tuple(k.shape)} (as B x P x D)"
        )
    if negatives not in DENSE_NEGATIVES:
        raise ValueError(f"`negatives` must be one of {DENSE_NEGATIVES}, got {negatives!r}")
    g1, g2 = match_features if match_features is not None else (f1, f2)
    options = {"method": method, "eps": eps, "n_iters": n_iters, "rho": rho}
    keys1, keys2 = (None, None) if image_keys is None else (unit_rows(t, -1) for t in image_keys)
    if anchors is not None and not bool(anchors.any()):
        raise ValueError("every image of the batch is negative-only: no query is left")
    plan = dense_matching(g1, g2, **options)
    loss = _one_direction(q, k, plan, tau, negatives, keys2, anchors)
    if symmetric:
        back_plan = dense_matching(g2, g1, **options)
        back = _one_direction(k, q, back_plan, tau, negatives, keys1, anchors)
        loss = (loss + back) / 2
    return loss


def combine_global_dense(
    global_loss: Tensor, dense_loss: Tensor, dense_weight: float = 0.5
) -> Tensor:
    """DenseCL's objective ``(1 - w) * L_global + w * L_dense``; equal weights by default."""
    if not 0 <= dense_weight <= 1:
        raise ValueError(f"`dense_weight` must be in [0, 1], got {dense_weight!r}")
    return (1 - dense_weight) * global_loss + dense_weight * dense_loss


class DenseContrastiveLoss(nn.Module):
    """Global NT-Xent (or a given global loss) plus the dense loss, DenseCL-style.

    Args:
        method: matching plan, one of :data:`MATCHING_METHODS`.
        tau: temperature of both the global and the dense InfoNCE.
        eps: entropic regularisation of the matching.
        n_iters: Sinkhorn iterations of the matching.
        rho: marginal relaxation of the unbalanced matching.
        dense_weight: weight ``w`` of the dense term (``0.5`` = equal weights).
        negatives: ``"patches"``, ``"pooled"`` or ``"images"``.
        global_loss: callable ``(zA, zB) -> loss``; if None, NT-Xent with ``tau``
            (rsmm's default, SimCLR: both views are anchors and candidates) or, with
            ``literal=True``, the one-directional cross-view InfoNCE of eq. 3.20
            (:func:`~rsmm.losses.ot.cross_view_infonce`).
        symmetric: both directions of the dense term (``False`` with ``literal``).
        literal: eq. 3.19, 3.20 and 3.24 as printed: ``negatives="images"``, one
            direction, the cross-view global term (overrides ``negatives`` and
            ``symmetric``).
    """

    def __init__(
        self,
        method: str = "argmax",
        tau: float = 0.2,
        eps: float = 0.05,
        n_iters: int = 50,
        rho: float = 1.0,
        dense_weight: float = 0.5,
        negatives: str = "patches",
        global_loss: nn.Module | None = None,
        symmetric: bool = True,
        literal: bool = False,
    ) -> None:
        super().__init__()
        if method not in MATCHING_METHODS:
            raise ValueError(f"`method` must be one of {MATCHING_METHODS}, got {method!r}")
        if literal:
            negatives, symmetric = "images", False
        self.method, self.tau, self.eps, self.n_iters, self.rho = method, tau, eps, n_iters, rho
        self.dense_weight, self.negatives, self.global_loss = dense_weight, negatives, global_loss
        self.symmetric, self.literal = symmetric, literal

    def forward(
        self,
        zA: Tensor,
        zB: Tensor,
        fA: Tensor,
        fB: Tensor,
        match_features: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        """Global embeddings ``zA, zB`` (``B x d``) and dense features ``fA, fB``."""
        if self.global_loss is not None:
            global_term = self.global_loss(zA, zB)
        elif self.literal:
            global_term = cross_view_infonce(zA, zB, self.tau)
        else:
            global_term = infonce_alignment(zA, zB, self.tau)
        dense_term = dense_contrastive_loss(
            fA,
            fB,
            self.method,
            self.tau,
            self.eps,
            self.n_iters,
            self.rho,
            match_features,
            self.negatives,
            self.symmetric,
        )
        return combine_global_dense(global_term, dense_term, self.dense_weight)
