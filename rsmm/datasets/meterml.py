"""METER-ML: NAIP, Sentinel-1 and Sentinel-2 images of methane-emitting facilities.

Zhu et al., "METER-ML: A Multi-Sensor Earth Observation Benchmark for Automated
Methane Source Mapping", CDCEO 2022 (https://stanfordmlgroup.github.io/projects/meter-ml/).

On-disk layout::

    root/
      train_dataset.geojson  val_dataset.geojson  test_dataset.geojson
      train_images/train_images_{1,2,3}/<lat>_<lon>/
      val_images/<lat>_<lon>/
      test_images/<lat>_<lon>/
        naip.png             720 x 720 x 4 uint8 (R, G, B, NIR in the alpha channel)
        sentinel-1.npy       72 x 72 x 2 uint16 (VV, VH)
        sentinel-2-10m.npy   72 x 72 x 4 uint16 (B04, B03, B02, B08)
        sentinel-2-20m.npy   36 x 36 x 6 uint16 (B05, B06, B07, B8A, B11, B12)
        sentinel-2-60m.npy   12 x 12 x 3 uint16 (B01, B09, B10)

File names, shapes and split folders are read from the packaged manifest
(``rsmm/data_manifests/meterml.json``, key ``files``), the single place they are written.

Sizes: copies resized by a user (72 x 72 NAIP) are accepted. Every needed file's
header is read when the dataset is built (PNG size without decoding, ``.npy`` header),
so a corrupt or wrongly banded file fails then, not in the middle of an epoch. Each
modality is returned at one size (``image_size``, default: the size most locations
store its finest file at); files of another size than most locations' are resized
(bilinear), counted in one warning.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from rsmm.datasets.base import MultiModalDataset, Sample
from rsmm.errors import ConfigError, DatasetFileError, DatasetNotFoundError
from rsmm.io import fill_nonfinite, read_image, read_npy, require_dir
from rsmm.manifests import load_manifest

#: Sentinel-2 resolution names accepted by ``s2_bands``, finest first.
S2_RESOLUTIONS = ("10m", "20m", "60m")


@dataclass(frozen=True)
class _ArrayFile:
    """One image file of a location: its name, stored shape (H, W, C) and bands."""

    name: str
    shape: tuple[int, int, int]
    bands: tuple[str, ...]


@dataclass(frozen=True)
class _Location:
    """An indexed location: folder relative to the root, raw type and label."""

    folder: str
    type: str
    label: int
    multi_hot: tuple[float, ...]


class MeterML(MultiModalDataset):
    """METER-ML multi-sensor methane source dataset.

    Samples hold ``"s1"`` (VV, VH), ``"s2"`` (the bands chosen by ``s2_bands``) and
    ``"naip"`` (R, G, B, NIR) as float32 ``C x H x W`` tensors of the stored digital
    numbers, ``"label"`` and ``"meta"`` (``id`` = location folder relative to the root,
    ``type`` = the raw ``Type`` of the geojson, ``nodata`` = filled pixels per modality,
    ``lonlat`` = float32 ``[lon, lat]`` read from the ``<lat>_<lon>`` folder name, NaN
    for a folder not named so).

    Labels: the class id is the index in :attr:`classes`; ``Roundabout`` counts as
    ``Negative`` (id :attr:`negative_class`). A compound type such as
    ``CAFOs-Landfills`` takes its first class in single-label mode; with
    ``multilabel=True`` the label is a float32 multi-hot over the six facility classes
    (all zero for Negative). Negative samples only serve as negatives in contrastive
    objectives (:attr:`negative_classes`).

    Locations listed in the geojson whose folder or needed files are missing are left
    out when indexing, recorded in :attr:`skipped` and summarised in one warning.

    Example:
        >>> ds = MeterML("data/meterml", split="train", s2_bands=["10m", "B05"])
        >>> ds[0]["s2"].shape  # B04, B03, B02, B08, then B05 upsampled to 72 x 72
        torch.Size([5, 72, 72])
    """

    manifest_name: ClassVar[str] = "meterml"
    #: the 20/60 m Sentinel-2 bands are upsampled to the 72 x 72 10 m grid; NAIP is 1 m
    gsd: ClassVar[dict[str, float | None]] = {"s1": 10.0, "s2": 10.0, "naip": 1.0}
    negative_classes: ClassVar[tuple[str, ...]] = ("Negative",)
    splits: ClassVar[tuple[str, ...]] = ("train", "val", "test")
    #: How many skipped ids (and resized or bad files) a message names.
    warn_ids: ClassVar[int] = 5

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        modalities: Sequence[str] = ("s1", "s2", "naip"),
        s2_bands: Sequence[str] | None = None,
        bands: Mapping[str, Sequence[str]] | None = None,
        multilabel: bool = False,
        keep_negative: bool = True,
        image_size: int | Mapping[str, int] | None = None,
    ) -> None:
        """Index one official split.

        Args:
            root: directory holding the geojson files and image folders.
            split: ``"train"``, ``"val"`` or ``"test"``.
            modalities: modality keys to return, in order (``"s1"``, ``"s2"``, ``"naip"``).
            s2_bands: Sentinel-2 bands to return, in order: band names and/or
                resolution names (``"10m"``, ``"20m"``, ``"60m"``, each expanding to its
                file's bands in file order). ``None`` = all 13 in file order. Bands of
                coarser files are upsampled (bilinear) to the finest chosen grid.
                Ignored when ``s2`` is not among ``modalities``.
            bands: optional ``{modality: band names}`` for ``s1`` and ``naip`` (and
                ``s2`` when ``s2_bands`` is not given).
            multilabel: return float32 multi-hot labels over the six facility classes.
            keep_negative: keep the Negative (and Roundabout) locations.
            image_size: side in pixels of the returned tensors: one int for every
                modality or ``{modality: int}`` (e.g. ``{"naip": 72}``, as the thesis
                resized its inputs); a modality not given takes the size most
                locations store its finest file at (720 for NAIP, 72 for S1 and S2 in
                the release). Files are resized (bilinear) to it.

        Raises:
            DatasetNotFoundError: if ``root`` or the split's geojson does not exist.
            DatasetFileError: if the geojson is not a readable FeatureCollection, or a
                needed file is unreadable or has the wrong number of bands (all named).
            ValueError: for an unknown split, band, resolution or ``Type`` in the geojson.
        """
        if split not in self.splits:
            raise ConfigError(f"split must be one of {self.splits}, got {split!r}")
        bands = dict(bands or {})
        if s2_bands is not None and "s2" in bands:
            raise ConfigError("give the Sentinel-2 bands either as s2_bands or as bands['s2']")
        spec = s2_bands if s2_bands is not None else bands.get("s2")
        if isinstance(modalities, str):
            modalities = (modalities,)
        files = load_manifest(self.manifest_name).extra["files"]
        if spec is not None and "s2" in modalities:
            bands["s2"] = _resolve_s2_bands(spec, _s2_by_resolution(_array_files(files["arrays"])))
        super().__init__(modalities, bands)

        self.root = require_dir(root, "METER-ML root")
        self.split = split
        self.multilabel = multilabel
        self.keep_negative = keep_negative
        self.split_dirs: tuple[str, ...] = tuple(files["split_dirs"][split])
        self._aliases: dict[str, str] = dict(files.get("label_aliases", {}))
        self._separator: str = files.get("compound_separator", "-")
        self._files = _array_files(files["arrays"])
        self._needed = self._needed_files()
        self.geojson = self.root / files["labels"].format(split=split)
        self._locations = self._index()
        self.image_size = self._check_sizes(image_size)

    # -- labels ------------------------------------------------------------------------

    @property
    def negative_class(self) -> int:
        """Class id of Negative (no facility); mask these out as contrastive anchors."""
        return self.classes.index("Negative")

    @property
    def facility_classes(self) -> list[str]:
        """The six facility classes, i.e. the columns of multi-hot labels."""
        return [c for c in self.classes if c != "Negative"]

    def parse_type(self, type_: str) -> tuple[int, tuple[float, ...]]:
        """Single label and multi-hot vector of a geojson ``Type``.

        Raises:
            ValueError: if a part of the type is no known class (naming the geojson).
        """
        facilities = self.facility_classes
        hot = [0.0] * len(facilities)
        first: int | None = None
        for part in str(type_).split(self._separator):
            name = self._aliases.get(part.strip(), part.strip())
            if name not in self.classes:
                raise ConfigError(
                    f"{self.geojson}: unknown Type {type_!r} (part {part!r}); known types: "
                    f"{', '.join(self.classes)}, {', '.join(self._aliases)} and "
                    f"{self._separator!r}-joined combinations"
                )
            if name == "Negative":
                continue
            hot[facilities.index(name)] = 1.0
            if first is None:
                first = self.classes.index(name)
        return (self.negative_class if first is None else first), tuple(hot)

    def targets(self) -> np.ndarray:
        """Labels from the geojson: ``(N,)`` int64, or ``(N, 6)`` float32 multi-hot."""
        if self.multilabel:
            rows = [loc.multi_hot for loc in self._locations]
            return np.asarray(rows, dtype=np.float32).reshape(len(rows), len(self.facility_classes))
        return np.asarray([loc.label for loc in self._locations], dtype=np.int64)

    # -- indexing --------------------------------------------------------------------

    def _needed_files(self) -> dict[str, list[_ArrayFile]]:
        """``{modality: files to read}`` for the selected modalities and bands."""
        needed: dict[str, list[_ArrayFile]] = {}
        for m in self.modalities:
            chosen = set(self.bands[m])
            needed[m] = [f for f in self._files[m] if chosen & set(f.bands)]
        return needed

    def _read_features(self) -> list[dict[str, Any]]:
        if not self.geojson.is_file():
            raise DatasetNotFoundError(
                f"METER-ML {self.split} labels not found: {self.geojson} does not exist"
            )
        try:
            data = json.loads(self.geojson.read_text())
            features = data["features"]
            return [
                {"folder": str(f["properties"]["Image_Folder"]), "type": f["properties"]["Type"]}
                for f in features
            ]
        except (ValueError, KeyError, TypeError) as err:
            raise DatasetFileError(
                f"{self.geojson} is not a FeatureCollection whose features have "
                f"properties Image_Folder and Type: {err!r}"
            ) from err

    def _find_folder(self, folder: str, listings: dict[str, str]) -> str | None:
        """Folder relative to the root, or ``None``; bare ids are looked up in ``listings``."""
        rel = folder.replace("\\", "/").strip("/")
        if "/" in rel and (self.root / rel).is_dir():
            return rel
        return listings.get(rel.rsplit("/", 1)[-1])

    def _index(self) -> list[_Location]:
        features = self._read_features()
        parsed = [(f["folder"], f["type"], *self.parse_type(f["type"])) for f in features]
        listings: dict[str, str] = {}
        for d in reversed(self.split_dirs):
            if (self.root / d).is_dir():
                for child in (self.root / d).iterdir():
                    listings[child.name] = f"{d}/{child.name}"
        needed = [f.name for files in self._needed.values() for f in files]
        locations = []
        for folder, type_, label, hot in parsed:
            if not self.keep_negative and label == self.negative_class:
                continue
            rel = self._find_folder(folder, listings)
            if rel is None:
                self._skip(folder, f"folder not found under {', '.join(self.split_dirs)}")
                continue
            missing = [n for n in needed if not (self.root / rel / n).is_file()]
            if missing:
                self._skip(rel, f"missing {', '.join(missing)}")
                continue
            locations.append(_Location(rel, str(type_), label, hot))
        if self.skipped:
            ids = ", ".join(i for i, _ in self.skipped[: self.warn_ids])
            more = ", ..." if len(self.skipped) > self.warn_ids else ""
            warnings.warn(
                f"METER-ML {self.split}: left out {len(self.skipped)} of {len(parsed)} "
                f"locations listed in {self.geojson} ({self.skipped_summary()}): "
                f"{ids}{more}; see dataset.skipped",
                stacklevel=3,
            )
        return locations

    def _check_sizes(self, image_size: int | Mapping[str, int] | None) -> dict[str, int]:
        """Read every needed file's header; the size of each modality's tensors.

        Records in ``self._sizes`` the ``(height, width)`` of every file whose size is
        not the one most locations store that file at (``self._common``), and warns
        once, counting them.

        Raises:
            DatasetFileError: naming every unreadable or wrongly banded file.
            ConfigError: for a bad ``image_size``.
        """
        if isinstance(image_size, Mapping):
            unknown = sorted(set(image_size) - set(self.modalities))
            if unknown:
                raise ConfigError(
                    f"image_size: {unknown} not among the modalities {self.modalities}"
                )
            sizes = dict(image_size)
        else:
            sizes = dict.fromkeys(self.modalities, image_size) if image_size is not None else {}
        for m, v in sizes.items():
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"image_size of {m}: a positive number of pixels, got {v!r}")
        found: dict[tuple[int, str], tuple[int, int]] = {}
        bad: list[str] = []
        for i, loc in enumerate(self._locations):
            for files in self._needed.values():
                for f in files:
                    path = self.root / loc.folder / f.name
                    try:
                        h, w, c = _header_shape(path)
                    except DatasetFileError as err:
                        bad.append(str(err))
                        continue
                    if c != f.shape[2]:
                        bad.append(f"{path} has {c} channels, expected {f.shape[2]}")
                    found[i, f.name] = (h, w)
        if bad:
            more = f" and {len(bad) - self.warn_ids} more" if len(bad) > self.warn_ids else ""
            raise DatasetFileError(
                f"METER-ML {self.split}: {len(bad)} unusable file(s): "
                + "; ".join(bad[: self.warn_ids])
                + more
            )
        self._common: dict[str, tuple[int, int]] = {}
        for files in self._needed.values():
            for f in files:
                counts = Counter(v for (_, n), v in found.items() if n == f.name)
                self._common[f.name] = counts.most_common(1)[0][0] if counts else f.shape[:2]
        self._sizes = {k: v for k, v in found.items() if v != self._common[k[1]]}
        out = {}
        for m, files in self._needed.items():
            out[m] = sizes.get(m) or max(self._common[f.name][0] for f in files)
        if self._sizes:
            names = Counter(n for _, n in self._sizes)
            which = ", ".join(
                f"{k}: {n} ({self._common[k][0]} x {self._common[k][1]} elsewhere)"
                for k, n in names.items()
            )
            ids = ", ".join(
                f"{self._locations[i].folder}/{n}" for i, n in list(self._sizes)[: self.warn_ids]
            )
            warnings.warn(
                f"METER-ML {self.split}: {len(self._sizes)} of {len(found)} files are not "
                f"the size most locations store them at ({which}), e.g. {ids}; they are "
                f"resized to {', '.join(f'{m} {v} x {v}' for m, v in out.items())}",
                stacklevel=3,
            )
        return out

    def training_gsd(self) -> dict[str, float | None]:
        """Pixel size (m) of the returned tensors: the release's GSD scaled by the
        resizing (``image_size``)."""
        return self.gsd_for(self.modalities, {"image_size": self.image_size})

    @classmethod
    def gsd_for(
        cls, modalities: Sequence[str], options: Mapping[str, Any] | None = None
    ) -> dict[str, float | None]:
        """Pixel size (m) of ``modalities``' tensors for the given ``image_size`` option
        (the release's GSD when none is given)."""
        size = (options or {}).get("image_size")
        files = _array_files(load_manifest(cls.manifest_name).extra["files"]["arrays"])
        native = {m: max(f.shape[0] for f in fs) for m, fs in files.items()}
        out = {}
        for m in modalities:
            gsd, want = cls.gsd.get(m), size.get(m) if isinstance(size, Mapping) else size
            out[m] = gsd if gsd is None or not want else gsd * native[m] / want
        return out

    # -- samples -----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._locations)

    def __getitem__(self, index: int) -> Sample:
        """Load one location.

        Raises:
            DatasetFileError: for a corrupt or wrongly shaped file (naming it).
        """
        loc = self._locations[index]
        folder = self.root / loc.folder
        sample: Sample = {}
        nodata: dict[str, int] = {}
        for m in self.modalities:
            sample[m], nodata[m] = self._load_modality(index, folder, m)
        if self.multilabel:
            sample["label"] = torch.tensor(loc.multi_hot, dtype=torch.float32)
        else:
            sample["label"] = torch.tensor(loc.label, dtype=torch.int64)
        sample["meta"] = {
            "id": loc.folder,
            "type": loc.type,
            "nodata": nodata,
            "lonlat": folder_lonlat(loc.folder),
        }
        return sample

    def _read(self, index: int, folder: Path, f: _ArrayFile, size: int) -> torch.Tensor:
        """One file as a float32 ``C x size x size`` tensor, its shape checked against
        the header read when the dataset was built, resized if needed."""
        path = folder / f.name
        h, w = self._sizes.get((index, f.name), self._common[f.name])
        if path.suffix == ".npy":
            arr = read_npy(path, (h, w, f.shape[2]))
        else:
            arr = read_image(path, expected_channels=f.shape[2])
            if arr.shape[:2] != (h, w):
                raise DatasetFileError(
                    f"{path} is {arr.shape[0]} x {arr.shape[1]} pixels, expected "
                    f"{h} x {w} (its size when the dataset was built)"
                )
        x = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.float32))
        return _resize(x, size)

    def _load_modality(self, index: int, folder: Path, modality: str) -> tuple[torch.Tensor, int]:
        files = self._needed[modality]
        size = self.image_size[modality]
        if len(files) == 1 and files[0].bands == self.manifest.modality(modality).bands:
            return self._select(modality, self._read(index, folder, files[0], size))
        channels: dict[str, torch.Tensor] = {}
        for f in files:
            x = self._read(index, folder, f, size)
            keep = [i for i, b in enumerate(f.bands) if b in self.bands[modality]]
            channels.update(zip([f.bands[i] for i in keep], x[keep]))
        return fill_nonfinite(torch.stack([channels[b] for b in self.bands[modality]]))


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """``C x H x W`` to ``C x size x size`` (bilinear; antialiased when shrinking)."""
    if x.shape[-2:] == (size, size):
        return x
    shrink = x.shape[-1] > size or x.shape[-2] > size
    return F.interpolate(
        x[None], size=(size, size), mode="bilinear", align_corners=False, antialias=shrink
    )[0]


