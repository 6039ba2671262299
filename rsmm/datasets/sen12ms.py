"""SEN12MS: an adapter over :class:`torchgeo.datasets.SEN12MS` returning one key per modality."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from rasterio.errors import RasterioError
from torchgeo.datasets import SEN12MS as TorchGeoSEN12MS
from torchgeo.datasets.errors import DatasetNotFoundError as TorchGeoNotFoundError

from rsmm.datasets.base import MultiModalDataset, Sample
from rsmm.datasets.geometa import raster_centre_lonlat
from rsmm.datasets.landcover import igbp_scene_label
from rsmm.errors import ConfigError, DatasetFileError, DatasetNotFoundError
from rsmm.io import read_geotiff, require_dir


class SEN12MS(MultiModalDataset):
    """SEN12MS Sentinel-1 / Sentinel-2 patch pairs (mostly for pre-training).

    File discovery, the official split lists and reading are delegated to
    :class:`torchgeo.datasets.SEN12MS`, which returns one stacked ``image`` (VV, VH,
    then the 13 Sentinel-2 bands) and the IGBP ``mask``; this adapter splits the
    stack into ``"s1"`` (2 bands, dB) and ``"s2"`` (13 bands, Level-1C digital
    numbers), values as stored, and adds a scene label: the majority of the IGBP
    band mapped to the 10 simplified DFC classes
    (:func:`~rsmm.datasets.landcover.igbp_scene_label`). A patch whose majority maps
    to no data gets label ``-1``; :meth:`targets` lists them in :attr:`unlabelled`.

    Layout (as torchgeo expects it, archives already extracted)::

        root/train_list.txt, root/test_list.txt
        root/ROIs<season>/{s1,s2,lc}_<scene>/ROIs<season>_{s1,s2,lc}_<scene>_p<patch>.tif

    If you use this dataset, please cite:

    * https://doi.org/10.5194/isprs-annals-IV-2-W7-153-2019
    """

    manifest_name: ClassVar[str] = "sen12ms"
    #: every band is stored resampled to 10 m
    gsd: ClassVar[dict[str, float | None]] = {"s1": 10.0, "s2": 10.0}
    splits: ClassVar[tuple[str, ...]] = ("train", "test")
    expected_bands: ClassVar[dict[str, int]] = {"s1": 2, "s2": 13, "lc": 4}

    def __init__(
        self,
        root: str | Path = "data",
        split: str = "train",
        modalities: Sequence[str] = ("s1", "s2"),
        bands: Mapping[str, Sequence[str]] | None = None,
        checksum: bool = False,
    ) -> None:
        """Index a SEN12MS split through torchgeo.

        Args:
            root: directory holding the season folders and the split lists.
            split: ``"train"`` or ``"test"`` (the official lists).
            modalities: modality keys to return, from ``("s1", "s2")``.
            bands: optional ``{modality: band names}`` subsets.
            checksum: verify the MD5 of the downloaded archives (slow).

        Raises:
            ValueError: for an unknown split, modality or band.
            DatasetNotFoundError: if the root, a season folder or the split list is
                missing (or the checksums do not match).
        """
        if split not in self.splits:
            raise ConfigError(f"split must be one of {list(self.splits)}, got {split!r}")
        super().__init__(modalities, bands)
        self.root = require_dir(root, "SEN12MS root")
        self.split = split
        try:
            self._torchgeo = TorchGeoSEN12MS(str(self.root), split=split, checksum=checksum)
        except TorchGeoNotFoundError as err:
            missing = [
                name for name in TorchGeoSEN12MS.light_filenames if not (self.root / name).exists()
            ]
            what = f"missing {', '.join(missing)}" if missing else "archives fail the checksum"
            raise DatasetNotFoundError(f"SEN12MS not found in {self.root}: {what}") from err
        self.files: list[str] = list(self._torchgeo.ids)
        self.ids: list[str] = [f.removesuffix(".tif").replace("_s2_", "_") for f in self.files]
        self.unlabelled: list[str] = []
        self._targets: np.ndarray | None = None

    def path(self, index: int, src: str) -> Path:
        """File of sample ``index`` for source ``src`` (``s1``, ``s2`` or ``lc``)."""
        season, name, _, scene, patch = self.files[index].split("_")
        return (
            self.root
            / f"{season}_{name}"
            / f"{src}_{scene}"
            / (f"{season}_{name}_{src}_{scene}_{patch}")
        )

    def __len__(self) -> int:
        """Number of patches in the split list."""
        return len(self.files)

    def _locate_error(self, index: int, err: Exception | None) -> DatasetFileError:
        """A :class:`DatasetFileError` naming the file of ``index`` that is at fault."""
        for src, n in self.expected_bands.items():
            try:
                read_geotiff(self.path(index, src), n)
            except DatasetFileError as found:
                return found
        return DatasetFileError(
            f"cannot read SEN12MS sample {self.ids[index]} under {self.root}: {err}"
        )

    def __getitem__(self, index: int) -> Sample:
        """Return sample ``index`` as ``{"s1", "s2", "label", "meta"}``.

        Raises:
            DatasetFileError: naming the file that is missing, corrupt or has the
                wrong band count.
        """
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        try:
            raw = self._torchgeo[index]
        except (RasterioError, OSError, IndexError, RuntimeError) as err:
            # missing / corrupt file, or band counts and sizes that do not stack
            raise self._locate_error(index, err) from err
        image, mask = raw["image"], raw["mask"]
        if image.shape[0] != self.expected_bands["s1"] + self.expected_bands["s2"]:
            raise self._locate_error(index, None)
        split_at = self.expected_bands["s1"]
        stored = {"s1": image[:split_at], "s2": image[split_at:]}
        sample: Sample = {}
        nodata: dict[str, int] = {}
        for m in self.modalities:
            sample[m], nodata[m] = self._select(m, stored[m].numpy())
        label = igbp_scene_label(mask.numpy())
        sample["label"] = torch.tensor(label, dtype=torch.long)
        sample["meta"] = {
            "id": self.ids[index],
            "nodata": nodata,
            "lonlat": raster_centre_lonlat(self.path(index, "s2")),
        }
        return sample

    def targets(self) -> np.ndarray:
        """Scene label of every patch, from the land-cover files only (cached).

        Patches whose majority maps to no data get ``-1`` and are listed in
        :attr:`unlabelled` (with one warning summarising them).
        """
        if self._targets is None:
            labels = np.empty(len(self), dtype=np.int64)
            for i in range(len(self)):
                lc = read_geotiff(self.path(i, "lc"), self.expected_bands["lc"])
                labels[i] = igbp_scene_label(lc[0])
            self.unlabelled = [self.ids[i] for i in np.flatnonzero(labels < 0)]
            if self.unlabelled:
                warnings.warn(
                    f"SEN12MS {self.split}: {len(self.unlabelled)} of {len(self)} patches "
                    "have a no-data majority in their IGBP band and are unlabelled (-1)",
                    UserWarning,
                    stacklevel=2,
                )
            self._targets = labels
        return self._targets
