"""Metric-Guided Prototypes: a Euclidean prototype head whose layout follows a cost matrix.

Garnot & Landrieu, "Leveraging Class Hierarchies with Metric-Guided Prototype Learning",
BMVC 2021 (arXiv:2007.03047), the "Metric Guided Prototypes" row of the thesis' Tables 5.1
and 5.2. Each class k has a learnable prototype ``pi_k`` in the embedding space R^d; a
sample is classified by its squared distance to them and the prototypes are pulled into an
arrangement whose pairwise distances match, up to one global scale, the hierarchical cost
matrix ``D`` of the label tree (:meth:`rsmm.hyperbolic.LabelTree.distance_matrix`: the
path length between leaves, the metric of the average hierarchical cost).

Equations (the paper's, in its notation; the numbers are not given here because the
printed numbering could not be checked against the paper, only the formulas):

* class probabilities of a sample with embedding ``x``::

      p(k | x) = exp(-||x - pi_k||^2) / sum_l exp(-||x - pi_l||^2)

  trained by cross-entropy (``L_data``); :class:`MetricGuidedPrototypes` returns the
  logits ``-||x - pi_k||^2`` and the task's cross-entropy does the rest;
* the smooth, scale-free distortion regulariser (:func:`distortion_loss`)::

      L_disto(pi) = min_{s > 0} 1 / (K (K - 1)) sum_{k != l}
                        ((s ||pi_k - pi_l|| - D[k, l]) / D[k, l])^2

  with the Euclidean (not squared) distance between prototypes; the inner minimum has the
  closed form ``s* = sum r_kl / sum r_kl^2`` with ``r_kl = ||pi_k - pi_l|| / D[k, l]``
  (:func:`optimal_scale`; setting the derivative in ``s`` to zero);
* the objective ``L = L_data + lambda * L_disto`` (``lambda``: ``distortion_weight``).

Reading implemented: the squared relative error of the scaled distances (the paper's
"smooth" distortion loss), averaged over the ``K (K - 1)`` ordered pairs, with the optimal
scale recomputed from the current prototypes at every step; the gradient flows through
``s*`` as well (at the minimum ``dL/ds = 0``, so it changes nothing to first order). The
paper's evaluation measure, the scale-free distortion with absolute instead of squared
relative errors, is not the training loss and is not implemented here.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rsmm.hyperbolic.ball import _compute_dtype


def _off_diagonal(k: int, device: torch.device) -> Tensor:
    return ~torch.eye(k, dtype=torch.bool, device=device)


def prototype_distances(prototypes: Tensor) -> Tensor:
    """Pairwise Euclidean distances ``||pi_k - pi_l||`` of ``K x d`` prototypes (``K x K``,
    zero diagonal). Squared distances are floored at ``eps^2`` (machine epsilon) before the
    square root, whose slope is infinite at 0: the gradient stays finite, also for
    coinciding prototypes. Half-precision prototypes are computed in float32 (their
    squared distances overflow float16)."""
    prototypes = prototypes.to(_compute_dtype(prototypes))
    diff = prototypes.unsqueeze(1) - prototypes.unsqueeze(0)
    sq = diff.pow(2).sum(-1).clamp_min(torch.finfo(prototypes.dtype).eps ** 2)
    return sq.sqrt() * _off_diagonal(sq.shape[0], sq.device)


def _ratios(distances: Tensor, cost: Tensor) -> Tensor:
    """``r_kl = d_kl / D[k, l]`` over the ordered pairs ``k != l`` (a flat vector)."""
    off = _off_diagonal(cost.shape[0], cost.device)
    c = cost[off]
    if bool((c <= 0).any()):
        raise ValueError("the cost matrix must be positive off its diagonal")
    return distances[off] / c


def optimal_scale(distances: Tensor, cost: Tensor) -> Tensor:
    """The scale ``s*`` minimising ``sum_{k != l} ((s d_kl - D[k, l]) / D[k, l])^2``.

    Closed form ``s* = sum r / sum r^2`` with ``r_kl = d_kl / D[k, l]``.

    Args:
        distances: ``K x K`` prototype distances (:func:`prototype_distances`).
        cost: ``K x K`` cost matrix, positive off the diagonal.
    """
    distances = distances.to(_compute_dtype(distances))
    return _scale(_ratios(distances, cost.to(distances)))


def _scale(r: Tensor) -> Tensor:
    return r.sum() / r.pow(2).sum().clamp_min(torch.finfo(r.dtype).tiny)


def distortion_loss(prototypes: Tensor, cost: Tensor, scale_free: bool = True) -> Tensor:
    """Smooth distortion of the prototypes' distances against ``cost`` (see the module doc).

    ``mean_{k != l} ((s ||pi_k - pi_l|| - D[k, l]) / D[k, l])^2`` with ``s`` the optimal
    scale (:func:`optimal_scale`) when ``scale_free``, else 1.

    Args:
        prototypes: ``K x d`` prototypes.
        cost: ``K x K`` cost matrix (symmetric, positive off the diagonal).
        scale_free: minimise over the global scale (the paper's loss) or compare the raw
            distances with ``cost``.
    """
    if cost.shape != (prototypes.shape[0],) * 2:
        raise ValueError(
            f"cost must be K x K = {prototypes.shape[0]} x {prototypes.shape[0]}, "
            f"got {tuple(cost.shape)}"
        )
    d = prototype_distances(prototypes)
    r = _ratios(d, cost.to(d))
    s = _scale(r) if scale_free else 1.0
    return (s * r - 1).pow(2).mean()


class MetricGuidedPrototypes(nn.Module):
    """Learnable Euclidean class prototypes guided by a cost matrix (``head: mgp``).

    ``forward`` gives the logits ``-||x - pi_k||^2`` (the argmax is the nearest prototype);
    :meth:`regularisation` is ``distortion_weight * L_disto`` (see the module doc), which
    :class:`~rsmm.tasks.finetune.FinetuneTask` adds to the training loss.

    Args:
        dim: embedding dimension d.
        num_classes: number of classes K.
        cost: ``K x K`` cost matrix in the head's class order (the label tree's path
            lengths); kept as a non-persistent buffer (the task rebuilds it from its
            ``hierarchy``).
        distortion_weight: ``lambda`` of ``L_data + lambda * L_disto``; rsmm's default 1
            (the thesis does not state the value it used).
        scale_free: optimal global scale in ``L_disto`` (the paper) or none.
        init_std: standard deviation of the Gaussian initial prototypes.
    """

    def __init__(
        self,
        dim: int,
        num_classes: int,
        cost: Tensor,
        distortion_weight: float = 1.0,
        scale_free: bool = True,
        init_std: float = 1.0,
    ) -> None:
        super().__init__()
        cost = torch.as_tensor(cost, dtype=torch.float32)
        if tuple(cost.shape) != (num_classes, num_classes):
            raise ValueError(
                f"cost must be num_classes x num_classes = {num_classes} x {num_classes}, "
                f"got {tuple(cost.shape)}"
            )
        if distortion_weight < 0:
            raise ValueError(f"distortion_weight must be >= 0, got {distortion_weight}")
        self.dim, self.num_classes = dim, num_classes
        self.distortion_weight, self.scale_free = float(distortion_weight), bool(scale_free)
        self.prototypes = nn.Parameter(torch.randn(num_classes, dim) * init_std)
        self.register_buffer("cost", cost, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """``N x d`` embeddings -> ``N x K`` logits ``-||x - pi_k||^2`` (float32 or wider)."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.to(_compute_dtype(x))
            p = self.prototypes.to(x.dtype)
            sq = x.pow(2).sum(-1, keepdim=True) - 2 * x @ p.T + p.pow(2).sum(-1)
            return -sq.clamp_min(0)

    def distortion(self) -> Tensor:
        """``L_disto`` of the current prototypes (unweighted)."""
        with torch.autocast(device_type=self.prototypes.device.type, enabled=False):
            p = self.prototypes
            return distortion_loss(p.to(_compute_dtype(p)), self.cost, self.scale_free)

    def regularisation(self) -> Tensor:
        """``distortion_weight * L_disto``, the term added to the classification loss."""
        return self.distortion_weight * self.distortion()

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, num_classes={self.num_classes}, "
            f"distortion_weight={self.distortion_weight}, scale_free={self.scale_free}"
        )
