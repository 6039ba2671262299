"""Classification losses and the SupCon/classification mixture (eq. 4.5).

- cross-entropy, class-weighted cross-entropy (weights inverse to class frequency),
- softmax focal loss (Lin et al. 2017, "Focal loss for dense object detection",
  arXiv:1708.02002),
- binary cross-entropy for multi-label targets,
- ``alpha * L_MM-S + (1 - alpha) * L_cls`` (thesis eq. 4.5).

Class ids below zero (unlabelled samples, and samples of negative-only classes that the
head has no output for) are ignored by every loss here; a batch without a labelled sample
gives a zero loss (not NaN).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def inverse_frequency_weights(counts: Tensor) -> Tensor:
    """Class weights ``N / (K * n_c)`` (mean weight 1 over samples); empty classes get 0."""
    counts = counts.to(torch.float32)
    total, k = counts.sum(), (counts > 0).sum()
    return torch.where(counts > 0, total / (k * counts.clamp_min(1)), torch.zeros_like(counts))


def focal_loss(
    logits: Tensor, target: Tensor, gamma: float = 2.0, weight: Tensor | None = None
) -> Tensor:
    """Softmax focal loss ``-w_y (1 - p_y)^gamma log p_y``, mean over labelled samples.

    With ``gamma = 0`` it is (weighted) cross-entropy with PyTorch's weighted-mean
    convention (normalised by the sum of the weights).
    """
    keep = target >= 0
    logits, target = logits[keep].float(), target[keep]
    logp = F.log_softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)
    # (1 - p)^gamma has an infinite derivative at p = 1 when gamma < 1 (inf * 0 = NaN in the
    # backward pass of a confident, correct sample); below the smallest normal float the
    # base is clamped, which changes the value by less than 1e-38^gamma.
    loss = -((1 - logp.exp()).clamp_min(torch.finfo(logp.dtype).tiny) ** gamma) * logp
    w = torch.ones_like(loss) if weight is None else weight.to(loss.device)[target]
    return (w * loss).sum() / w.sum().clamp_min(1e-12)


def classification_loss(
    logits: Tensor,
    target: Tensor,
    kind: str = "ce",
    class_weights: Tensor | None = None,
    gamma: float = 2.0,
) -> Tensor:
    """One of ``ce``, ``weighted_ce``, ``focal`` (single-label) or ``bce`` (multi-hot).

    Args:
        logits: ``N x K``.
        target: ``N`` class ids (``-1`` ignored) or ``N x K`` multi-hot for ``bce``.
        kind: the loss name.
        class_weights: ``K`` weights, required for ``weighted_ce`` (see
            :func:`inverse_frequency_weights`), optional for ``focal``.
        gamma: focusing parameter of the focal loss.
    """
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(logits.float(), target.float())
    if kind in ("ce", "weighted_ce"):
        if kind == "weighted_ce" and class_weights is None:
            raise ValueError("weighted_ce needs class_weights (inverse class frequencies)")
        weight = None if kind == "ce" else class_weights.to(logits.device)
        per = F.cross_entropy(
            logits.float(), target, weight=weight, ignore_index=-1, reduction="none"
        )
        # PyTorch's (weighted) mean over the labelled samples, 0 (not NaN) without any
        labelled = target >= 0
        w = labelled.float() if weight is None else weight[target.clamp_min(0)] * labelled
        return per.sum() / w.sum().clamp_min(1e-12)
    if kind == "focal":
        return focal_loss(logits, target, gamma, class_weights)
    raise ValueError(f"unknown classification loss {kind!r}; use ce, weighted_ce, focal or bce")


def supcon_mixture(supcon: Tensor, cls: Tensor, alpha: float = 0.5) -> Tensor:
    """Eq. 4.5: ``alpha * L_MM-S + (1 - alpha) * L_cls``."""
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    return alpha * supcon + (1 - alpha) * cls
