"""Objectives of the baseline self-supervised methods that lightly has no form for.

lightly's ``BarlowTwinsLoss`` (Zbontar et al. 2021, arXiv:2103.03230) and ``VICRegLoss``
(Bardes et al. 2022, arXiv:2105.04906) are used as they are (averaged over
pairs of (modality, view) groups by :func:`mean_over_pairs`). The functions here cover
what lightly's modules do not fit:

* MoCo's InfoNCE against a queue that lives in the task's checkpoint (lightly's
  ``NTXentLoss(memory_bank_size=...)`` updates its own memory bank inside every call,
  so two cross-modal pairs of one step would see different negatives);
* BYOL's and MoCo's pairing of every group's online branch with every *other* group's
  target (cross-modal pairs are positives);
* MMCR with any number of groups per sample (lightly's ``MMCRLoss`` takes exactly an
  online and a momentum tensor of the same shape).

Rows of every tensor are samples; a "group" is one (modality, view) of a batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import combinations, permutations

import torch
import torch.nn.functional as F
from torch import Tensor


def moco_infonce(q: Tensor, k: Tensor, queue: Tensor, temperature: float = 0.2) -> Tensor:
    """MoCo's InfoNCE (He et al. 2020, arXiv:1911.05722, eq. 1; MoCo v2, Chen et al. 2020,
    arXiv:2003.04297).

    ``-mean_i log( exp(q_i.k_i / t) / (exp(q_i.k_i / t) + sum_j exp(q_i.queue_j / t)) )``

    Args:
        q: queries ``N x d`` (online branch), L2-normalised.
        k: keys ``N x d`` (target branch), L2-normalised; no gradient flows into them.
        queue: negatives ``K x d``, L2-normalised.
        temperature: softmax temperature ``t`` (0.2 in MoCo v2).

    Returns:
        The scalar loss averaged over the ``N`` queries.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    # Half inputs are scored in float32: q.k / t overflows float16 for |q| |k| > ~650 t.
    q = q.to(torch.promote_types(q.dtype, torch.float32))
    k = k.detach().to(q.dtype)
    positive = (q * k).sum(dim=1, keepdim=True)
    negative = q @ queue.detach().to(q.dtype).T
    logits = torch.cat([positive, negative], dim=1) / temperature
    target = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, target)


def _check_groups(online: Sequence[Tensor], target: Sequence[Tensor], method: str) -> None:
    if len(online) != len(target):
        raise ValueError(f"{method}: {len(online)} online groups but {len(target)} target groups")
    if len(online) < 2:
        raise ValueError(
            f"{method} needs two views or two modalities to pair (got {len(online)} group)"
        )


def cross_group_moco(
    queries: Sequence[Tensor],
    keys: Sequence[Tensor],
    queue: Tensor,
    temperature: float = 0.2,
    pairs: Sequence[tuple[int, int]] | None = None,
) -> Tensor:
    """Multimodal MoCo: :func:`moco_infonce` of the queries of group ``a`` against the
    keys of group ``b``, averaged over the pairs ``(a, b)``.

    By default the pairs are every ordered ``a != b`` of groups in the same order in
    both lists: with one modality and two views that is symmetric MoCo
    ``(L(q_1, k_2) + L(q_2, k_1)) / 2``. With ``queries = [q_1]``, ``keys = [k_2]`` and
    ``pairs=[(0, 0)]`` it is MoCo v2 as published (one direction).

    Args:
        queries: online embeddings ``N x d``, L2-normalised.
        keys: target embeddings ``N x d``, L2-normalised.
        queue: negatives ``K x d``.
        temperature: softmax temperature.
        pairs: ``(query index, key index)`` pairs; default every ordered pair of
            distinct groups (``queries`` and ``keys`` then list the same groups).
    """
    if pairs is None:
        _check_groups(queries, keys, "moco")
        pairs = list(permutations(range(len(queries)), 2))
    if not pairs:
        raise ValueError("moco: no (query, key) pair to score")
    return sum(moco_infonce(queries[a], keys[b], queue, temperature) for a, b in pairs) / len(pairs)


