"""BigEarthNet v1 and v2 (reBEN): co-registered Sentinel-1 / Sentinel-2 patches, multi-label.

Sumbul et al., "BigEarthNet: A Large-Scale Benchmark Archive for Remote Sensing Image
Understanding", IGARSS 2019 (https://doi.org/10.1109/IGARSS.2019.8900532); Sumbul et al.,
"BigEarthNet-MM", IEEE GRSM 2021; Clasen et al., "reBEN: Refined BigEarthNet Dataset for
Remote Sensing Image Analysis", arXiv:2407.03653 (v2). Data licence CDLA-Permissive-1.0.

On-disk layouts (the ones :class:`torchgeo.datasets.BigEarthNet` / ``BigEarthNetV2``
read; folder and file names come from the packaged manifest,
``rsmm/data_manifests/bigearthnet.json``)::

    v1: root/bigearthnet-{train,val,test}.csv            "<S2 patch>,<S1 patch>" per line
        root/BigEarthNet-v1.0/<S2 patch>/<S2 patch>_B??.tif, <S2 patch>_labels_metadata.json
        root/BigEarthNet-S1-v1.0/<S1 patch>/<S1 patch>_V?.tif
        root/patches_with_seasonal_snow.csv, patches_with_cloud_and_shadow.csv (optional)
    v2: root/metadata.parquet       patch_id, labels, split, s1_name[, country, contains_*]
        root/BigEarthNet-S2/<S2 product>/<S2 patch>/<S2 patch>_B??.tif
        root/BigEarthNet-S1/<S1 product>/<S1 patch>/<S1 patch>_V?.tif
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from rsmm.datasets.base import MultiModalDataset, Sample
from rsmm.datasets.geometa import date_tensor, raster_centre_lonlat
from rsmm.errors import ConfigError, DatasetFileError, DatasetNotFoundError
from rsmm.io import fill_nonfinite, require_dir
from rsmm.manifests import load_manifest

#: The official recommendations (Sumbul et al.; reBEN), left out by default.
EXCLUSIONS = ("seasonal_snow", "cloud_or_shadow", "no_19_class_label")
_REASONS = {
    "seasonal_snow": "seasonal snow (official recommendation)",
    "cloud_or_shadow": "cloud or cloud shadow (official recommendation)",
    "no_19_class_label": "no label of the 19-class nomenclature",
}


@dataclass(frozen=True)
class _Patch:
    """An indexed patch: its folders, its labels as stored and what is known about it."""

    s2: str
    s1: str
    dirs: tuple[tuple[str, Path], ...]
    labels: tuple[str, ...]
    country: str


def acquisition_date(patch: str) -> str:
    """``YYYY-MM-DD`` of a Sentinel-1 or Sentinel-2 patch name (the part before ``T``)."""
    for part in patch.split("_"):
        if len(part) > 8 and part[8] == "T" and part[:8].isdigit():
            return f"{part[:4]}-{part[4:6]}-{part[6:8]}"
    return ""


class BigEarthNet(MultiModalDataset):
    """BigEarthNet v1 or v2: ``"s1"`` (VV, VH in dB) and ``"s2"`` (12 L2A bands) patches.

    Every band is returned on the 120 x 120 grid of the 10 m bands: the 20 m and 60 m
    Sentinel-2 bands are resampled bilinearly on reading, as TorchGeo's BigEarthNet does
    (10 m bands and Sentinel-1 are read as stored). ``"label"`` is a float32 multi-hot
    vector over the 19-class nomenclature (default) or, for v1, the 43 CORINE level-3
    classes (:attr:`classes`), mapped with the published 43 -> 19 table (manifest key
    ``clc43_to_19``). ``"meta"`` holds ``id`` (Sentinel-2 patch name), ``s1_id``,
    ``s2_date``/``s1_date`` (``YYYY-MM-DD``, from the patch names), ``country`` (v2's
    metadata; ``""`` when unknown), ``nodata`` (filled non-finite pixels per modality),
    ``lonlat`` (float32 ``[lon, lat]`` of the patch centre, from the GeoTIFF header of
    the first band read) and ``date`` (float32, the Sentinel-2 acquisition in days since
    1970-01-01; see :mod:`rsmm.datasets.geometa`).

    Left out when indexing, recorded in :attr:`skipped` and summarised in one warning:
    the patches the official recommendations exclude (``exclude``: seasonal snow and
    cloud/shadow as listed by the data, patches without any 19-class label) and
    patches whose Sentinel-1 or Sentinel-2 folder is missing. A v1 root without the
    exclusion lists relies on the split files (the official BigEarthNet-MM splits
    already leave those patches out). A label outside the nomenclature is an error
    naming the patch.

    Example:
        >>> ds = BigEarthNet("data/bigearthnet", split="train", version=2)
        >>> ds[0]["s2"].shape, ds[0]["label"].shape
        (torch.Size([12, 120, 120]), torch.Size([19]))
    """

    manifest_name: ClassVar[str] = "bigearthnet"
    #: every band is returned on the 10 m grid (120 x 120 pixels)
    gsd: ClassVar[dict[str, float | None]] = {"s1": 10.0, "s2": 10.0}
    splits: ClassVar[tuple[str, ...]] = ("train", "val", "test")
    #: labels are multi-hot (read by the fine-tuning task: BCE and AP metrics)
    multilabel: ClassVar[bool] = True
    #: How many left-out patch names the warning names.
    warn_ids: ClassVar[int] = 5

    def __init__(
        self,
        root: str | Path = "data",
        split: str = "train",
        version: int | None = None,
        modalities: Sequence[str] = ("s1", "s2"),
        num_classes: int = 19,
        s2_bands: Sequence[str] | None = None,
        bands: Mapping[str, Sequence[str]] | None = None,
        transforms: Callable[[Sample], Sample] | None = None,
        exclude: Sequence[str] = EXCLUSIONS,
    ) -> None:
        """Index one official split.

        Args:
            root: dataset root (see the module docstring for both layouts).
            split: ``"train"``, ``"val"`` or ``"test"``.
            version: 1 (BigEarthNet / BigEarthNet-MM) or 2 (reBEN); ``None``: 2 when the
                root holds ``metadata.parquet``, else 1.
            modalities: modality keys to return, from ``("s1", "s2")``.
            num_classes: 19 (the nomenclature of Sumbul et al. 2020) or 43 (CORINE
                level 3, v1 only).
            s2_bands: Sentinel-2 bands to return, in order (default: all 12).
            bands: optional ``{modality: band names}`` (``s2`` only if ``s2_bands`` is
                not given).
            transforms: optional function applied to every sample dict.
            exclude: recommendations to apply, any of :data:`EXCLUSIONS`.

        Raises:
            ConfigError: for an unknown split, version, class count, band or exclusion.
            DatasetNotFoundError: if the root, a split file or the metadata is missing.
            DatasetFileError: for a label outside the nomenclature (naming the patch).
        """
        if split not in self.splits:
            raise ConfigError(f"split must be one of {list(self.splits)}, got {split!r}")
        files = load_manifest(self.manifest_name).extra["files"]
        if version is None:
            version = 2 if (Path(root) / files["v2"]["metadata"]).is_file() else 1
        if version not in (1, 2):
            raise ConfigError(f"version must be 1 or 2, got {version!r}")
        if num_classes not in (19, 43):
            raise ConfigError(f"num_classes must be 19 or 43, got {num_classes!r}")
        if version == 2 and num_classes == 43:
            raise ConfigError("num_classes=43: BigEarthNet v2 labels use the 19 classes only")
        if isinstance(modalities, str):
            modalities = (modalities,)
        unknown = sorted(set(exclude) - set(EXCLUSIONS))
        if unknown:
            raise ConfigError(f"exclude: unknown {unknown}; choose from {list(EXCLUSIONS)}")
        bands = dict(bands or {})
        if s2_bands is not None and "s2" in modalities:
            if "s2" in bands:
                raise ConfigError("give the Sentinel-2 bands either as s2_bands or bands['s2']")
            bands["s2"] = list(s2_bands)
        super().__init__(modalities, bands)
        self.root = require_dir(root, "BigEarthNet root")
        self.split, self.version, self.num_classes = split, version, num_classes
        self.transforms = transforms
        self.exclude = tuple(exclude)
        self._files: dict[str, Any] = files
        self.classes_43: list[str] = list(self._files["classes_43"])
        self.to_19: dict[str, str | None] = dict(self._files["clc43_to_19"])
        if num_classes == 43:
            self.classes = list(self.classes_43)
        self._index = {c: i for i, c in enumerate(self.classes)}
        self._patches = self._index_v1() if version == 1 else self._index_v2()
        self._warn_skipped()

    # -- indexing ------------------------------------------------------------------------

    def _index_v1(self) -> list[_Patch]:
        layout = self._files["v1"]
        csv = self.root / layout["split_csv"].format(split=self.split)
        if not csv.is_file():
            raise DatasetNotFoundError(f"BigEarthNet v1 split file not found: {csv}")
        listed: dict[str, set[str]] = {}
        for key, name in layout["exclusion_lists"].items():
            if key in self.exclude and (self.root / name).is_file():
                listed[key] = set((self.root / name).read_text().split())
        patches = []
        for n, line in enumerate(csv.read_text().splitlines(), 1):
            names = [p.strip() for p in line.split(",") if p.strip()]
            if not names:
                continue
            if "s1" in self.modalities and len(names) < 2:
                raise ConfigError(
                    f"{csv}, line {n}: no Sentinel-1 patch name; loading s1 needs "
                    "'<S2 patch>,<S1 patch>' lines (the BigEarthNet-MM split files)"
                )
            s2, s1 = names[0], names[1] if len(names) > 1 else ""
            reason = next((k for k, ids in listed.items() if s2 in ids), None)
            if reason is not None:
                self._skip(s2, _REASONS[reason])
                continue
            dirs = {
                "s2": self.root / layout["s2_dir"] / s2,
                "s1": self.root / layout["s1_dir"] / s1,
            }
            label_file = dirs["s2"] / layout["labels"].format(patch=s2)
            if not label_file.is_file():
                self._skip(s2, "no Sentinel-2 patch (or its labels file)")
                continue
            try:
                labels = json.loads(label_file.read_text())["labels"]
            except (ValueError, KeyError, TypeError) as err:
                raise DatasetFileError(
                    f"cannot read the labels of {s2} in {label_file}: {err}"
                ) from err
            patch = self._patch(s2, s1, dirs, labels, "", str(label_file))
            if patch is not None:
                patches.append(patch)
        return patches

    def _index_v2(self) -> list[_Patch]:
        import pandas as pd  # only for v2's parquet

        layout = self._files["v2"]
        path = self.root / layout["metadata"]
        if not path.is_file():
            raise DatasetNotFoundError(f"BigEarthNet v2 metadata not found: {path}")
        try:
            df = pd.read_parquet(path)
        except (OSError, ValueError) as err:
            raise DatasetFileError(f"cannot read BigEarthNet v2 metadata {path}: {err}") from err
        missing = sorted({"patch_id", "labels", "split", "s1_name"} - set(df.columns))
        if missing:
            raise DatasetFileError(f"{path} lacks the column(s) {missing}")
        df = df[df["split"] == layout["split_names"][self.split]]
        flags = {
            k: c
            for k, c in layout["exclusion_columns"].items()
            if k in self.exclude and c in df.columns
        }
        patches = []
        for row in df.to_dict("records"):
            s2, s1 = str(row["patch_id"]), str(row["s1_name"])
            reason = next((k for k, c in flags.items() if bool(row[c])), None)
            if reason is not None:
                self._skip(s2, _REASONS[reason])
                continue
            dirs = {
                "s2": self.root / layout["s2_dir"] / s2.rsplit("_", 2)[0] / s2,
                "s1": self.root / layout["s1_dir"] / s1.rsplit("_", 3)[0] / s1,
            }
            country = "" if row.get("country") is None else str(row["country"])
            patch = self._patch(s2, s1, dirs, list(row["labels"]), country, str(path))
            if patch is not None:
                patches.append(patch)
        return patches

    def _patch(
        self,
        s2: str,
        s1: str,
        dirs: dict[str, Path],
        labels: list[str],
        country: str,
        source: str,
    ) -> _Patch | None:
        """Check a listed patch's labels and folders: the patch, or ``None`` if left out."""
        known = self.classes_43 if self.version == 1 else self.classes
        for name in labels:
            if name not in known:
                raise DatasetFileError(
                    f"BigEarthNet patch {s2} ({source}) has label {name!r}, which is not in "
                    f"the {len(known)}-class nomenclature"
                )
        in_19 = [self.to_19[c] for c in labels] if self.version == 1 else labels
        if "no_19_class_label" in self.exclude and not any(in_19):
            self._skip(s2, _REASONS["no_19_class_label"])
            return None
        for m in self.modalities:
            if not dirs[m].is_dir():
                self._skip(s2, f"no Sentinel-{m[1]} patch folder")
                return None
        kept = tuple((m, dirs[m]) for m in self.modalities)
        return _Patch(s2, s1, kept, tuple(labels), country)

    def _warn_skipped(self) -> None:
        if self.skipped:
            names = ", ".join(i for i, _ in self.skipped[: self.warn_ids])
            more = "" if len(self.skipped) <= self.warn_ids else ", ..."
            warnings.warn(
                f"BigEarthNet v{self.version} {self.split} ({self.root}): "
                f"{self.skipped_summary()} ({names}{more})",
                UserWarning,
                stacklevel=3,
            )

    # -- labels ------------------------------------------------------------------------

    @property
    def ids(self) -> list[str]:
        """Sentinel-2 patch name of every sample."""
        return [p.s2 for p in self._patches]

    def multi_hot(self, labels: Sequence[str]) -> np.ndarray:
        """Float32 multi-hot vector over :attr:`classes` of stored label names."""
        out = np.zeros(len(self.classes), dtype=np.float32)
        for name in labels:
            target = self.to_19[name] if self.version == 1 and self.num_classes == 19 else name
            if target is not None:
                out[self._index[target]] = 1.0
        return out

    def targets(self) -> np.ndarray:
        """``(N, num_classes)`` float32 multi-hot labels, without reading images."""
        rows = [self.multi_hot(p.labels) for p in self._patches]
        return np.stack(rows) if rows else np.zeros((0, len(self.classes)), np.float32)

    # -- samples -------------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of indexed patches."""
        return len(self._patches)

    def band_files(self, index: int, modality: str) -> list[Path]:
        """Files of the selected bands of ``modality`` for sample ``index``, in order."""
        patch = self._patches[index]
        folder = dict(patch.dirs)[modality]
        name = patch.s2 if modality == "s2" else patch.s1
        pattern = self._files["band_file"]
        return [folder / pattern.format(patch=name, band=b) for b in self.bands[modality]]

    def _read_band(self, path: Path) -> np.ndarray:
        """One band file on the 120 x 120 grid (bilinear when stored coarser)."""
        import rasterio
        from rasterio.enums import Resampling
        from rasterio.errors import RasterioError

        size = int(self._files["patch_size"])
        if not path.is_file():
            raise DatasetFileError(f"missing file: {path}")
        try:
            with rasterio.open(path) as src:
                if src.count != 1:
                    raise DatasetFileError(f"{path} has {src.count} bands, expected 1")
                return src.read(1, out_shape=(size, size), resampling=Resampling.bilinear)
        except (RasterioError, OSError) as err:
            raise DatasetFileError(f"cannot read GeoTIFF {path}: {err}") from err

    def __getitem__(self, index: int) -> Sample:
        """Return sample ``index`` as ``{"s1", "s2", "label", "meta"}``.

        Raises:
            DatasetFileError: naming a band file that is missing or unreadable.
        """
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        patch = self._patches[index]
        sample: Sample = {}
        nodata: dict[str, int] = {}
        for m in self.modalities:
            stack = np.stack([self._read_band(f) for f in self.band_files(index, m)])
            sample[m], nodata[m] = fill_nonfinite(torch.from_numpy(stack.astype(np.float32)))
        sample["label"] = torch.from_numpy(self.multi_hot(patch.labels))
        sample["meta"] = {
            "id": patch.s2,
            "s1_id": patch.s1,
            "s2_date": acquisition_date(patch.s2),
            "s1_date": acquisition_date(patch.s1),
            "country": patch.country,
            "nodata": nodata,
            "lonlat": raster_centre_lonlat(self.band_files(index, self.modalities[0])[0]),
            "date": date_tensor(acquisition_date(patch.s2)),
        }
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample
