"""EuroSAT MS: Sentinel-2 Level-1C land-cover patches, one key ``"s2"``.

An adapter over :class:`torchgeo.datasets.EuroSAT` (and its ``EuroSAT100`` and
``EuroSATSpatial`` variants). The layout is::

    root/
      eurosat-{train,val,test}.txt                 # split files (names end in .jpg)
      ds/images/remote_sensing/otherDatasets/sentinel_2/tif/<Class>/<Class>_<n>.tif

Each GeoTIFF holds 13 uint16 bands, B01..B12 then B8A, 64 x 64 pixels. Class ids come
from the published class list of the manifest, not from the folders on disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import torchgeo.datasets as tgd

from rsmm.datasets.classlist import PublishedClassFolderDataset
from rsmm.io import read_geotiff


class EuroSAT(PublishedClassFolderDataset):
    """EuroSAT MS (Helber et al., IEEE JSTARS 2019), splits of Neumann et al. (2019).

    Samples are ``{"s2": float32 C x 64 x 64 (digital numbers as stored), "label":
    int64, "meta": {"id": "<Class>_<n>", "nodata": {"s2": 0}}}``.

    Example::

        ds = EuroSAT("data/eurosat", split="train", bands=("B04", "B03", "B02"))
        ds[0]["s2"].shape  # (3, 64, 64)
    """

    manifest_name = "eurosat"
    #: the 13 bands are stored resampled to 10 m
    gsd: ClassVar[dict[str, float | None]] = {"s2": 10.0}
    torchgeo_class: ClassVar[type[tgd.EuroSAT]] = tgd.EuroSAT
    modality = "s2"
    image_subdir = tgd.EuroSAT.base_dir

    @classmethod
    def split_filename(cls, split: str) -> str:
        return cls.torchgeo_class.split_filenames[split]

    @classmethod
    def listed_name(cls, name: str) -> str:
        """The split files list ``<Class>_<n>.jpg``; the stored file is a ``.tif``."""
        return str(Path(name).with_suffix(".tif"))

    def _read(self, path: Path) -> np.ndarray:
        return read_geotiff(path, expected_bands=len(self.manifest.modality("s2").bands))


class EuroSAT100(EuroSAT):
    """The 100-image EuroSAT subset (10 per class) for tutorials, not benchmarks."""

    torchgeo_class = tgd.EuroSAT100


class EuroSATSpatial(EuroSAT):
    """EuroSAT with torchgeo's longitude-based 60/20/20 train/val/test splits."""

    torchgeo_class = tgd.EuroSATSpatial
