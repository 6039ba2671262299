"""DFC2020: the IEEE GRSS Data Fusion Contest 2020 land-cover releases."""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from rsmm.datasets.base import MultiModalDataset, Sample
from rsmm.datasets.landcover import DFC_CLASSES, class_names, dfc_scene_class, to_scheme
from rsmm.errors import ConfigError, DatasetFileError
from rsmm.io import read_geotiff, require_dir


class DFC2020(MultiModalDataset):
    """IEEE GRSS Data Fusion Contest 2020 (DFC2020) scene classification.

    The `DFC2020 <https://doi.org/10.21227/rha7-m332>`__ releases hold 256 x 256
    co-registered Sentinel-1 (VV, VH, float32 dB) and Sentinel-2 Level-1C (13 bands,
    uint16) patches with a 10 m land-cover mask in the simplified IGBP scheme. There
    is no training release: ``split="val"`` is ``ROIs0000_validation`` (986 patches)
    and ``split="test"`` is ``ROIs0000_test`` (5,128 patches). Layout::

        root/ROIs0000_validation/{s1_0,s2_0,lc_0,dfc_0}/ROIs0000_validation_<src>_0_p<n>.tif
        root/ROIs0000_test/{s1_0,s2_0,lc_0,dfc_0}/ROIs0000_test_<src>_0_p<n>.tif

    The scene label is the majority class of the ``dfc`` mask (value ``v`` in 1..10 is
    class ``v - 1``; 0 and 255 are ignored). With ``num_classes=8`` (the default)
    Savanna and Snow/Ice are dropped and the other classes renumbered 0..7 in order.
    Patches whose majority is a dropped class, or whose mask holds no valid pixel,
    are left out when indexing and listed in :attr:`skipped`. The masks are read
    once, when indexing (they are small).

    If you use this dataset, please cite:

    * https://doi.org/10.1109/JSTARS.2021.3063849
    """

    manifest_name: ClassVar[str] = "dfc2020"
    #: every band is stored resampled to 10 m
    gsd: ClassVar[dict[str, float | None]] = {"s1": 10.0, "s2": 10.0}
    releases: ClassVar[dict[str, str]] = {"val": "ROIs0000_validation", "test": "ROIs0000_test"}
    expected_bands: ClassVar[dict[str, int]] = {"s1": 2, "s2": 13, "dfc": 1}
    _patch_re: ClassVar[re.Pattern[str]] = re.compile(r"_p(\d+)\.tif$")

    def __init__(
        self,
        root: str | Path = "data",
        split: str = "val",
        modalities: Sequence[str] = ("s1", "s2"),
        num_classes: int = 8,
        bands: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """Index a DFC2020 release and compute the scene labels.

        Args:
            root: directory holding ``ROIs0000_validation`` / ``ROIs0000_test``.
            split: ``"val"`` (the validation release) or ``"test"``.
            modalities: modality keys to return, from ``("s1", "s2")``.
            num_classes: 8 (drop Savanna and Snow/Ice) or 10.
            bands: optional ``{modality: band names}`` subsets.

        Raises:
            ValueError: for an unknown split, ``num_classes``, modality or band.
            DatasetNotFoundError: if the release folder (or one of its source folders)
                is missing.
            DatasetFileError: if a patch lacks a file of a selected modality, or a mask
                is unreadable.
        """
        if split not in self.releases:
            raise ConfigError(f"split must be one of {sorted(self.releases)}, got {split!r}")
        names = class_names(num_classes)
        super().__init__(modalities, bands)
        self.root = Path(root)
        self.split = split
        self.num_classes = num_classes
        self.classes = list(names)
        self.release = self.releases[split]
        require_dir(self.root, "DFC2020 root")
        base = require_dir(self.root / self.release, f"DFC2020 {split} release")
        self._dirs = {
            src: require_dir(base / f"{src}_0", f"DFC2020 {src} folder")
            for src in (*self.modalities, "dfc")
        }
        self.ids: list[str] = []
        self.labels: list[int] = []
        self._numbers: list[int] = []
        for n in self._patch_numbers():
            label = self._scene_label(n)
            if label is not None:
                self._numbers.append(n)
                self.ids.append(f"{self.release}_p{n}")
                self.labels.append(label)
        if self.skipped:
            warnings.warn(
                f"DFC2020 {split} ({base}): {self.skipped_summary()}", UserWarning, stacklevel=2
            )

    def path(self, number: int, src: str) -> Path:
        """File of patch ``p<number>`` for source ``src`` (``s1``, ``s2``, ``lc``, ``dfc``)."""
        return self.root / self.release / f"{src}_0" / f"{self.release}_{src}_0_p{number}.tif"

    def _patch_numbers(self) -> list[int]:
        """Patch numbers found in any used folder; each must have every used file."""
        found: set[int] = set()
        for src, folder in self._dirs.items():
            prefix = f"{self.release}_{src}_0_p"
            for f in folder.glob(f"{prefix}*.tif"):
                m = self._patch_re.search(f.name)
                if m is not None:
                    found.add(int(m.group(1)))
        for n in sorted(found):
            for src in self._dirs:
                if not self.path(n, src).is_file():
                    raise DatasetFileError(
                        f"missing file: {self.path(n, src)} (patch p{n} exists in another "
                        "source folder)"
                    )
        return sorted(found)

    def _scene_label(self, number: int) -> int | None:
        """Label of a patch in the chosen scheme, or ``None`` (recorded as skipped)."""
        mask = read_geotiff(self.path(number, "dfc"), self.expected_bands["dfc"])
        class10 = dfc_scene_class(mask[0])
        sample_id = f"{self.release}_p{number}"
        if class10 is None:
            self._skip(sample_id, "no valid pixel in the dfc mask (all 0/255)")
            return None
        label = to_scheme(class10, self.num_classes)
        if label < 0:
            self._skip(
                sample_id,
                f"majority class {DFC_CLASSES[class10]} is dropped by num_classes="
                f"{self.num_classes}",
            )
            return None
        return label

    def __len__(self) -> int:
        """Number of patches kept."""
        return len(self.ids)

    def __getitem__(self, index: int) -> Sample:
        """Return patch ``index`` as ``{"s1", "s2", "label", "meta"}``.

        Raises:
            DatasetFileError: if a file is unreadable or has the wrong band count.
        """
        number = self._numbers[index]
        sample: Sample = {}
        nodata: dict[str, int] = {}
        for m in self.modalities:
            arr = read_geotiff(self.path(number, m), self.expected_bands[m])
            sample[m], nodata[m] = self._select(m, arr)
        sample["label"] = torch.tensor(self.labels[index], dtype=torch.long)
        sample["meta"] = {"id": self.ids[index], "nodata": nodata}
        return sample

    def targets(self) -> np.ndarray:
        """Scene label of every kept patch (computed when indexing)."""
        return np.asarray(self.labels, dtype=np.int64)