def _header_shape(path: Path) -> tuple[int, int, int]:
    """``(height, width, channels)`` of a ``.npy`` or image file from its header only.

    Raises:
        DatasetFileError: if the file cannot be read or is truncated (naming it).
    """
    if path.suffix == ".npy":
        try:
            with path.open("rb") as fh:
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
                else:
                    shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
                data_start = fh.tell()
        except (ValueError, OSError, EOFError) as err:
            raise DatasetFileError(f"cannot read array {path}: {err}") from err
        if dtype.hasobject:
            raise DatasetFileError(f"cannot read array {path}: it holds Python objects")
        if len(shape) != 3:
            raise DatasetFileError(f"{path} has shape {tuple(shape)}, expected (H, W, C)")
        size = data_start + int(np.prod(shape)) * dtype.itemsize
        if path.stat().st_size < size:
            raise DatasetFileError(
                f"cannot read array {path}: truncated ({path.stat().st_size} of {size} bytes)"
            )
        return int(shape[0]), int(shape[1]), int(shape[2])
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            w, h = img.size
            c = len(img.getbands())
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DatasetFileError(f"cannot read image {path}: {err}") from err
    return h, w, c


def _array_files(arrays: Mapping[str, Mapping[str, Any]]) -> dict[str, list[_ArrayFile]]:
    """``{modality: [files]}`` from the manifest's ``files.arrays`` entry, in file order."""
    out: dict[str, list[_ArrayFile]] = {}
    for name, spec in arrays.items():
        out.setdefault(spec["modality"], []).append(
            _ArrayFile(name, tuple(spec["shape"]), tuple(spec["bands"]))
        )
    return out


