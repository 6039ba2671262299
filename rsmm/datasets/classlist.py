"""Folder-per-class datasets whose class ids come from a fixed, published class list.

TorchGeo's EuroSAT and RESISC-45 are ``ImageFolder`` datasets: they number classes
by the class folders found on disk, so a partial copy (say only ``Forest`` and
``River``) silently renumbers ``Forest`` from 1 to 0. rsmm keeps torchgeo for what it
does well (verification, download, archive extraction, scanning the split's files)
and re-labels every file from the dataset's published class list.

:class:`PublishedClassFolderDataset` is the shared adapter; a concrete dataset names
its torchgeo class, its modality, its split files and how to read one image.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torchgeo.datasets import NonGeoClassificationDataset
from torchgeo.datasets.errors import DatasetNotFoundError as TorchGeoDatasetNotFoundError

from rsmm.datasets.base import MultiModalDataset, Sample
from rsmm.errors import ConfigError, DatasetFileError, DatasetNotFoundError
from rsmm.io import require_dir

BandsArg = Sequence[str] | Mapping[str, Sequence[str]] | None


def class_of_file(name: str) -> str:
    """Class folder of a file named ``<class>_<number>.<ext>`` (``sea_ice_001.jpg`` -> ``sea_ice``)."""
    return Path(name).stem.rsplit("_", 1)[0]


def read_split_file(path: Path, rename: Callable[[str], str] | None = None) -> list[str]:
    """File names listed in a split file (one per line, blank lines ignored).

    Args:
        path: the split file.
        rename: optional map from a listed name to the stored file name (EuroSAT's
            split files list ``.jpg`` names of ``.tif`` files).
    """
    with open(path) as f:
        names = [line.strip() for line in f if line.strip()]
    return [rename(n) for n in names] if rename else names


def missing_split_error(split_file: Path, missing: Sequence[Path]) -> DatasetFileError:
    """The error for a split file that lists images which are not on disk."""
    shown = ", ".join(str(p) for p in missing[:5])
    more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    return DatasetFileError(
        f"split file {split_file} lists {len(missing)} image(s) that do not exist: {shown}{more}"
    )


def published_class_ids(
    samples: Sequence[tuple[str, int]],
    folder_classes: Sequence[str],
    classes: Sequence[str],
    image_dir: Path,
) -> np.ndarray:
    """Label ids from the published class list for ``ImageFolder`` samples.

    Args:
        samples: ``[(path, folder index)]`` as ``ImageFolder.samples`` holds them.
        folder_classes: the class folder names, ``ImageFolder.classes``, indexed by
            the folder index.
        classes: the fixed, published class list (index = label id).
        image_dir: the folder holding the class folders (named in errors).

    Returns:
        int64 array of label ids, one per sample.

    Raises:
        DatasetFileError: if a class folder holding samples is not a published class.
    """
    lookup = {name: i for i, name in enumerate(classes)}
    unknown = sorted({folder_classes[k] for _, k in samples} - lookup.keys())
    if unknown:
        raise DatasetFileError(
            f"class folder(s) {', '.join(str(image_dir / u) for u in unknown)} are not classes "
            f"of this dataset; expected folders named from: {', '.join(classes)}"
        )
    return np.array([lookup[folder_classes[k]] for _, k in samples], dtype=np.int64)


class PublishedClassFolderDataset(MultiModalDataset):
    """Adapter over a torchgeo folder-per-class dataset with fixed class ids.

    Subclasses set :attr:`torchgeo_class`, :attr:`modality`, :attr:`image_subdir`
    and implement :meth:`split_filename` and :meth:`_read`.

    Attributes:
        root: the dataset root.
        split: the official split loaded.
        files: path of every sample's image, in sample order.
    """

    #: The torchgeo dataset that verifies, downloads, extracts and scans the files.
    torchgeo_class: ClassVar[type[NonGeoClassificationDataset]]
    #: The one modality key of the dataset.
    modality: ClassVar[str]
    #: Folder, relative to the root, that holds the class folders.
    image_subdir: ClassVar[str]
    splits: ClassVar[tuple[str, ...]] = ("train", "val", "test")

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        bands: BandsArg = None,
        modalities: Sequence[str] | None = None,
        download: bool = False,
        checksum: bool = False,
    ) -> None:
        """Index one official split.

        Args:
            root: dataset root directory.
            split: one of :attr:`splits`.
            bands: band names of :attr:`modality` to return (a sequence), or a
                ``{modality: band names}`` dict; ``None`` keeps every stored band.
            modalities: modality keys to return (default: :attr:`modality` only).
            download: let torchgeo download (and extract) missing files into ``root``.
            checksum: let torchgeo verify the MD5 of downloaded files.

        Raises:
            ValueError: for an unknown split, modality or band.
            DatasetNotFoundError: if ``root``, the split file or the images are missing.
            DatasetFileError: if the split file lists missing images, or a class folder
                is not a published class.
        """
        super().__init__(
            (self.modality,) if modalities is None else modalities, self.band_selection(bands)
        )
        if split not in self.splits:
            raise ConfigError(f"split must be one of {', '.join(self.splits)}; got {split!r}")
        name = type(self).__name__
        self.root = Path(root)
        self.split = split
        if not download:
            require_dir(self.root, f"{name} root")
        split_file = self.root / self.split_filename(split)
        if not download and not split_file.is_file():
            raise DatasetNotFoundError(f"{name} split file not found: {split_file}")
        image_dir = self.root / self.image_subdir
        folder_ds = self._open_torchgeo(split_file, image_dir, download, checksum)
        listed = self._listed_paths(split_file, image_dir)
        found = {os.path.basename(p) for p, _ in folder_ds.samples}
        missing = [p for p in listed if p.name not in found]
        if missing:
            raise missing_split_error(split_file, missing)
        self.files: list[Path] = [Path(p) for p, _ in folder_ds.samples]
        self._labels = published_class_ids(
            folder_ds.samples, folder_ds.classes, self.classes, image_dir
        )

    def _open_torchgeo(
        self, split_file: Path, image_dir: Path, download: bool, checksum: bool
    ) -> NonGeoClassificationDataset:
        """Let torchgeo verify (download, extract) and scan the split, with rsmm's errors."""
        name = type(self).__name__
        try:
            return self.torchgeo_class(
                root=str(self.root), split=self.split, download=download, checksum=checksum
            )
        except TorchGeoDatasetNotFoundError as err:
            raise DatasetNotFoundError(
                f"{name} images not found: {image_dir} does not exist and there is no "
                f"archive to extract in {self.root} (download={download})"
            ) from err
        except FileNotFoundError as err:
            if not split_file.is_file():
                raise DatasetNotFoundError(f"{name} split file not found: {split_file}") from err
            # torchvision's scan fails when a class folder holds no file of the split
            missing = [p for p in self._listed_paths(split_file, image_dir) if not p.is_file()]
            if missing:
                raise missing_split_error(split_file, missing) from err
            raise DatasetFileError(f"{name}: cannot index {image_dir}: {err}") from err

    # -- subclass interface -----------------------------------------------------------

    @classmethod
    def split_filename(cls, split: str) -> str:
        """Name of the split file of ``split``, relative to the root."""
        raise NotImplementedError

    @classmethod
    def listed_name(cls, name: str) -> str:
        """Stored file name of a name listed in a split file (identity by default)."""
        return name

    def _read(self, path: Path) -> np.ndarray:
        """Read one image as a ``C x H x W`` array holding every stored band."""
        raise NotImplementedError

    # -- shared implementation -------------------------------------------------------

    @classmethod
    def band_selection(cls, bands: BandsArg) -> dict[str, Sequence[str]] | None:
        """Normalise ``bands`` to the ``{modality: band names}`` form of the base class.

        A sequence of names (torchgeo style, e.g. ``("B04", "B03", "B02")``) or a
        single name selects bands of :attr:`modality`; a mapping is returned as a dict.
        """
        if bands is None:
            return None
        if isinstance(bands, str):
            return {cls.modality: (bands,)}
        if isinstance(bands, Mapping):
            return {k: tuple(v) for k, v in bands.items()}
        return {cls.modality: tuple(bands)}

    def _listed_paths(self, split_file: Path, image_dir: Path) -> list[Path]:
        names = read_split_file(split_file, self.listed_name)
        return [image_dir / class_of_file(n) / n for n in names]

    def __len__(self) -> int:
        return len(self.files)

    def targets(self) -> np.ndarray:
        """Label id of every sample (int64, ``(N,)``), without reading images."""
        return self._labels.copy()

    def __getitem__(self, index: int) -> Sample:
        """Return sample ``index``: ``{modality: float32 C x H x W, "label", "meta"}``."""
        path = self.files[index]
        stored = self._read(path)
        sample: dict[str, Any] = {}
        nodata = {}
        for m in self.modalities:
            sample[m], nodata[m] = self._select(m, stored)
        sample["label"] = torch.tensor(self._labels[index], dtype=torch.int64)
        sample["meta"] = {"id": path.stem, "nodata": nodata}
        return sample
