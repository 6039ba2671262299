"""Chips of a user's co-registered S1 / S2 / NAIP GeoTIFF stack, read through a manifest.

``rsmm manifest build`` writes a GeoParquet chip index (see
:mod:`rsmm.stacks.manifest`); :class:`CoRegisteredStack` reads it and, for each chip,
reads the chip's bounds from every modality's files at the modality's own GSD (a
600 m chip is 60 x 60 Sentinel pixels and 1000 x 1000 0.6 m NAIP pixels), in the
chip's own CRS (its UTM zone for per-zone manifests; a chip on its file's pixel grid
is the file's pixels exactly), with windowed reads through cached file handles.

A manifest may have optional modalities (NAIP over part of the area): by default the
dataset keeps only the chips covered by every modality it returns, so a batch never
lacks one, and warns how many chips that leaves. With ``min_modalities=k`` it keeps the
chips covered by at least ``k`` of them instead; a sample then lacks the key of each
modality that does not cover its chip (see :mod:`rsmm.datamodules.collate`).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rsmm.datasets.base import MultiModalDataset, Sample
from rsmm.datasets.geometa import days_since_epoch, to_lonlat
from rsmm.errors import ConfigError, NoCoveredChipsError
from rsmm.manifests import DatasetManifest
from rsmm.stacks.build import build_manifest
from rsmm.stacks.files import band_path
from rsmm.stacks.labels import multi_hot
from rsmm.stacks.manifest import ChipManifest, coverage, read_manifest
from rsmm.stacks.products import offset_shifts
from rsmm.stacks.spec import parse_length, spec_from_dirs
from rsmm.stacks.splits import SPLITS
from rsmm.stacks.windows import read_window, window_transform


class CoRegisteredStack(MultiModalDataset):
    """A user stack's chips as rsmm samples.

    Samples are ``{modality: float32 C x H x W, "label": int64, "meta": {"id", "nodata",
    "lonlat", "date"}}`` with values as stored (dB or linear S1, reflectance x 1e4 S2,
    NAIP digital numbers); pixels missing in the files are filled (band mean) and
    counted in ``meta["nodata"]``. The label is ``-1`` for unlabelled chips; of a
    multi-label manifest (``"multilabel": true``, :mod:`rsmm.stacks.labels`) it is a
    float32 multi-hot vector over the manifest's classes (:attr:`multilabel`).
    ``meta["lonlat"]`` is the chip centre in degrees and ``meta["date"]`` the acquisition
    date (days since 1970-01-01) of the first modality that has one in the manifest,
    both float32 tensors (see :mod:`rsmm.datasets.geometa`); ``date`` is left out when
    the manifest has no dates.

    Args:
        manifest_or_dirs: a chip manifest (``.parquet`` path or
            :class:`~rsmm.stacks.manifest.ChipManifest`), or ``{modality: folder}`` to
            build one in memory (with ``chip_size`` and ``**build_kwargs``).
        split: ``"train"``, ``"val"``, ``"test"`` or ``None`` for every chip.
        modalities: modality keys to return (default: all of the manifest); only the
            chips covered by all of them are kept (see the manifest's ``modalities``
            column; the left-out chips are in :attr:`skipped`).
        bands: optional ``{modality: band names}`` subsets.
        chip_size: with folders, the chip size (``"640m"``, ``"64px"`` of the
            reference modality, Sentinel-2 if present); with a manifest, an optional
            check that it has this size (same syntax).
        min_modalities: keep the chips covered by at least this many of
            ``modalities`` (a sample lacks the key of each modality not covering its
            chip, and batches carry ``"presence"``); ``None`` = all of them.
        **build_kwargs: with folders, more :class:`~rsmm.stacks.spec.StackSpec` fields.

    Raises:
        FileNotFoundError: for a missing manifest.
        ValueError: for an unknown split or modality, or a chip size that differs.
        NoCoveredChipsError: when the split has chips but none is covered by every
            requested modality.
    """

    def __init__(
        self,
        manifest_or_dirs: str | Path | ChipManifest | Mapping[str, str | Path],
        split: str | None = None,
        modalities: Sequence[str] | None = None,
        bands: Mapping[str, Sequence[str]] | None = None,
        chip_size: str | float | None = None,
        min_modalities: int | None = None,
        **build_kwargs: Any,
    ) -> None:
        if isinstance(manifest_or_dirs, ChipManifest):
            chips = manifest_or_dirs
        elif isinstance(manifest_or_dirs, Mapping):
            spec = spec_from_dirs(manifest_or_dirs, chip_size=chip_size or "600m", **build_kwargs)
            chips = build_manifest(spec)
        else:
            chips = read_manifest(manifest_or_dirs)
            if chip_size is not None:
                _check_chip_size(chip_size, chips, manifest_or_dirs)
        if split is not None and split not in SPLITS:
            raise ConfigError(f"split must be one of {', '.join(SPLITS)} or None, got {split!r}")
        self.chip_manifest = chips
        self.split = split
        super().__init__(modalities or chips.modalities, bands)
        self.min_modalities = _check_min_modalities(min_modalities, self.modalities)
        self.may_lack_modalities = self.min_modalities < len(self.modalities) and any(
            m in chips.optional for m in self.modalities
        )
        rows = chips.chips
        if split is not None:
            rows = rows[(rows["split"] == split).to_numpy()]
        self.chips = self._covered(rows, chips).reset_index(drop=True)
        self.crs: str = chips.meta["crs"]
        self.chip_size_m: float = float(chips.meta["chip_size_m"])
        info = chips.meta["modalities"]
        # each chip's square in its own CRS (the manifest's CRS for one-CRS manifests)
        self._bounds = [tuple(b) for b in self.chips[["xmin", "ymin", "xmax", "ymax"]].to_numpy()]
        self._crs: list[str] = self.chips["crs"].astype(str).tolist()
        self._ids = self.chips["chip_id"].astype(str).tolist()
        self._labels = self.chips["label"].to_numpy(dtype=np.int64)
        #: multi-hot float32 labels of a multi-label manifest (BCE and AP metrics)
        self.multilabel: bool = bool(chips.meta.get("multilabel"))
        if self.multilabel:
            self._labels = multi_hot(self.chips["labels"], len(chips.classes))
        have = coverage(self.chips)
        self._presence = {m: np.array([m in h for h in have], dtype=bool) for m in self.modalities}
        self._lonlat, self._dates = self._geometa()
        self._read: dict[str, dict[str, Any]] = {}
        for m in self.modalities:
            bands_m = info[m]["bands"]
            files = [json.loads(v) for v in self.chips[f"files_{m}"]]
            if info[m]["separate_files"]:
                files = [[[band_path(p, b) for b in bands_m] for p in f] for f in files]
            self._read[m] = {
                "files": files,
                "size": int(info[m]["chip_pixels"]),
                "nodata": info[m].get("nodata"),
                "resampling": info[m].get("resampling", "nearest"),
                "indexes": info[m].get("band_indexes"),
                "offset": float(info[m].get("offset") or 0.0),
                "file_offsets": info[m].get("file_offsets"),
            }

    def _covered(self, rows: Any, chips: ChipManifest) -> Any:
        """The chips of ``rows`` covered by every modality of :attr:`modalities` (by at
        least :attr:`min_modalities` of them when that is fewer)."""
        optional = [m for m in self.modalities if m in chips.optional]
        if not optional or not len(rows):
            return rows
        have = coverage(rows)
        need = self.min_modalities
        keep = np.array([len(set(self.modalities) & h) >= need for h in have], dtype=bool)
        for cid, h, k in zip(rows["chip_id"], have, keep):
            if not k:
                self._skip(str(cid), "not covered by " + ", ".join(sorted(set(optional) - h)))
        where = f"{chips.path or 'the chip manifest'}" + (
            f" (split {self.split})" if self.split else ""
        )
        wanted = "every requested modality (" + ", ".join(self.modalities) + ")"
        if need < len(self.modalities):
            wanted = f"at least {need} of the requested modalities ({', '.join(self.modalities)})"
        if not keep.any():
            counts = ", ".join(f"{m} covers {sum(m in h for h in have)}" for m in optional)
            raise NoCoveredChipsError(
                f"none of the {len(rows)} chips of {where} is covered by "
                f"{wanted}: {counts}; leave {', '.join(optional)} out of "
                "modalities"
            )
        if not keep.all():
            warnings.warn(
                f"CoRegisteredStack: {int(keep.sum())} of the {len(rows)} chips of {where} "
                f"are covered by {wanted}; "
                f"{self.skipped_summary()}",
                UserWarning,
                stacklevel=3,
            )
        return rows[keep]

    def _geometa(self) -> tuple[np.ndarray, np.ndarray | None]:
        """``N x 2`` float32 chip centres in lon/lat, and ``N`` float32 acquisition days
        since 1970-01-01 (the first of :attr:`modalities` with a date; NaN where none
        has one), ``None`` when the manifest has no dates."""
        centres = np.array([((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for b in self._bounds])
        if not len(centres):
            return np.zeros((0, 2), np.float32), None
        lonlat = np.zeros((len(centres), 2), np.float32)
        crs_of = np.asarray(self._crs)
        for crs in np.unique(crs_of):
            at = crs_of == crs
            lonlat[at] = to_lonlat(str(crs), centres[at, 0], centres[at, 1])
        columns = [f"date_{m}" for m in self.modalities if f"date_{m}" in self.chips.columns]
        if not columns:
            return lonlat, None
        dates = np.full(len(self.chips), np.nan, np.float32)
        for col in reversed(columns):  # the first modality's date wins
            days = np.array(
                [days_since_epoch(v) if isinstance(v, str) else np.nan for v in self.chips[col]],
                np.float32,
            )
            dates = np.where(np.isnan(days), dates, days)
        return lonlat, dates

    def _load_manifest(self) -> DatasetManifest:
        return self.chip_manifest.dataset_manifest()

    def training_gsd(self) -> dict[str, float | None]:
        """The stack's target GSD: chip metres over chip pixels of each modality."""
        size_m = float(self.chip_manifest.meta["chip_size_m"])
        info = self.chip_manifest.meta["modalities"]
        return {m: size_m / int(info[m]["chip_pixels"]) for m in self.modalities}

    def __len__(self) -> int:
        return len(self._ids)

    def targets(self) -> np.ndarray:
        return self._labels.copy()

    def presence(self) -> dict[str, np.ndarray] | None:
        """``{modality: N booleans}`` from the manifest's ``modalities`` column when
        samples may lack a modality (``min_modalities``), else ``None``."""
        if not self.may_lack_modalities:
            return None
        return {m: v.copy() for m, v in self._presence.items()}

    def modality_shape(self, modality: str) -> tuple[int, ...]:
        """``C x H x W`` of the modality's chips (from the manifest)."""
        size = self._read[modality]["size"]
        return (len(self.bands[modality]), size, size)

    def read_raw(self, index: int) -> dict[str, tuple[np.ndarray, Any]]:
        """``{modality: (C x H x W float32 array with NaN for nodata, affine transform)}``.

        All stored bands, in the chip's own CRS (its ``crs`` column);
        ``transform * (col, row)`` gives the ground coordinates of a pixel corner.
        """
        if not 0 <= index < len(self):
            raise IndexError(f"chip index {index} out of range for {len(self)} chips")
        bounds = self._bounds[index]
        out = {}
        for m in self.modalities:
            if not self._presence[m][index]:  # the modality does not cover the chip
                continue
            r = self._read[m]
            arr = read_window(
                r["files"][index],
                bounds,
                r["size"],
                self._crs[index],
                r["nodata"],
                r["resampling"],
                indexes=r["indexes"],
                shifts=offset_shifts(r["files"][index], r["offset"], r["file_offsets"]),
            )
            out[m] = (arr, window_transform(bounds, r["size"]))
        return out

    def __getitem__(self, index: int) -> Sample:
        sample: Sample = {}
        nodata = {}
        for m, (arr, _) in self.read_raw(index).items():
            sample[m], nodata[m] = self._select(m, arr)
        sample["label"] = torch.tensor(
            self._labels[index], dtype=torch.float32 if self.multilabel else torch.int64
        )
        sample["meta"] = {
            "id": self._ids[index],
            "nodata": nodata,
            "lonlat": torch.from_numpy(self._lonlat[index].copy()),
        }
        if self._dates is not None:
            sample["meta"]["date"] = torch.tensor(self._dates[index])
        return sample


