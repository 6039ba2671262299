"""LightningDataModule of DFC2020: fine-tune on the validation release, test on the test release."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch.utils.data import DataLoader, Dataset

from rsmm.datamodules.base import MultiModalDataModule
from rsmm.datamodules.splits import stratified_split
from rsmm.datasets.dfc2020 import DFC2020
from rsmm.errors import ConfigError


class DFC2020DataModule(MultiModalDataModule):
    """DFC2020 (:class:`~rsmm.datasets.DFC2020`) scene classification.

    DFC2020 has no training release. Fine-tuning uses the validation release
    (``ROIs0000_validation``), split once into a seeded, stratified training part
    (``1 - holdout_fraction``, 80 % by default) and a held-out part used for
    validation; ``label_fraction`` then subsamples the training part. With
    ``holdout_fraction=0`` the whole validation release (986 pairs) is the training
    part and there is no validation, as in the thesis (Table 4.4). Testing uses
    the test release (``ROIs0000_test``). Band statistics are estimated on the
    training part (none are published for DFC2020).

    Example:
        >>> dm = DFC2020DataModule("data/dfc2020", num_classes=8, label_fraction=0.1)
        >>> dm.setup("fit")
        >>> batch = next(iter(dm.train_dataloader()))  # batch["s1"]: B x 2 x 256 x 256
    """

    dataset_class = DFC2020
    train_split = "val"
    val_split = "val"
    test_split = "test"

    def __init__(
        self,
        root: str,
        modalities: Sequence[str] = ("s1", "s2"),
        bands: Mapping[str, Sequence[str]] | None = None,
        num_classes: int = 8,
        holdout_fraction: float = 0.2,
        **kwargs: Any,
    ) -> None:
        """Configure the datamodule.

        Args:
            root: directory holding ``ROIs0000_validation`` and ``ROIs0000_test``.
            modalities: modality keys to load, from ``("s1", "s2")``.
            bands: optional ``{modality: band names}`` subsets.
            num_classes: 8 (Savanna and Snow/Ice dropped) or 10.
            holdout_fraction: fraction of the validation release held out (stratified,
                seeded by ``seed``) for validation; the rest is the training part.
                ``0``: train on all of it, no validation.
            **kwargs: loader options of :class:`~rsmm.datamodules.base.MultiModalDataModule`
                (``batch_size``, ``num_workers``, ``label_fraction``, ``seed``, ``augment``,
                ``views``, ``shared_geometry``, ``pin_memory`` ...).
        """
        if not 0 <= holdout_fraction < 1:
            raise ConfigError(f"holdout_fraction must be in [0, 1), got {holdout_fraction}")
        super().__init__(
            root,
            modalities=modalities,
            bands=bands,
            num_classes=num_classes,
            **kwargs,
        )
        self.holdout_fraction = holdout_fraction

    def _build_splits(self, stage: str | None) -> dict[str, Dataset]:
        """Carve train / val out of the validation release; test is the test release."""
        fractions = (1 - self.holdout_fraction, self.holdout_fraction)
        if self.holdout_fraction == 0:
            return self._carved_splits(stage, lambda release: None)
        return self._carved_splits(
            stage, lambda release: tuple(stratified_split(release.targets(), fractions, self.seed))
        )

    def val_dataloader(self) -> DataLoader | list:
        """The held-out part; an empty list (Lightning then skips validation) with
        ``holdout_fraction=0``."""
        if self.holdout_fraction == 0:
            return []
        return super().val_dataloader()
