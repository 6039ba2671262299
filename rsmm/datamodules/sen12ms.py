"""LightningDataModule of SEN12MS, the unlabelled multimodal pre-training set."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from rsmm.datamodules.base import MultiModalDataModule
from rsmm.datasets.sen12ms import SEN12MS
from rsmm.errors import ConfigError


def scene_holdout(ids: Sequence[str], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split sample ids ``<season>_<scene>_p<patch>`` into (kept, held-out) by whole scenes.

    Patches of one scene overlap in content, so a validation part drawn patch by
    patch would leak; holding out whole scenes avoids that. At least one scene is held
    out when ``fraction > 0`` and there are at least two scenes.

    Returns:
        Sorted int64 indices of the kept and of the held-out samples.
    """
    scenes = np.array([i.rsplit("_p", 1)[0] for i in ids])
    unique = np.unique(scenes)
    rng = np.random.default_rng(seed)
    n_out = min(max(1, round(fraction * len(unique))), len(unique) - 1) if fraction > 0 else 0
    held = rng.permutation(unique)[:n_out]
    out = np.isin(scenes, held)
    return np.flatnonzero(~out).astype(np.int64), np.flatnonzero(out).astype(np.int64)


class SEN12MSDataModule(MultiModalDataModule):
    """SEN12MS (:class:`~rsmm.datasets.SEN12MS`) for multimodal pre-training.

    Training uses the official ``train_list.txt`` and testing ``test_list.txt``.
    SEN12MS has no official validation list, so by default there is no validation
    split (pre-training monitors its training loss). ``val_fraction > 0`` carves one
    out of the training list by holding out a seeded fraction of whole *scenes*
    (patches of a scene overlap, so a patch-level split would leak). The scene labels
    (majority of the IGBP band, simplified scheme) are only used for
    ``label_fraction`` and for monitoring; pre-training losses ignore them.

    Band statistics: the manifest's published values (SEN12MS classification
    baseline) for S1 and the 10 land bands of S2; a selection containing B01, B09 or
    B10 is estimated on the training split.

    Example:
        >>> dm = SEN12MSDataModule("data/sen12ms", batch_size=256, augment="ssl", views=2)
        >>> dm.setup("fit")
    """

    dataset_class = SEN12MS
    train_split = "train"
    val_split = None
    test_split = "test"

    def __init__(
        self,
        root: str,
        modalities: Sequence[str] = ("s1", "s2"),
        bands: Mapping[str, Sequence[str]] | None = None,
        val_fraction: float = 0.0,
        checksum: bool = False,
        **kwargs: Any,
    ) -> None:
        """Configure the datamodule.

        Args:
            root: SEN12MS root (season folders and split lists).
            modalities: modality keys to load, from ``("s1", "s2")``.
            bands: optional ``{modality: band names}`` subsets.
            val_fraction: fraction of the training list's scenes held out for
                validation (seeded by ``seed``); 0 = no validation split.
            checksum: let torchgeo verify the MD5 of the downloaded archives.
            **kwargs: loader options of :class:`~rsmm.datamodules.base.MultiModalDataModule`
                (``batch_size``, ``num_workers``, ``label_fraction``, ``seed``, ``augment``,
                ``views``, ``shared_geometry``, ``pin_memory`` ...).
        """
        if not 0 <= val_fraction < 1:
            raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
        super().__init__(
            root,
            modalities=modalities,
            bands=bands,
            checksum=checksum,
            **kwargs,
        )
        self.val_fraction = val_fraction

    def _build_splits(self, stage: str | None) -> dict[str, Dataset]:
        """Official train / test lists, plus a scene hold-out of train if asked for."""
        return self._carved_splits(
            stage,
            lambda train: (
                None
                if self.val_fraction <= 0
                else scene_holdout(train.ids, self.val_fraction, self.seed)
            ),
        )