def _check_min_modalities(value: int | None, modalities: Sequence[str]) -> int:
    """``min_modalities`` checked (``None``: every requested modality)."""
    if value is None:
        return len(modalities)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= len(modalities):
        raise ConfigError(
            f"min_modalities must be an integer in [1, {len(modalities)}] (the number of "
            f"requested modalities {', '.join(modalities)}), got {value!r}"
        )
    return value


def _check_chip_size(chip_size: str | float, chips: ChipManifest, source: Any) -> None:
    """Raise unless ``chip_size`` (``"640m"``, ``"64px"``, ``640``) is the manifest's."""
    value, unit = parse_length(chip_size, "chip_size")
    info, size = chips.meta["modalities"], float(chips.meta["chip_size_m"])
    if unit == "px":
        ref = chips.meta.get("reference")
        if ref not in info:  # manifests written before "reference" was stored
            ref = next((m for m, i in info.items() if i["sensor"] == "s2"), next(iter(info)))
        value *= float(info[ref]["gsd"])
    if abs(value - size) > 1e-6 * size:
        px = ", ".join(f"{m} {i['chip_pixels']} px" for m, i in info.items())
        raise ConfigError(
            f"chip_size: {chip_size} differs from the manifest's {size:g} m ({px}) "
            f"({source}); rebuild it"
        )