def cross_group_byol(predictions: Sequence[Tensor], targets: Sequence[Tensor]) -> Tensor:
    """Multimodal BYOL (Grill et al. 2020, arXiv:2006.07733, eq. 2 up to its affine form
    ``2 - 2 cos``):
    ``-cos(p_a, sg(z_b))`` averaged over samples and over every ordered pair of groups
    ``a != b``.

    With one modality and two views this is the symmetrised BYOL loss
    ``-(cos(p_1, z_2) + cos(p_2, z_1)) / 2`` (lightly's ``NegativeCosineSimilarity``
    averaged over both directions). The paper's symmetrised loss is
    ``(2 - 2 cos(p_1, z_2)) + (2 - 2 cos(p_2, z_1))``: the same minimiser with 4x this
    gradient, which matters for SGD/LARS learning rates taken from the paper (multiply
    them by 4), not for Adam-type optimisers.

    Args:
        predictions: one ``N x d`` predictor output per group (online branch).
        targets: one ``N x d`` target projection per group (same order); detached.
    """
    _check_groups(predictions, targets, "byol")
    pairs = list(permutations(range(len(predictions)), 2))
    # In float32 at least: cosine_similarity's eps (1e-8) underflows to 0 in float16, so a
    # zero row would give 0 / 0.
    wide = [torch.promote_types(p.dtype, torch.float32) for p in predictions]
    total = sum(
        -F.cosine_similarity(predictions[a].to(wide[a]), targets[b].detach().to(wide[a]), dim=1)
        .mean()
        for a, b in pairs
    )
    return total / len(pairs)


def mean_over_pairs(fn: Callable[[Tensor, Tensor], Tensor], groups: Sequence[Tensor]) -> Tensor:
    """``fn(groups[a], groups[b])`` averaged over every unordered pair ``a < b`` (for
    symmetric objectives such as Barlow Twins and VICReg)."""
    pairs = list(combinations(range(len(groups)), 2))
    if not pairs:
        raise ValueError(
            f"the loss needs two views or two modalities to pair (got {len(groups)} group)"
        )
    return sum(fn(groups[a], groups[b]) for a, b in pairs) / len(pairs)


def mmcr_loss(z: Tensor, lmda: float = 5e-3) -> Tensor:
    """Maximum Manifold Capacity Representations (Yerxa et al. 2023, arXiv:2303.03307,
    Sec. 3).

    ``-||C||_* + lmda / N * sum_i ||Z_i||_*`` where ``Z_i`` (``k x d``) holds the ``k``
    embeddings of sample ``i`` (all its (modality, view) groups), ``C`` (``N x d``) the
    per-sample centroids ``mean_k Z_i`` and ``||.||_*`` the nuclear norm (sum of
    singular values). ``lmda = 0`` is the paper's plain objective; lightly's
    ``MMCRLoss(lmda)`` is the case ``k = 2`` (online and momentum outputs).

    Args:
        z: ``N x k x d`` embeddings, L2-normalised along ``d`` (the paper projects them
            onto the sphere).
        lmda: weight of the per-sample (local) nuclear norm term, >= 0.
    """
    if z.ndim != 3:
        raise ValueError(f"mmcr_loss expects N x k x d embeddings, got shape {tuple(z.shape)}")
    if lmda < 0:
        raise ValueError(f"lmda must be >= 0, got {lmda}")
    # The SVD behind the nuclear norm has no half-precision kernel: compute in float32.
    z = z.to(torch.promote_types(z.dtype, torch.float32))
    centroids = z.mean(dim=1)
    loss = -torch.linalg.matrix_norm(centroids, ord="nuc")
    if lmda > 0:
        loss = loss + lmda * torch.linalg.matrix_norm(z, ord="nuc").sum() / z.shape[0]
    return loss
