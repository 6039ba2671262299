"""Seeded, stratified subsets and splits of a labelled dataset.

``label_fraction`` subsets are *nested*: for one seed, the 1 % subset is contained in
the 10 % subset, which is contained in the full set, because every class is shuffled
once by the seed and each fraction takes a prefix of that order. Every class keeps at
least one sample.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rsmm.errors import ConfigError


def strata(targets: np.ndarray) -> np.ndarray:
    """Integer stratum per sample: the class id, or for multi-hot labels the first
    positive class (``K`` for an all-zero row, e.g. Meter-ML's Negative). Unlabelled
    samples (``-1``) get stratum ``-1``."""
    targets = np.asarray(targets)
    if targets.ndim == 1:
        return targets.astype(np.int64)
    if targets.ndim != 2:
        raise ConfigError(f"targets must be 1-D labels or 2-D multi-hot, got shape {targets.shape}")
    pos = targets > 0.5
    first = np.where(pos.any(1), pos.argmax(1), targets.shape[1])
    unlabelled = (targets < 0).any(1)
    return np.where(unlabelled, -1, first).astype(np.int64)


def _shuffled_classes(s: np.ndarray, seed: int) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for c in np.unique(s[s >= 0]):
        idx = np.flatnonzero(s == c)
        out[int(c)] = idx[rng.permutation(len(idx))]
    return out


def stratified_subset(targets: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """Indices of a stratified, seeded ``fraction`` of the labelled samples.

    Args:
        targets: labels as returned by ``dataset.targets()``.
        fraction: in (0, 1]. At 1.0 every index is returned, unlabelled ones included.
        seed: the same seed gives the same (nested) subsets.

    Returns:
        Sorted int64 indices.
    """
    if not 0 < fraction <= 1:
        raise ConfigError(f"label_fraction must be in (0, 1], got {fraction}")
    targets = np.asarray(targets)
    if fraction >= 1:
        return np.arange(len(targets), dtype=np.int64)
    s = strata(targets)
    chosen = []
    for idx in _shuffled_classes(s, seed).values():
        k = max(1, round(fraction * len(idx)))
        chosen.append(idx[:k])
    if not chosen:
        raise ConfigError("label_fraction < 1 needs labelled samples, but none is labelled")
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def stratified_split(
    targets: np.ndarray, fractions: Sequence[float], seed: int = 0
) -> list[np.ndarray]:
    """Split all samples into disjoint stratified parts of the given fractions.

    Each class is divided by the fractions (rounded; the last part takes the rest), so
    every part has the class proportions of the whole. Unlabelled samples are spread
    the same way as one more stratum.
    """
    if abs(sum(fractions) - 1) > 1e-6 or any(f < 0 for f in fractions):
        raise ConfigError(f"split fractions must be non-negative and sum to 1, got {fractions}")
    s = strata(np.asarray(targets))
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for c in np.unique(s):
        idx = np.flatnonzero(s == c)
        idx = idx[rng.permutation(len(idx))]
        bounds = np.round(np.cumsum(fractions) * len(idx)).astype(int)
        start = 0
        for p, end in enumerate(bounds):
            parts[p].append(idx[start:end])
            start = end
    return [np.sort(np.concatenate(p)).astype(np.int64) for p in parts]
