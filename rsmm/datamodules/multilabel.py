"""Seeded, nested, stratified label fractions of multi-label (multi-hot) data.

Iterative stratification (Sechidis, Tsoumakas and Vlahavas, "On the Stratification of
Multi-Label Data", ECML PKDD 2011, Algorithm 1) keeps every class's share of positives
close to the drawn fraction, but alone it neither nests nor guarantees positives (a
class with 5 positives can get none in a 1 % draw). :func:`multilabel_subset` therefore
draws down a ladder, 100 % -> 10 % -> 1 % -> ..., each level by iterative
stratification from the level above, and after each draw adds one positive (drawn from
the level above, seeded) for every class the draw left empty. So for one seed the 1 %
subset is inside the 10 % subset, which is inside the full set, and every class with a
positive in the full set has one in every subset.
"""

from __future__ import annotations

import numpy as np

from rsmm.errors import ConfigError

#: The nested levels subsets are drawn through (each is a subset of the one before).
LADDER = (0.1, 0.01, 0.001, 0.0001)


def iterative_stratification(
    targets: np.ndarray, fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """Rows of a ``fraction`` of multi-hot ``targets`` chosen by iterative stratification.

    Two folds are filled, the draw (``fraction``) and the rest: the class with the fewest
    positives left is handled first; each of its rows (in random order) goes to the fold
    that most lacks that class, then the fold that most lacks rows, then at random. Rows
    without any positive fill the folds' remaining quotas.

    Returns:
        Sorted int64 row indices of the drawn fold.
    """
    y = np.asarray(targets) > 0.5
    n = len(y)
    want = np.array([fraction, 1 - fraction])
    rows_left = want * n
    class_left = np.outer(want, y.sum(0)).astype(np.float64)
    fold = np.full(n, -1, dtype=np.int64)
    pending = y.copy()
    while pending.any():
        counts = pending.sum(0).astype(np.float64)
        counts[counts == 0] = np.inf
        fewest = np.flatnonzero(counts == counts.min())
        c = int(rng.choice(fewest))
        for i in rng.permutation(np.flatnonzero(pending[:, c])):
            need = class_left[:, c]
            best = np.flatnonzero(need == need.max())
            if len(best) > 1:
                best = best[rows_left[best] == rows_left[best].max()]
            f = int(rng.choice(best))
            fold[i] = f
            rows_left[f] -= 1
            class_left[f] -= y[i]
            pending[i] = False
    for i in rng.permutation(np.flatnonzero(fold < 0)):
        best = np.flatnonzero(rows_left == rows_left.max())
        f = int(rng.choice(best))
        fold[i] = f
        rows_left[f] -= 1
    return np.flatnonzero(fold == 0).astype(np.int64)


def _top_up(
    y: np.ndarray, chosen: np.ndarray, parent: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Add one row of ``parent`` for every class with a positive there but none in ``chosen``."""
    have = y[chosen].any(0)
    added = []
    for c in np.flatnonzero(y[parent].any(0)):
        if not have[c]:
            row = int(rng.choice(parent[y[parent, c]]))
            added.append(row)
            have |= y[row]
    return np.union1d(chosen, np.asarray(added, dtype=np.int64)).astype(np.int64)


def multilabel_subset(targets: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """Indices of a seeded, nested, stratified ``fraction`` of multi-hot ``targets``.

    Args:
        targets: ``(N, K)`` multi-hot labels; rows holding a negative value are
            unlabelled and never drawn when ``fraction < 1``.
        fraction: in (0, 1]; 1.0 returns every index.
        seed: the same seed gives the same (nested) subsets.

    Returns:
        Sorted int64 indices.
    """
    if not 0 < fraction <= 1:
        raise ConfigError(f"label_fraction must be in (0, 1], got {fraction}")
    targets = np.asarray(targets)
    if targets.ndim != 2:
        raise ConfigError(f"multi-label targets must be 2-D (N, K), got shape {targets.shape}")
    if fraction >= 1:
        return np.arange(len(targets), dtype=np.int64)
    y = targets > 0.5
    current = np.flatnonzero(~(targets < 0).any(1)).astype(np.int64)
    if len(current) == 0:
        raise ConfigError("label_fraction < 1 needs labelled samples, but none is labelled")
    rng = np.random.default_rng(seed)
    level = 1.0
    steps = [f for f in LADDER if f > fraction] + [fraction]
    for step in steps:
        drawn = current[iterative_stratification(y[current], step / level, rng)]
        current, level = _top_up(y, drawn, current, rng), step
    return current
