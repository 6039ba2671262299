"""LightningDataModules of CIFAR-10, CIFAR-100, STL-10 and CUB-200 (the ``rgb`` modality).

These datasets have a train and a test split and no validation split. A seeded,
stratified ``holdout_fraction`` of the training split is held out for validation (the
thesis states no validation split for Tables 3.1, 3.2, 5.1: the default 0 trains on the
whole training split and validates on nothing); ``label_fraction`` then subsamples what
is left. Testing uses the official test split.
"""

from __future__ import annotations

from typing import Any

from torch.utils.data import DataLoader, Dataset

from rsmm.datamodules.base import MultiModalDataModule
from rsmm.datamodules.splits import stratified_split
from rsmm.datasets.cub200 import CUB200
from rsmm.datasets.torchvision_sets import CIFAR10, CIFAR100, STL10
from rsmm.errors import ConfigError


class HeldOutValDataModule(MultiModalDataModule):
    """Base: official train / test splits, validation held out of train."""

    val_split = None

    def __init__(
        self, root: str, holdout_fraction: float = 0.0, checksum: bool = False, **kwargs: Any
    ) -> None:
        """Configure the datamodule.

        Args:
            root: dataset root (the folder holding the dataset's own folder, as for
                torchvision: e.g. ``data/cifar`` for ``data/cifar/cifar-10-batches-py``).
            holdout_fraction: fraction of the training split held out (stratified,
                seeded by ``seed``) for validation; ``0``: no validation.
            **kwargs: loader options of :class:`~rsmm.datamodules.base.MultiModalDataModule`
                (``batch_size``, ``num_workers``, ``label_fraction``, ``seed``, ``augment``,
                ``views``, ...) and dataset options (``bands``, ``checksum``, ...).
        """
        if not 0 <= holdout_fraction < 1:
            raise ConfigError(f"holdout_fraction must be in [0, 1), got {holdout_fraction}")
        super().__init__(root, checksum=checksum, **kwargs)
        self.holdout_fraction = holdout_fraction

    def _build_splits(self, stage: str | None) -> dict[str, Dataset]:
        if self.holdout_fraction == 0:
            return self._carved_splits(stage, lambda release: None)
        fractions = (1 - self.holdout_fraction, self.holdout_fraction)
        return self._carved_splits(
            stage, lambda release: tuple(stratified_split(release.targets(), fractions, self.seed))
        )

    def val_dataloader(self) -> DataLoader | list:
        """The held-out part; an empty list (Lightning skips validation) when none."""
        if self.holdout_fraction == 0:
            return []
        return super().val_dataloader()


class CIFAR10DataModule(HeldOutValDataModule):
    """CIFAR-10 (:class:`~rsmm.datasets.torchvision_sets.CIFAR10`).

    Example:
        >>> dm = CIFAR10DataModule("data/cifar", batch_size=512, views=2, augment="simclr_ms")
        >>> dm.setup("fit")
        >>> batch = next(iter(dm.train_dataloader()))  # batch["rgb"]: 512 x 3 x 32 x 32
    """

    dataset_class = CIFAR10


class CIFAR100DataModule(HeldOutValDataModule):
    """CIFAR-100 (:class:`~rsmm.datasets.torchvision_sets.CIFAR100`); its label hierarchy
    is the packaged ``cifar100`` (20 superclasses)."""

    dataset_class = CIFAR100


class STL10DataModule(HeldOutValDataModule):
    """STL-10 (:class:`~rsmm.datasets.torchvision_sets.STL10`).

    ``train_split="train+unlabeled"`` pre-trains on the 105,000 labelled and unlabelled
    images (the thesis' SSL protocol); fine-tuning and probes use ``"train"``.
    """

    dataset_class = STL10

    def __init__(self, root: str, train_split: str = "train", **kwargs: Any) -> None:
        """Args: ``train_split``: ``"train"``, ``"unlabeled"`` or ``"train+unlabeled"``;
        the rest as :class:`HeldOutValDataModule`."""
        if train_split not in ("train", "unlabeled", "train+unlabeled"):
            raise ConfigError(
                f"train_split must be 'train', 'unlabeled' or 'train+unlabeled', got {train_split!r}"
            )
        super().__init__(root, **kwargs)
        self.train_split = train_split


class CUB200DataModule(HeldOutValDataModule):
    """CUB-200-2011 (:class:`~rsmm.datasets.cub200.CUB200`); pass ``image_size`` (default
    224) to resize the photographs; its label hierarchy is the packaged ``cub200``."""

    dataset_class = CUB200

    def __init__(self, root: str, image_size: int = 224, **kwargs: Any) -> None:
        """Args: ``image_size``: side of the square the photographs are resized to; the
        rest as :class:`HeldOutValDataModule`."""
        super().__init__(root, image_size=image_size, **kwargs)
