"""Multimodal contrastive losses: NT-Xent (eq. 4.1) and supervised contrastive (eq. 4.3-4.4).

Every sample contributes one row of ``z`` per (modality, view). Rows of the same sample
are positives of each other; under SupCon, rows of samples with the same label are too.
Each anchor row ``r`` is scored against every other row ``k != r`` (the denominator)::

    L_r = -1/|P(r)| * sum_{p in P(r)} log( exp(<z_r, z_p>/tau) / sum_{k != r} exp(<z_r, z_k>/tau) )

and the loss is the mean of ``L_r`` over anchors with a non-empty ``P(r)``.

With one modality and two views, :func:`mm_ntxent` is SimCLR's NT-Xent (Chen et al.
2020, arXiv:2002.05709); with one modality, :func:`mm_supcon` is Khosla et al.'s SupCon
(2020, arXiv:2004.11362, the "L_out" form); with all labels distinct it equals
:func:`mm_ntxent`.

:func:`mm_kernel_ntxent` weights every pair by a kernel on the samples' metadata
(location, date): the y-aware loss of Dufumier et al. (arXiv:2106.08808).

Rows whose ``anchor_mask`` is False (e.g. Meter-ML's Negative class) are never anchors
nor positives but remain in every denominator as negatives.

The log-sum-exp is always computed in float32, so the losses are safe under
``bf16-mixed`` training.

Example:
    >>> z = torch.nn.functional.normalize(torch.randn(12, 32), dim=1)
    >>> ids = torch.arange(4).repeat(3)        # 4 samples x 3 modalities
    >>> loss = mm_ntxent(z, ids, tau=0.1)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def per_anchor_contrastive(
    z: Tensor,
    positives: Tensor,
    tau: float,
    anchor_rows: Tensor | None = None,
    anchor_mask: Tensor | None = None,
    similarity: Callable[[Tensor, Tensor], Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """Loss of each anchor row given a positive matrix (boolean, or non-negative weights).

    With weights ``w`` (booleans count as 0 / 1) the loss of anchor ``r`` is::

        L_r = -sum_{k != r} w_rk log softmax_{j != r}(<z_r, z_j> / tau)[k] / sum_{k != r} w_rk

    Args:
        z: ``K x d`` embeddings (normalised by the caller).
        positives: ``A x K`` boolean, True where key ``k`` is a positive of anchor ``a``,
            or non-negative float weights (the y-aware loss, :func:`mm_kernel_ntxent`);
            the anchor's own row is excluded automatically.
        tau: temperature.
        anchor_rows: ``A`` indices of the anchor rows in ``z`` (default: all rows).
        anchor_mask: ``K`` boolean; False rows are never anchors or positives.
        similarity: ``(anchors A x d, keys K x d) -> A x K`` similarities ``s`` (the
            logits are ``s / tau``); default the dot product ``<z_a, z_k>``. The
            hyperbolic loss passes minus the Poincaré distance.

    Returns:
        ``(loss, valid)``: per-anchor losses (0 where invalid) and the boolean mask of
        anchors that have at least one positive (a positive total weight).
    """
    if tau <= 0:
        raise ValueError(f"temperature tau must be > 0, got {tau}")
    k = z.shape[0]
    rows = torch.arange(k, device=z.device) if anchor_rows is None else anchor_rows
    zf = z.to(torch.promote_types(z.dtype, torch.float32))
    logits = (zf[rows] @ zf.T if similarity is None else similarity(zf[rows], zf)) / tau
    self_mask = torch.zeros_like(logits, dtype=torch.bool)
    self_mask[torch.arange(len(rows), device=z.device), rows] = True
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    if positives.dtype == torch.bool:
        weights = (positives & ~self_mask).to(logits.dtype)
    else:
        weights = positives.to(logits.dtype).masked_fill(self_mask, 0.0)
    if anchor_mask is not None:
        am = anchor_mask.to(device=z.device, dtype=torch.bool)
        weights = weights.masked_fill(~(am[None, :] & am[rows][:, None]), 0.0)
    total = weights.sum(1)
    valid = total > 0
    # masked_fill first: 0 * log_prob must be 0 even where log_prob is -inf
    weighted = log_prob.masked_fill(weights == 0, 0.0) * weights
    loss = -weighted.sum(1) / total.masked_fill(~valid, 1.0)
    return loss.masked_fill(~valid, 0.0), valid


def _reduce(loss: Tensor, valid: Tensor, name: str) -> Tensor:
    if not bool(valid.any()):
        raise ValueError(
            f"{name}: no anchor has a positive (one modality and one view without labels?); "
            "use two views or several modalities"
        )
    return loss.sum() / valid.sum()


def _same(ids: Tensor, rows: Tensor | None) -> Tensor:
    a = ids if rows is None else ids[rows]
    return a[:, None] == ids[None, :]


def mm_ntxent(
    z: Tensor,
    sample_ids: Tensor,
    tau: float = 0.1,
    anchor_mask: Tensor | None = None,
    anchor_rows: Tensor | None = None,
) -> Tensor:
    """Multimodal NT-Xent, eq. 4.1 of the thesis (SimCLR's NT-Xent for M=1, V=2).

    Args:
        z: ``K x d`` L2-normalised embeddings, one row per (sample, modality, view).
        sample_ids: ``K`` ids; rows with the same id are positives of each other.
        tau: temperature.
        anchor_mask: optional ``K`` boolean; False rows only act as negatives.
        anchor_rows: optional indices restricting which rows are anchors (used under
            DDP, where each rank scores its local rows against all gathered rows).

    Returns:
        Scalar loss, averaged over anchors that have a positive.

    Raises:
        ValueError: if no anchor has a positive.
    """
    loss, valid = per_anchor_contrastive(
        z, _same(sample_ids, anchor_rows), tau, anchor_rows, anchor_mask
    )
    return _reduce(loss, valid, "mm_ntxent")


def supcon_positives(
    sample_ids: Tensor, labels: Tensor, anchor_rows: Tensor | None = None
) -> Tensor:
    """Positive matrix of SupCon: same sample, or same (valid, >= 0) label."""
    same_label = _same(labels, anchor_rows)
    lab_a = labels if anchor_rows is None else labels[anchor_rows]
    same_label = same_label & (lab_a[:, None] >= 0) & (labels[None, :] >= 0)
    return _same(sample_ids, anchor_rows) | same_label


def mm_supcon(
    z: Tensor,
    sample_ids: Tensor,
    labels: Tensor,
    tau: float = 0.1,
    anchor_mask: Tensor | None = None,
    anchor_rows: Tensor | None = None,
) -> Tensor:
    """Multimodal supervised contrastive loss, eq. 4.3-4.4 (Khosla et al. 2020 for M=1).

    Positives of a row are every other row of its sample (other modalities and views)
    and every row of samples with the same label. Labels ``< 0`` (unlabelled) only
    pair within their own sample.

    Args:
        z: ``K x d`` L2-normalised embeddings.
        sample_ids: ``K`` sample ids.
        labels: ``K`` integer labels (the row's sample label).
        tau: temperature.
        anchor_mask: optional ``K`` boolean; False rows only act as negatives.
        anchor_rows: optional anchor subset (see :func:`mm_ntxent`).
    """
    if labels.ndim != 1:
        raise ValueError(
            f"mm_supcon needs integer class labels of shape (K,), got {tuple(labels.shape)}"
        )
    loss, valid = per_anchor_contrastive(
        z, supcon_positives(sample_ids, labels, anchor_rows), tau, anchor_rows, anchor_mask
    )
    return _reduce(loss, valid, "mm_supcon")


#: sample-level weights: an ``N x N`` matrix over sample ids, or ``f(a, b)`` returning
#: the ``len(a) x len(b)`` weights of the samples with ids ``a`` and ``b``
SampleWeights = Tensor | Callable[[Tensor, Tensor], Tensor]


def kernel_positives(
    sample_ids: Tensor, weights: SampleWeights, anchor_rows: Tensor | None = None
) -> Tensor:
    """``A x K`` row weights of the y-aware loss: ``w_rk = W[id_r, id_k]``, and 1 between
    rows of the same sample (other modalities and views).

    Args:
        sample_ids: ``K`` sample ids of the rows, in ``0 .. N-1``.
        weights: see :data:`SampleWeights`; non-negative.
        anchor_rows: optional anchor subset (see :func:`mm_ntxent`).
    """
    own = sample_ids if anchor_rows is None else sample_ids[anchor_rows]
    if callable(weights):
        uniq, inverse = torch.unique(sample_ids, return_inverse=True)
        table = weights(uniq, uniq)
        pos = torch.searchsorted(uniq, own)
        w = table[pos][:, inverse]
    else:
        if weights.ndim != 2 or weights.shape[0] != weights.shape[1]:
            raise ValueError(f"weights must be an N x N matrix, got {tuple(weights.shape)}")
        w = weights[own][:, sample_ids]
    return w.masked_fill(_same(sample_ids, anchor_rows), 1.0)


def mm_kernel_ntxent(
    z: Tensor,
    sample_ids: Tensor,
    weights: SampleWeights,
    tau: float = 0.1,
    anchor_mask: Tensor | None = None,
    anchor_rows: Tensor | None = None,
) -> Tensor:
    """y-aware multimodal NT-Xent: eq. 4.1 with kernel-weighted positives.

    The y-aware InfoNCE of Dufumier et al. (MICCAI 2021, arXiv:2106.08808) over every
    (sample, modality, view) row. For anchor row ``r`` and every other row ``k != r``,
    ``w_rk = K(y_r, y_k)`` is a kernel on the metadata of their samples (e.g.
    :func:`~rsmm.losses.kernels.geo_kernel` on location) and ``w_rk = 1`` between rows
    of the same sample; then::

        L = -1/|R| sum_r sum_{k != r} (w_rk / sum_{j != r} w_rj)
                * log( exp(s_rk / tau) / sum_{j != r} exp(s_rj / tau) ),   s = <z_r, z_k>

    over the anchors ``R`` with ``sum_{j != r} w_rj > 0``. The kernel
    :func:`~rsmm.losses.kernels.delta_kernel` on sample ids gives :func:`mm_ntxent`
    (eq. 4.1) and :func:`~rsmm.losses.kernels.label_kernel` on labels gives
    :func:`mm_supcon`. Rows whose ``anchor_mask`` is False are never anchors nor
    weighted but stay in every denominator.

    Args:
        z: ``K x d`` L2-normalised embeddings, one row per (sample, modality, view).
        sample_ids: ``K`` ids in ``0 .. N-1`` (rows with the same id are one sample).
        weights: the ``N x N`` non-negative kernel matrix over samples, or a callable
            ``f(a, b)`` giving the ``len(a) x len(b)`` weights of sample ids ``a``, ``b``.
        tau: temperature.
        anchor_mask: optional ``K`` boolean; False rows only act as negatives.
        anchor_rows: optional anchor subset (see :func:`mm_ntxent`).

    Returns:
        Scalar loss.

    Raises:
        ValueError: for negative weights, or if no anchor has a positive.
    """
    w = kernel_positives(sample_ids, weights, anchor_rows)
    if bool((w < 0).any()):
        raise ValueError("mm_kernel_ntxent: the kernel weights must be non-negative")
    loss, valid = per_anchor_contrastive(z, w, tau, anchor_rows, anchor_mask)
    return _reduce(loss, valid, "mm_kernel_ntxent")


class MMNTXentLoss(torch.nn.Module):
    """Module wrapper of :func:`mm_ntxent`."""

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(self, z: Tensor, sample_ids: Tensor, anchor_mask: Tensor | None = None) -> Tensor:
        return mm_ntxent(z, sample_ids, self.temperature, anchor_mask)


class MMSupConLoss(torch.nn.Module):
    """Module wrapper of :func:`mm_supcon`."""

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(
        self, z: Tensor, sample_ids: Tensor, labels: Tensor, anchor_mask: Tensor | None = None
    ) -> Tensor:
        return mm_supcon(z, sample_ids, labels, self.temperature, anchor_mask)
