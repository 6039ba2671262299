"""Samples that lack a modality: simulated absence, and what loaders need to know.

Real archives are incomplete (cloudy Sentinel-2, NAIP over part of an area); for
experiments, any rsmm datamodule can also simulate absence with
``drop_modalities={"s2": 0.3}``: :class:`DroppedModalities` removes the key of each named
modality from a seeded fraction of a split's samples. The draw depends on the seed, the
split name and the modality only, so it is the same in every run, epoch and worker,
and one modality's rate does not change another's draw. With ``complete_only``, a
datamodule then keeps only the samples that have every loaded modality (or each of the
named ones): :func:`complete_samples`, setting (a) of the missing-modality experiment.

The helpers below walk ``Subset`` wrappers to the :class:`~rsmm.datasets.MultiModalDataset`
underneath: whether a split may lack a modality (the loader's batches then carry
``"presence"``), which samples have which modality, and the shape used to zero-fill a
modality that no sample of a batch has.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from torch.utils.data import Dataset, Subset

from rsmm.datasets.base import MultiModalDataset
from rsmm.errors import ConfigError

__all__ = [
    "DroppedModalities",
    "check_drop_rates",
    "complete_samples",
    "dataset_presence",
    "may_lack_modalities",
    "modality_shapes",
    "required_modalities",
]


def check_drop_rates(rates: Mapping[str, float], modalities: Sequence[str]) -> dict[str, float]:
    """``drop_modalities`` checked against the dataset's modalities.

    Raises:
        ConfigError: for a modality not loaded or a rate outside ``[0, 1)``.
    """
    out = {}
    for m, r in dict(rates).items():
        if m not in modalities:
            raise ConfigError(
                f"drop_modalities: {m!r} is not a loaded modality ({', '.join(modalities)})"
            )
        if not 0 <= float(r) < 1:
            raise ConfigError(f"drop_modalities.{m}: the rate must be in [0, 1), got {r}")
        out[m] = float(r)
    return out


class DroppedModalities(Subset):
    """Every sample of ``dataset``, each named modality removed from a seeded fraction.

    A sample whose draws would remove every modality it has keeps the first of them
    (in the dataset's modality order), so no sample is left without pixels.

    Args:
        dataset: the split's dataset (an rsmm dataset or a ``Subset`` of one).
        rates: ``{modality: fraction of samples that lose it}``, each in ``[0, 1)``.
        seed: the experiment's seed.
        split: the split's name (``"train"``, ``"val"``, ``"test"``), part of the seed.
    """

    def __init__(self, dataset: Dataset, rates: Mapping[str, float], seed: int, split: str):
        super().__init__(dataset, list(range(len(dataset))))  # type: ignore[arg-type]
        base = _base(dataset)
        self.rates = check_drop_rates(rates, base.modalities)
        n = len(self.indices)
        had = dataset_presence(dataset)
        self.keep: dict[str, np.ndarray] = {}
        for m in base.modalities:
            rng = np.random.default_rng(
                [int(seed), zlib.crc32(split.encode()), zlib.crc32(m.encode())]
            )
            drop = rng.random(n) < self.rates.get(m, 0.0)
            self.keep[m] = ~drop
        has = {m: self.keep[m] & (True if had is None else had[m]) for m in base.modalities}
        nothing = ~np.any(np.stack([has[m] for m in base.modalities]), axis=0)
        for i in np.flatnonzero(nothing):
            first = next(
                (m for m in base.modalities if had is None or had[m][i]), base.modalities[0]
            )
            self.keep[first][i] = True

    def __getitem__(self, index: int) -> dict[str, Any]:  # type: ignore[override]
        sample = self.dataset[self.indices[index]]
        for m, keep in self.keep.items():
            if not keep[index] and m in sample:
                del sample[m]
                nodata = (sample.get("meta") or {}).get("nodata")
                if isinstance(nodata, dict):
                    nodata.pop(m, None)
        return sample

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any]]:
        return [self[i] for i in indices]

    def presence(self) -> dict[str, np.ndarray]:
        """``{modality: N booleans}`` of the samples after the drop."""
        had = dataset_presence(self.dataset)
        return {m: k & (True if had is None else had[m]) for m, k in self.keep.items()}


def required_modalities(
    complete_only: bool | str | Sequence[str], modalities: Sequence[str]
) -> tuple[str, ...]:
    """The modalities a sample must have under ``complete_only``: none (``False``), every
    one of ``modalities`` (``True``), or the named ones (a name or a list of names).

    Raises:
        ConfigError: for a name that is not one of ``modalities``, or an empty list.
    """
    if isinstance(complete_only, bool):
        return tuple(modalities) if complete_only else ()
    names = (complete_only,) if isinstance(complete_only, str) else tuple(complete_only)
    if not names:
        raise ConfigError("complete_only: give true, false or a non-empty list of modalities")
    unknown = [m for m in names if m not in modalities]
    if unknown:
        raise ConfigError(
            f"complete_only: {unknown} not among the loaded modalities ({', '.join(modalities)})"
        )
    return names


def complete_samples(ds: Dataset, modalities: Sequence[str]) -> Dataset:
    """The samples of ``ds`` that have each of ``modalities``, found without reading
    images: ``ds`` itself when every sample has every modality, else a ``Subset`` (in
    ``ds``'s order; empty when no sample qualifies)."""
    presence = dataset_presence(ds)
    if presence is None or not modalities:
        return ds
    keep = np.all([presence[m] for m in modalities], axis=0)
    return Subset(ds, np.flatnonzero(keep).tolist())


def _base(ds: Dataset) -> MultiModalDataset:
    while isinstance(ds, Subset):
        ds = ds.dataset
    if not isinstance(ds, MultiModalDataset):
        raise TypeError(f"expected an rsmm dataset, got {type(ds).__name__}")
    return ds


def may_lack_modalities(ds: Dataset) -> bool:
    """Whether a sample of ``ds`` (an rsmm dataset, possibly wrapped) may lack a modality."""
    if isinstance(ds, DroppedModalities):
        return any(r > 0 for r in ds.rates.values()) or may_lack_modalities(ds.dataset)
    if isinstance(ds, Subset):
        return may_lack_modalities(ds.dataset)
    return bool(_base(ds).may_lack_modalities)


def dataset_presence(ds: Dataset) -> dict[str, np.ndarray] | None:
    """``{modality: N booleans}`` of the samples of ``ds`` (possibly wrapped), without
    reading images; ``None`` when every sample has every modality."""
    if isinstance(ds, DroppedModalities):
        return ds.presence()
    if isinstance(ds, Subset):
        inner = dataset_presence(ds.dataset)
        if inner is None:
            return None
        idx = np.asarray(ds.indices, dtype=np.int64)
        return {m: v[idx] for m, v in inner.items()}
    return _base(ds).presence()


def modality_shapes(ds: Dataset, split: str = "") -> dict[str, tuple[int, ...]]:
    """``{modality: C x H x W}`` of ``ds``'s modalities, to zero-fill a modality that no
    sample of a batch has: from the dataset when it knows it, else read from the first
    sample that has the modality.

    Raises:
        ConfigError: for a modality that no sample of ``ds`` has.
    """
    base = _base(ds)
    presence = dataset_presence(ds)
    shapes: dict[str, tuple[int, ...]] = {}
    for m in base.modalities:
        shape = base.modality_shape(m)
        if shape is not None:
            shapes[m] = tuple(shape)
            continue
        if presence is not None:
            found = np.flatnonzero(presence[m])
            candidates = found[:1].tolist()
        else:
            candidates = range(len(ds))  # type: ignore[arg-type]
        for i in candidates:
            sample = ds[int(i)]
            if m in sample:
                shapes[m] = tuple(sample[m].shape)
                break
        else:
            where = f" of the {split} split" if split else ""
            raise ConfigError(
                f"modality {m!r}: no sample{where} has it; leave it out of modalities"
            )
    return shapes
