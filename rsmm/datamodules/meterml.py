"""LightningDataModule of METER-ML on its official train / val / test splits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rsmm.datamodules.base import MultiModalDataModule
from rsmm.datasets.meterml import MeterML


class MeterMLDataModule(MultiModalDataModule):
    """METER-ML (:class:`~rsmm.datasets.MeterML`) with the official splits.

    No band statistics are published for METER-ML, so they are estimated on the
    training split on first use (see :attr:`MultiModalDataModule.stats`).

    Example:
        >>> dm = MeterMLDataModule("data/meterml", s2_bands=["10m"], label_fraction=0.1)
        >>> dm.setup("fit")
        >>> batch = next(iter(dm.train_dataloader()))
    """

    dataset_class = MeterML

    def __init__(
        self,
        root: str,
        modalities: Sequence[str] | None = None,
        bands: Mapping[str, Sequence[str]] | None = None,
        s2_bands: Sequence[str] | None = None,
        multilabel: bool = False,
        keep_negative: bool = True,
        image_size: int | Mapping[str, int] | None = None,
        **kwargs: Any,
    ) -> None:
        """Configure the datamodule.

        Args:
            root: METER-ML root (holding ``train_dataset.geojson`` and the image folders).
            modalities: modality keys to load (default ``("s1", "s2", "naip")``).
            bands: optional ``{modality: band names}`` subsets.
            s2_bands: Sentinel-2 bands and/or resolutions (see :class:`MeterML`).
            multilabel: float32 multi-hot labels over the six facility classes.
            keep_negative: keep the Negative locations.
            image_size: side in pixels of each modality's tensors (one int, or
                ``{modality: int}`` such as ``{"naip": 72}``); files are resized to it
                (see :class:`~rsmm.datasets.MeterML`).
            **kwargs: loader options of :class:`~rsmm.datamodules.base.MultiModalDataModule`
                (``batch_size``, ``num_workers``, ``label_fraction``, ``seed``, ``augment``,
                ``views``, ``shared_geometry``, ``pin_memory`` ...).
        """
        super().__init__(
            root,
            modalities=modalities,
            bands=bands,
            s2_bands=s2_bands,
            multilabel=multilabel,
            keep_negative=keep_negative,
            image_size=image_size,
            **kwargs,
        )

    @property
    def negative_class(self) -> int:
        """Class id of Negative, for ``anchor_mask = label != negative_class``."""
        ds = self.reference_dataset
        assert isinstance(ds, MeterML)
        return ds.negative_class
