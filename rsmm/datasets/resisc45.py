"""NWPU-RESISC45: Google Earth RGB scene photographs, one key ``"rgb"``.

An adapter over :class:`torchgeo.datasets.RESISC45`. The layout is::

    root/
      resisc45-{train,val,test}.txt
      NWPU-RESISC45/<class>/<class>_<nnn>.jpg      # 256 x 256 RGB, 8 bits

Class ids come from the published (alphabetical) list of 45 classes in the manifest,
not from the folders on disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import torchgeo.datasets as tgd

from rsmm.datasets.classlist import PublishedClassFolderDataset
from rsmm.io import read_image


class RESISC45(PublishedClassFolderDataset):
    """NWPU-RESISC45 (Cheng et al., Proc. IEEE 2017), splits of Neumann et al. (2019).

    Samples are ``{"rgb": float32 3 x 256 x 256 (values 0-255 as stored), "label":
    int64, "meta": {"id": "<class>_<nnn>", "nodata": {"rgb": 0}}}``.
    """

    manifest_name = "resisc45"
    #: the images range from 0.2 to 30 m: no one pixel size
    gsd: ClassVar[dict[str, float | None]] = {"rgb": None}
    torchgeo_class: ClassVar[type[tgd.RESISC45]] = tgd.RESISC45
    modality = "rgb"
    image_subdir = tgd.RESISC45.directory

    @classmethod
    def split_filename(cls, split: str) -> str:
        return f"resisc45-{split}.txt"

    def _read(self, path: Path) -> np.ndarray:
        channels = len(self.manifest.modality("rgb").bands)
        return read_image(path, expected_channels=channels).transpose(2, 0, 1)
