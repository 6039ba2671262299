"""LightningDataModule of BigEarthNet (v1 or v2) on its official train / val / test splits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rsmm.datamodules.base import MultiModalDataModule
from rsmm.datamodules.multilabel import multilabel_subset
from rsmm.datasets.bigearthnet import EXCLUSIONS, BigEarthNet


class BigEarthNetDataModule(MultiModalDataModule):
    """BigEarthNet (:class:`~rsmm.datasets.BigEarthNet`) with the official splits.

    Labels are multi-hot (the fine-tuning task uses BCE and reports mAP and F1).
    ``label_fraction`` subsets of the training split are seeded, nested and stratified
    for multi-label data (:func:`~rsmm.datamodules.multilabel.multilabel_subset`: 1 %
    inside 10 % inside 100 %, every class keeps a positive). Band statistics are the
    published BigEarthNet ones from the manifest.

    Example:
        >>> dm = BigEarthNetDataModule("data/bigearthnet", version=2, label_fraction=0.1)
        >>> dm.setup("fit")
    """

    dataset_class = BigEarthNet

    def __init__(
        self,
        root: str,
        version: int | None = None,
        modalities: Sequence[str] | None = ("s1", "s2"),
        bands: Mapping[str, Sequence[str]] | None = None,
        num_classes: int = 19,
        s2_bands: Sequence[str] | None = None,
        exclude: Sequence[str] = EXCLUSIONS,
        **kwargs: Any,
    ) -> None:
        """Configure the datamodule.

        Args:
            root: BigEarthNet root (v1 or v2 layout, see :class:`BigEarthNet`).
            version: 1, 2 (reBEN) or ``None``: 2 when the root holds ``metadata.parquet``.
            modalities: modality keys to load, from ``("s1", "s2")``.
            bands: optional ``{modality: band names}`` subsets.
            num_classes: 19 (default) or 43 (v1 only).
            s2_bands: Sentinel-2 bands to load, in order (default: all 12).
            exclude: official recommendations applied (see :data:`EXCLUSIONS`).
            **kwargs: loader options of :class:`~rsmm.datamodules.base.MultiModalDataModule`
                (``batch_size``, ``num_workers``, ``label_fraction``, ``seed``, ``augment``,
                ``views``, ``shared_geometry``, ``pin_memory`` ...).
        """
        super().__init__(
            root,
            modalities=modalities,
            bands=bands,
            version=version,
            num_classes=num_classes,
            s2_bands=s2_bands,
            exclude=list(exclude),
            **kwargs,
        )

    def label_subset(self, targets: np.ndarray) -> np.ndarray:
        """Nested iterative stratification of the multi-hot training targets."""
        return multilabel_subset(targets, self.label_fraction, self.seed)
