"""CIFAR-10, CIFAR-100 and STL-10 read through torchvision, one key ``"rgb"``.

The thesis measures its chapter 3 objectives on CIFAR-10 and STL-10 (Tables 3.1, 3.2,
3.4) and its horospherical classifiers on CIFAR-10 / CIFAR-100 (Table 5.1). These
adapters read the files torchvision reads, in its layouts, and never download::

    root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}     # pickles
    root/cifar-100-python/{train, test, meta}                                  # pickles
    root/stl10_binary/{train_X.bin, train_y.bin, test_X.bin, test_y.bin,
                       unlabeled_X.bin[, class_names.txt, fold_indices.txt]}

torchvision checks every file's MD5 when it opens a dataset; rsmm only checks that the
files exist unless ``checksum=True`` (a partial or re-packed copy still opens, and the
tests' tiny fake copies too). Class ids are the published class lists of the manifests
(torchvision's numbering); the class names stored in the dataset's meta file, when it
has one, must agree with them.

:class:`RGBArrayDataset` is the shared base (also of CUB-200,
:mod:`rsmm.datasets.cub200`): one ``rgb`` modality whose 8-bit images are returned as
``float32 3 x H x W`` with values 0-255.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torchvision.datasets as tvd
from torchvision.datasets.utils import check_integrity

from rsmm.datasets.base import MultiModalDataset, Sample
from rsmm.errors import ConfigError, DatasetFileError, DatasetNotFoundError
from rsmm.io import require_dir

BandsArg = Sequence[str] | Mapping[str, Sequence[str]] | None


class RGBArrayDataset(MultiModalDataset):
    """Base of the single-modality ``rgb`` image-classification datasets.

    Subclasses set :attr:`folder` and :attr:`splits` and implement :meth:`_index`
    (which fills :attr:`ids` and the labels) and :meth:`_image` (one ``H x W x 3``
    uint8 image).

    Attributes:
        root: the dataset root.
        split: the split loaded.
        ids: a sample id per sample (``"<split>_<index>"`` or the image's file stem).
    """

    modality: ClassVar[str] = "rgb"
    gsd: ClassVar[Mapping[str, float | None]] = {"rgb": None}  # photographs: no pixel size
    #: Folder under the root that holds the dataset's files (named in errors).
    folder: ClassVar[str]
    splits: ClassVar[tuple[str, ...]] = ("train", "test")

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        bands: BandsArg = None,
        modalities: Sequence[str] | None = None,
        checksum: bool = False,
    ) -> None:
        """Index one split.

        Args:
            root: directory holding :attr:`folder`.
            split: one of :attr:`splits`.
            bands: subset of ``("R", "G", "B")`` (a sequence) or ``{"rgb": [...]}``.
            modalities: modality keys to return (only ``"rgb"`` exists).
            checksum: verify the files' MD5 sums as torchvision does (slow on the full
                datasets; off by default: the files must only exist).

        Raises:
            ConfigError: for an unknown split, modality or band.
            DatasetNotFoundError: naming the missing root, folder or file (rsmm never
                downloads).
            DatasetFileError: for files that do not parse, fail their checksum, or name
                other classes than the manifest's.
        """
        if isinstance(bands, str):
            bands = (bands,)
        if bands is not None and not isinstance(bands, Mapping):
            bands = {self.modality: tuple(bands)}
        super().__init__((self.modality,) if modalities is None else modalities, bands)
        if split not in self.splits:
            raise ConfigError(f"split must be one of {', '.join(self.splits)}; got {split!r}")
        self.root = require_dir(root, f"{type(self).__name__} root")
        self.split = split
        self.checksum = checksum
        require_dir(self.root / self.folder, f"{type(self).__name__} folder {self.folder!r}")
        self.ids: list[str] = []
        self._labels = np.zeros(0, dtype=np.int64)
        self._index()

    # -- subclass interface -----------------------------------------------------------

    def _index(self) -> None:
        """Read the split's index: fill :attr:`ids` and ``_labels`` (``-1``: unlabelled)."""
        raise NotImplementedError

    def _image(self, index: int) -> np.ndarray:
        """Image ``index`` as an ``H x W x 3`` uint8 array."""
        raise NotImplementedError

    # -- shared implementation --------------------------------------------------------

    def _check_class_names(self, names: Sequence[str], source: Path) -> None:
        """Refuse a copy whose stored class names are not the manifest's list."""
        if list(names) != self.classes:
            raise DatasetFileError(
                f"{source} lists classes {list(names)[:5]}... which are not the "
                f"{self.manifest.name} classes {self.classes[:5]}... in this order"
            )

    def __len__(self) -> int:
        return len(self.ids)

    def targets(self) -> np.ndarray:
        """Label id of every sample (int64 ``(N,)``, ``-1`` = unlabelled)."""
        return self._labels.copy()

    def __getitem__(self, index: int) -> Sample:
        """``{"rgb": float32 3 x H x W (0-255), "label": int64, "meta": {...}}``."""
        image = self._image(index).transpose(2, 0, 1)
        sample: dict[str, Any] = {}
        nodata = {}
        for m in self.modalities:
            sample[m], nodata[m] = self._select(m, image)
        sample["label"] = torch.tensor(self._labels[index], dtype=torch.int64)
        sample["meta"] = {"id": self.ids[index], "nodata": nodata}
        return sample