def _s2_by_resolution(files: Mapping[str, list[_ArrayFile]]) -> dict[str, _ArrayFile]:
    """``{"10m": file, "20m": file, "60m": file}`` of the Sentinel-2 files."""
    out = {}
    for f in files["s2"]:
        res = next((r for r in S2_RESOLUTIONS if f.name.endswith(f"-{r}.npy")), None)
        if res is None:
            raise ConfigError(f"cannot tell the resolution of Sentinel-2 file {f.name!r}")
        out[res] = f
    return out


def _resolve_s2_bands(spec: Sequence[str], s2_files: Mapping[str, _ArrayFile]) -> tuple[str, ...]:
    """Expand a ``s2_bands`` selection (band and resolution names) to band names.

    Raises:
        ValueError: for an unknown name, a repeated band or an empty selection.
    """
    if isinstance(spec, str):
        spec = (spec,)
    stored = [b for f in s2_files.values() for b in f.bands]
    out: list[str] = []
    for item in spec:
        if item in s2_files:
            out.extend(s2_files[item].bands)
        elif item in stored:
            out.append(item)
        else:
            raise ConfigError(
                f"s2_bands: unknown entry {item!r}; use resolutions "
                f"{', '.join(s2_files)} or bands {', '.join(stored)}"
            )
    if not out:
        raise ConfigError("s2_bands: empty selection")
    repeated = sorted({b for b in out if out.count(b) > 1})
    if repeated:
        raise ConfigError(f"s2_bands: band(s) {repeated} selected more than once in {list(spec)}")
    return tuple(out)


def folder_lonlat(folder: str) -> torch.Tensor:
    """``[lon, lat]`` (float32) of a Meter-ML location folder named ``<lat>_<lon>``
    (``train_images/train_images_1/42.3314_-83.0458``); NaN when it is not named so."""
    parts = folder.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1].split("_")
    try:
        lat, lon = (float(p) for p in parts)
    except ValueError:
        return torch.full((2,), float("nan"))
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return torch.full((2,), float("nan"))
    return torch.tensor([lon, lat], dtype=torch.float32)
