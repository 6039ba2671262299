"""CUB-200-2011: 200 bird species, one key ``"rgb"`` (Table 5.1, 5.2, A.1 of the thesis).

torchvision has no CUB class; this reads the layout of the official archive::

    root/CUB_200_2011/
      images.txt                 # "<image id> <class folder>/<file>.jpg"
      image_class_labels.txt     # "<image id> <class id, 1-based>"
      train_test_split.txt       # "<image id> <1 = train, 0 = test>"
      classes.txt                # "<class id> <NNN>.<Species_name>"
      images/<NNN>.<Species_name>/<file>.jpg

Class ids are ``classes.txt``'s minus one, checked against the manifest's list of the
200 species. The photographs vary in size (and a few are grayscale): each is converted
to RGB and resized to ``image_size`` x ``image_size`` (bilinear) so that samples batch;
the thesis does not state its input size.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rsmm.datasets.torchvision_sets import BandsArg, RGBArrayDataset
from rsmm.errors import ConfigError, DatasetFileError, DatasetNotFoundError


def read_id_table(path: Path) -> dict[int, str]:
    """``{id: rest of the line}`` of a CUB index file (``"<id> <value>"`` per line).

    Raises:
        DatasetNotFoundError: if the file is missing.
        DatasetFileError: for a line that is not ``<int> <value>``.
    """
    if not path.is_file():
        raise DatasetNotFoundError(f"CUB200 index file not found: {path}")
    out: dict[int, str] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        key, _, value = line.strip().partition(" ")
        if not key.isdigit() or not value:
            raise DatasetFileError(f"{path}, line {n}: expected '<id> <value>', got {line!r}")
        out[int(key)] = value.strip()
    return out


class CUB200(RGBArrayDataset):
    """CUB-200-2011 (Wah et al. 2011), official 5,994 train / 5,794 test split.

    Samples are ``{"rgb": float32 3 x S x S (0-255), "label": int64, "meta": {"id":
    "<file stem>", ...}}`` with ``S = image_size``.

    Example::

        ds = CUB200("data/cub", split="test", image_size=224)  # data/cub/CUB_200_2011/
    """

    manifest_name = "cub200"
    folder = "CUB_200_2011"

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        bands: BandsArg = None,
        modalities: Sequence[str] | None = None,
        image_size: int = 224,
        checksum: bool = False,
    ) -> None:
        """Index one split (see :class:`~rsmm.datasets.torchvision_sets.RGBArrayDataset`).

        Args:
            image_size: side of the square every image is resized to.
            checksum: ignored (the CUB archive's index files carry no checksums).
        """
        if image_size < 1:
            raise ConfigError(f"image_size must be >= 1, got {image_size}")
        self.image_size = image_size
        super().__init__(root, split, bands, modalities, checksum)

    def _index(self) -> None:
        base = self.root / self.folder
        images = read_id_table(base / "images.txt")
        labels = read_id_table(base / "image_class_labels.txt")
        is_train = read_id_table(base / "train_test_split.txt")
        classes = read_id_table(base / "classes.txt")
        names = [classes[k].split(".", 1)[-1] for k in sorted(classes)]
        if sorted(classes) != list(range(1, len(classes) + 1)):
            raise DatasetFileError(f"{base / 'classes.txt'}: class ids are not 1..{len(classes)}")
        self._check_class_names(names, base / "classes.txt")
        unlisted = sorted(set(images) - labels.keys() | set(images) - is_train.keys())
        if unlisted:
            raise DatasetFileError(
                f"{base}: image id(s) {unlisted[:5]} of images.txt have no label or split entry"
            )
        wanted = "1" if self.split == "train" else "0"
        ids = [i for i in sorted(images) if is_train[i] == wanted]
        self.files = [base / "images" / images[i] for i in ids]
        missing = [p for p in self.files if not p.is_file()]
        if missing:
            raise DatasetNotFoundError(
                f"CUB200: {len(missing)} image(s) of images.txt not found, e.g. {missing[0]}"
            )
        self.ids = [p.stem for p in self.files]
        self._labels = np.array([int(labels[i]) - 1 for i in ids], dtype=np.int64)

    def _image(self, index: int) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        path = self.files[index]
        try:
            with Image.open(path) as img:
                rgb = img.convert("RGB").resize(
                    (self.image_size, self.image_size), Image.Resampling.BILINEAR
                )
                return np.asarray(rgb)
        except (UnidentifiedImageError, OSError) as err:
            raise DatasetFileError(f"cannot read image {path}: {err}") from err