def _file_check(dataset: Any, checksum: bool) -> bool:
    """torchvision's integrity check, by MD5 when ``checksum`` else by presence, with
    the first missing or failing file remembered for the error message."""
    for filename, md5 in dataset.train_list + dataset.test_list:
        path = os.path.join(dataset.root, dataset.base_folder, filename)
        if not check_integrity(path, md5 if checksum else None):
            dataset.rsmm_bad_file = path
            return False
    return True


def _presence_checked(tv_class: type) -> type:
    """A subclass of a torchvision dataset whose integrity checks only look for the
    files (rsmm's ``checksum=False``); torchvision's MD5 checks otherwise."""

    def _check_integrity(self: Any) -> bool:
        return _file_check(self, checksum=False)

    def _load_meta(self: Any) -> None:  # CIFAR: same as torchvision's, without the MD5
        path = os.path.join(self.root, self.base_folder, self.meta["filename"])
        with open(path, "rb") as f:
            self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    attrs: dict[str, Any] = {"_check_integrity": _check_integrity}
    if hasattr(tv_class, "_load_meta"):
        attrs["_load_meta"] = _load_meta
    return type(f"PresenceChecked{tv_class.__name__}", (tv_class,), attrs)


class TorchvisionDataset(RGBArrayDataset):
    """An adapter over a torchvision in-memory dataset (CIFAR, STL-10)."""

    #: The torchvision class reading the files.
    torchvision_class: ClassVar[type]

    def _index(self) -> None:
        cls = self.torchvision_class if self.checksum else _presence_checked(self.torchvision_class)
        folder = self.root / self.folder
        try:
            ds = self._open_with(cls)
        except RuntimeError as err:  # torchvision: "Dataset not found or corrupted"
            probe = cls.__new__(cls)
            probe.root, probe.base_folder = str(self.root), cls.base_folder
            if _file_check(probe, checksum=False):
                raise DatasetFileError(f"{folder}: files fail their MD5 check: {err}") from err
            raise DatasetNotFoundError(
                f"{type(self).__name__} file not found: {probe.rsmm_bad_file}"
            ) from err
        except FileNotFoundError as err:  # CIFAR's meta file
            raise DatasetNotFoundError(
                f"{type(self).__name__} file not found: {err.filename}"
            ) from err
        except (pickle.UnpicklingError, EOFError, KeyError, ValueError) as err:
            raise DatasetFileError(
                f"{folder}: cannot read the {self.split} split: {err!r}"
            ) from err
        self._data = np.ascontiguousarray(self._hwc(ds.data))
        self._labels = np.asarray(self._targets_of(ds), dtype=np.int64)
        self.ids = [f"{self.split}_{i}" for i in range(len(self._labels))]
        names = getattr(ds, "classes", None)
        if names:
            self._check_class_names(names, folder)

    def _open_with(self, cls: type) -> Any:
        """The torchvision dataset ``cls`` (possibly presence-checked) of the split."""
        raise NotImplementedError

    @staticmethod
    def _hwc(data: np.ndarray) -> np.ndarray:
        return data

    @staticmethod
    def _targets_of(ds: Any) -> Sequence[int]:
        return ds.targets

    def _image(self, index: int) -> np.ndarray:
        return self._data[index]


class CIFAR10(TorchvisionDataset):
    """CIFAR-10 (Krizhevsky 2009): 50,000 train / 10,000 test images of 32 x 32.

    Samples are ``{"rgb": float32 3 x 32 x 32 (0-255), "label": int64, "meta":
    {"id": "<split>_<n>", ...}}``.

    Example::

        ds = CIFAR10("data/cifar", split="test")   # data/cifar/cifar-10-batches-py/
        ds[0]["rgb"].shape  # (3, 32, 32)
    """

    manifest_name = "cifar10"
    torchvision_class = tvd.CIFAR10
    folder = tvd.CIFAR10.base_folder

    def _open_with(self, cls: type) -> Any:
        return cls(str(self.root), train=self.split == "train", download=False)


class CIFAR100(CIFAR10):
    """CIFAR-100 (Krizhevsky 2009): 100 classes in 20 superclasses (the packaged
    ``cifar100`` label hierarchy), 50,000 train / 10,000 test images of 32 x 32."""

    manifest_name = "cifar100"
    torchvision_class = tvd.CIFAR100
    folder = tvd.CIFAR100.base_folder


class STL10(TorchvisionDataset):
    """STL-10 (Coates et al. 2011): 96 x 96 images; ``train`` (5,000 labelled),
    ``test`` (8,000), ``unlabeled`` (100,000, label ``-1``) and ``train+unlabeled``
    (the SSL pre-training set of Tables 3.1 and 3.2)."""

    manifest_name = "stl10"
    torchvision_class = tvd.STL10
    folder = tvd.STL10.base_folder
    splits = ("train", "test", "unlabeled", "train+unlabeled")

    def _open_with(self, cls: type) -> Any:
        return cls(str(self.root), split=self.split, download=False)

    @staticmethod
    def _hwc(data: np.ndarray) -> np.ndarray:
        return data.transpose(0, 2, 3, 1)  # torchvision keeps STL-10 as N x 3 x H x W

    @staticmethod
    def _targets_of(ds: Any) -> Sequence[int]:
        return ds.labels
