"""Per-band statistics of a stack's train chips (the normalisation of its manifest).

Each chip read keeps, per modality and band, the count, sum and sum of squares of its
valid pixels (:func:`band_sums`); the statistics of the train chips are the mean and
standard deviation over all their valid pixels (:func:`train_statistics`). An optional
modality counts only the train chips it covers.

A band without a valid pixel (all NaN or nodata) or with a standard deviation of
(numerically) zero cannot normalise anything: :func:`train_statistics` refuses it,
naming the band, how many valid pixels it has and the files read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np

from rsmm.errors import DatasetFileError

#: Smallest standard deviation accepted, relative to ``max(1, |mean|)``.
MIN_STD = 1e-6
#: How many files an error names.
NAMED_FILES = 3


def band_sums(arr: np.ndarray) -> np.ndarray:
    """``3 x C`` float64 array: per band, the count, sum and sum of squares of the
    non-NaN pixels of the ``C x H x W`` array ``arr``."""
    bad = np.isnan(arr)
    flat = np.where(bad, 0.0, arr).reshape(len(arr), -1).astype(np.float64)
    return np.stack([(~bad).reshape(len(arr), -1).sum(1), flat.sum(1), (flat**2).sum(1)])


def degenerate_band(n: float, mean: float, std: float) -> str | None:
    """Why a band cannot normalise (``None``: it can), from its valid pixel count,
    mean and standard deviation."""
    if n == 0:
        return "has no valid pixel (all NaN or nodata)"
    if not np.isfinite(mean) or not np.isfinite(std):
        return f"has a non-finite mean or standard deviation ({mean}, {std})"
    if std <= MIN_STD * max(1.0, abs(mean)):
        return f"is constant ({mean:g}) over its {int(n)} valid pixels: its standard deviation is 0"
    return None


def name_files(paths: Sequence[str]) -> str:
    """``"a.tif, b.tif, c.tif and 4 more"`` (distinct paths, in order)."""
    paths = list(dict.fromkeys(paths))
    more = len(paths) - NAMED_FILES
    return ", ".join(paths[:NAMED_FILES]) + (f" and {more} more" if more > 0 else "")


def train_statistics(
    sums: Sequence[Mapping[str, np.ndarray]],
    train: Sequence[int],
    bands: Mapping[str, Sequence[str]],
    files: Mapping[str, Sequence[str]] | None = None,
) -> tuple[dict[str, dict[str, list[float]]] | None, dict[str, int]]:
    """Mean and standard deviation per band over the train chips.

    Args:
        sums: per chip, ``{modality: band_sums(...)}`` of the modalities covering it.
        train: indexes of the train chips in ``sums``.
        bands: ``{modality: band names}``, in the order of the sums.
        files: optional ``{modality: per chip, the JSON list of its files}`` (the
            manifest's ``files_<k>`` columns, aligned with ``sums``), named in errors.

    Returns:
        ``{modality: {band: [mean, std]}}`` (``None`` without train chips; a modality
        covering no train chip is left out) and ``{modality: train chips counted}``.

    Raises:
        DatasetFileError: for a band without a valid pixel or with a standard
            deviation of 0, naming the band, its valid pixels and the files.
    """
    if not len(train):
        return None, {}
    stats: dict[str, dict[str, list[float]]] = {}
    counted: dict[str, int] = {}
    for k, names in bands.items():
        chips = [i for i in train if k in sums[i]]
        counted[k] = len(chips)
        if not chips:  # an optional modality covering no train chip
            continue
        n, s1, s2 = np.sum([sums[i][k] for i in chips], axis=0)
        mean = s1 / np.maximum(n, 1)
        std = np.sqrt(np.maximum(s2 / np.maximum(n, 1) - mean**2, 0))
        for b, nb, m, sd in zip(names, n, mean, std):
            why = degenerate_band(nb, m, sd)
            if why is not None:
                paths = [p for i in chips for p in json.loads(files[k][i])] if files else []
                read = f": {name_files(paths)}" if paths else ""
                raise DatasetFileError(
                    f"band {k}/{b} of the {len(chips)} train chips {why}, so it cannot be "
                    f"normalised; skip it ('-' in --{k}-bands) or check the files{read}"
                )
        stats[k] = {b: [float(m), float(sd)] for b, m, sd in zip(names, mean, std)}
    return stats, counted
