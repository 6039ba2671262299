"""Per-band statistics of a stack's train chips (the normalisation of its manifest).

Each chip read keeps, per modality and band, the count, sum and sum of squares of its
valid pixels (:func:`band_sums`); the statistics of the train chips are the mean and
standard deviation over all their valid pixels (:func:`train_statistics`). An optional
modality counts only the train chips it covers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

#: Smallest standard deviation stored (a constant band must not divide by zero).
MIN_STD = 1e-6


def band_sums(arr: np.ndarray) -> np.ndarray:
    """``3 x C`` float64 array: per band, the count, sum and sum of squares of the
    non-NaN pixels of the ``C x H x W`` array ``arr``."""
    bad = np.isnan(arr)
    flat = np.where(bad, 0.0, arr).reshape(len(arr), -1).astype(np.float64)
    return np.stack([(~bad).reshape(len(arr), -1).sum(1), flat.sum(1), (flat**2).sum(1)])


def train_statistics(
    sums: Sequence[Mapping[str, np.ndarray]],
    train: Sequence[int],
    bands: Mapping[str, Sequence[str]],
) -> tuple[dict[str, dict[str, list[float]]] | None, dict[str, int]]:
    """Mean and standard deviation per band over the train chips.

    Args:
        sums: per chip, ``{modality: band_sums(...)}`` of the modalities covering it.
        train: indexes of the train chips in ``sums``.
        bands: ``{modality: band names}``, in the order of the sums.

    Returns:
        ``{modality: {band: [mean, std]}}`` (``None`` without train chips; a modality
        covering no train chip is left out) and ``{modality: train chips counted}``.
    """
    if not len(train):
        return None, {}
    stats: dict[str, dict[str, list[float]]] = {}
    counted: dict[str, int] = {}
    for k, names in bands.items():
        parts = [sums[i][k] for i in train if k in sums[i]]
        counted[k] = len(parts)
        if not parts:  # an optional modality covering no train chip
            continue
        n, s1, s2 = np.sum(parts, axis=0)
        mean = s1 / np.maximum(n, 1)
        std = np.sqrt(np.maximum(s2 / np.maximum(n, 1) - mean**2, 0))
        stats[k] = {b: [float(m), float(max(sd, MIN_STD))] for b, m, sd in zip(names, mean, std)}
    return stats, counted
