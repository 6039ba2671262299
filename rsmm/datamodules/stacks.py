"""Datamodule of :class:`rsmm.datasets.CoRegisteredStack` (a user stack's chip manifest)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, Dataset

from rsmm.datamodules.base import MultiModalDataModule
from rsmm.datamodules.multilabel import multilabel_subset
from rsmm.datasets.base import MultiModalDataset
from rsmm.datasets.stacks import CoRegisteredStack, NoCoveredChipsError


class CoRegisteredStackDataModule(MultiModalDataModule):
    """Train / val / test chips of a stack, from the manifest's spatial ``split`` column.

    Band statistics for normalisation are the manifest's (computed on its train chips
    by ``rsmm manifest build``); ``label_fraction`` draws a stratified, seeded subset
    of the labelled train chips (of a multi-label manifest: nested iterative
    stratification, :func:`~rsmm.datamodules.multilabel.multilabel_subset`; its
    targets are multi-hot, :attr:`multilabel`); augmentation runs on the device like
    every rsmm datamodule. A split with no chip in the manifest is left out (pre-training can run
    on train alone). With optional modalities in the manifest, every split keeps only
    the chips covered by all the requested ``modalities`` (the dataset warns how many);
    a val or test split left with none is left out with a warning, an empty train split
    is an error.

    Args:
        root: the chip manifest (``chips.parquet``).
        modalities: modalities to load (default: all of the manifest).
        bands: optional ``{modality: band names}`` subsets.
        min_modalities: keep the chips covered by at least this many of
            ``modalities`` (samples then lack the others and batches carry
            ``"presence"``); ``None`` = all of them.
        **kwargs: see :class:`~rsmm.datamodules.base.MultiModalDataModule`.
    """

    dataset_class = CoRegisteredStack

    def __init__(
        self,
        root: str,
        modalities: Sequence[str] | None = None,
        bands: Mapping[str, Sequence[str]] | None = None,
        min_modalities: int | None = None,
        **kwargs: Any,
    ) -> None:
        if min_modalities is not None:
            kwargs["min_modalities"] = min_modalities
        super().__init__(root=root, modalities=modalities, bands=bands, **kwargs)

    @property
    def multilabel(self) -> bool:
        """Whether the manifest is multi-label (multi-hot float targets: fine-tuning
        uses BCE and reports mAP micro / macro and F1)."""
        return bool(getattr(self.reference_dataset, "multilabel", False))

    def label_subset(self, targets: np.ndarray) -> np.ndarray:
        """The ``label_fraction`` subset: multi-label targets by nested iterative
        stratification, single labels as every rsmm datamodule draws them."""
        if targets.ndim == 2:
            return multilabel_subset(targets, self.label_fraction, self.seed)
        return super().label_subset(targets)

    def has_test_split(self) -> bool:
        """Whether the manifest has test chips (a pre-training manifest may have none)."""
        if "test" not in self.datasets:
            self.setup("test")
        return "test" in self.datasets

    def val_dataloader(self) -> DataLoader | list:
        """The val chips; an empty list (Lightning then skips validation) when the
        manifest has none, e.g. built with ``--split 1,0,0`` for pre-training only."""
        if self.datasets and "val" not in self.datasets:
            return []
        return super().val_dataloader()

    def make_dataset(self, split: str, **kwargs: Any) -> MultiModalDataset | None:
        """The split's dataset; ``None`` for a val/test split that no chip of which is
        covered by every requested modality (left out, with a warning)."""
        try:
            return super().make_dataset(split, **kwargs)
        except NoCoveredChipsError as err:
            if split == "train":
                raise
            warnings.warn(f"the {split} split is left out: {err}", UserWarning, stacklevel=2)
            return None

    def _build_splits(self, stage: str | None) -> dict[str, Dataset]:
        out = {}
        for key, ds in super()._build_splits(stage).items():
            if ds is not None and (len(ds) > 0 or key == "train"):
                out[key] = ds
        return out
