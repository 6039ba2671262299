"""Streaming shards: a dataset's samples written once with LitData, read without decoding.

``rsmm manifest shard chips.parquet --out shards/`` reads every chip of a stack
(:class:`~rsmm.datasets.CoRegisteredStack`: every modality at its own GSD, label,
meta) once and writes it with LitData's ``optimize`` into binary chunks, one folder
per split (``shards/train``, ``shards/val``, ``shards/test``), beside a
``rsmm-shards.json`` holding what a dataset needs without reading a chunk: the
dataset manifest (classes, bands, units, band statistics), the modalities and the
labels of every sample. :class:`ShardDataset` reads a split folder (or an object-store
URI, ``s3://bucket/shards/train``, ``gs://...``, with the credentials LitData takes)
into the very sample dicts the source dataset returned, bit for bit.

Records hold rsmm's float32 samples by default: read without a conversion, they are the
fastest from a local disk or the page cache. With ``dtypes="source"`` (``rsmm manifest
shard --dtypes source``) each modality is stored in its source files' dtype when that is
an integer one smaller than float32 (Sentinel-2 uint16, NAIP uint8; Sentinel-1 dB stays
float32), with the pixels of the float32 sample it does not hold exactly beside it:
0.57x (S1 + S2) and 0.26x (NAIP) the bytes, for object stores and full disks. Indexing
converts them to the float32 sample; the training loaders' stream
(``streaming(convert=False)``) leaves them to the collate function, which converts
them while writing the batch (no per-sample float32 tensor, see
``benchmarks/shards.py``). The dtypes are recorded in :data:`SHARDS_INFO` (see
:mod:`rsmm.datasets.shard_records`: the record layout, absent modalities). Shards
written before dtypes were recorded (format 1, float32 throughout) read as they did.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rsmm.atomic import atomic_dir
from rsmm.datasets.base import MultiModalDataset, Sample
from rsmm.datasets.shard_records import (
    RecordDecoder,
    dtype_name,
    encode_sample,
    storage_dtype,
)
from rsmm.errors import ConfigError, DatasetFileError
from rsmm.manifests import DatasetManifest, parse_manifest

#: The file beside LitData's ``index.json`` that describes a split's shards.
SHARDS_INFO = "rsmm-shards.json"
#: Version of the record layout written by :func:`write_shards`.
SHARDS_FORMAT = 2
#: The formats :class:`ShardDataset` reads (1: float32 records, no ``"dtypes"``).
READABLE_FORMATS = (1, 2)
_REMOTE = ("s3://", "gs://", "azure://", "hf://", "http://", "https://")


class MissingShardsError(DatasetFileError):
    """A folder or URI without :data:`SHARDS_INFO` (no shards written there)."""


def is_remote(root: str | Path) -> bool:
    """Whether ``root`` is an object-store URI rather than a local folder."""
    return str(root).startswith(_REMOTE)


def _join(root: str | Path, *parts: str) -> str:
    return "/".join([str(root).rstrip("/"), *parts]) if is_remote(root) else str(Path(root, *parts))


class _Encoder:
    """``index -> record`` of a dataset, for LitData's ``optimize`` workers."""

    def __init__(
        self,
        dataset: MultiModalDataset,
        channels: Mapping[str, int],
        dtypes: Mapping[str, torch.dtype],
    ) -> None:
        self.dataset = dataset
        self.channels = dict(channels)
        self.dtypes = dict(dtypes)
        self.pid = os.getpid()

    def __call__(self, index: int) -> dict[str, Any]:
        if os.getpid() != self.pid:  # a forked worker: torch's OpenMP pool, started in
            torch.set_num_threads(1)  # the parent, would hang its parallel ops here
            self.pid = os.getpid()
        return encode_sample(self.dataset[index], self.channels, self.dtypes)


def source_dtypes(dataset: MultiModalDataset) -> dict[str, torch.dtype]:
    """``{modality: dtype of its records}``: the dtype of a stack's files (all of the
    modality's files promoted to one) where :func:`storage_dtype` keeps it, else
    float32 (every modality of a dataset other than a
    :class:`~rsmm.datasets.CoRegisteredStack`)."""
    from rsmm.datasets.stacks import CoRegisteredStack

    if not isinstance(dataset, CoRegisteredStack):
        return {m: torch.float32 for m in dataset.modalities}
    return {m: storage_dtype(_files_dtype(dataset, m)) for m in dataset.modalities}


def _files_dtype(stack: Any, modality: str) -> np.dtype:
    """The dtype that holds the values of every file a stack reads for ``modality``
    (float32 when it reads none)."""
    from rsmm.stacks.files import band_path
    from rsmm.stacks.windows import open_cached

    info = stack.chip_manifest.meta["modalities"][modality]
    first_band = info["bands"][0]
    paths = {p for files in stack.chips[f"files_{modality}"] for p in json.loads(files)}
    dtype = None
    for path in sorted(paths):
        src = open_cached(band_path(path, first_band) if info["separate_files"] else path)
        for d in src.dtypes:
            dtype = np.dtype(d) if dtype is None else np.promote_types(dtype, d)
    return np.dtype(np.float32) if dtype is None else dtype


# -- writing -------------------------------------------------------------------------


def write_shards(
    dataset: MultiModalDataset,
    out: str | Path,
    chunk_bytes: str | int = "256MB",
    num_workers: int = 1,
    source: str = "",
    dtypes: Mapping[str, torch.dtype] | str = "float32",
) -> Path:
    """Write every sample of ``dataset`` to ``out`` (LitData chunks + :data:`SHARDS_INFO`).

    Workers are forked (each reads its share of samples through its own file handles);
    the order of the samples is kept. The chunks are written into a temporary folder
    beside ``out`` that becomes ``out`` once complete (a failed or killed run leaves no
    partial shards).

    Args:
        dataset: the samples (all of its modalities and bands are written).
        out: a new or empty local folder.
        chunk_bytes: chunk size (``"256MB"``, or bytes).
        num_workers: processes reading and writing samples.
        source: where the samples come from (recorded in :data:`SHARDS_INFO`).
        dtypes: ``{modality: dtype of the records}``, ``"float32"`` (every modality:
            the layout of format 1, the fastest to read) or ``"source"``
            (:func:`source_dtypes`: the fewest bytes).

    Returns:
        ``out``.

    Raises:
        ConfigError: ``out`` is a file or a non-empty folder, ``dataset`` is empty, or
            ``dtypes`` is an unknown name.
    """
    from litdata import optimize

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out: {out} exists and is not an empty folder")
    if len(dataset) == 0:
        raise ConfigError(f"no samples to write to {out} ({source or type(dataset).__name__})")
    channels = {m: len(dataset.bands[m]) for m in dataset.modalities}
    dtypes = _record_dtypes(dataset, dtypes)
    with atomic_dir(out) as tmp:
        previous = multiprocessing.get_start_method(allow_none=True)
        try:
            optimize(
                fn=_Encoder(dataset, channels, dtypes),
                inputs=list(range(len(dataset))),
                output_dir=str(tmp.absolute()),
                chunk_bytes=chunk_bytes,
                num_workers=num_workers,
                keep_data_ordered=True,
                start_method="fork",
                verbose=False,
            )
        finally:  # optimize() sets the start method of the whole process
            multiprocessing.set_start_method(previous, force=True)
        (tmp / SHARDS_INFO).write_text(json.dumps(_info(dataset, source, dtypes)))
    return out


#: The names :func:`write_shards` takes for its ``dtypes``.
DTYPE_LAYOUTS = ("float32", "source")


def _record_dtypes(
    dataset: MultiModalDataset, dtypes: Mapping[str, torch.dtype] | str
) -> dict[str, torch.dtype]:
    if not isinstance(dtypes, str):
        return dict(dtypes)
    if dtypes not in DTYPE_LAYOUTS:
        raise ConfigError(f"--dtypes: {dtypes!r} is none of {', '.join(DTYPE_LAYOUTS)}")
    if dtypes == "source":
        return source_dtypes(dataset)
    return dict.fromkeys(dataset.modalities, torch.float32)


def _info(
    dataset: MultiModalDataset, source: str, dtypes: Mapping[str, torch.dtype]
) -> dict[str, Any]:
    """The :data:`SHARDS_INFO` of ``dataset``'s shards."""
    targets = np.asarray(dataset.targets())
    presence = dataset.presence() if getattr(dataset, "may_lack_modalities", False) else None
    return {
        "format": SHARDS_FORMAT,
        "source": source,
        "num_samples": len(dataset),
        "modalities": list(dataset.modalities),
        "dtypes": {m: dtype_name(dtypes.get(m, torch.float32)) for m in dataset.modalities},
        "may_lack_modalities": bool(getattr(dataset, "may_lack_modalities", False)),
        "training_gsd": dataset.training_gsd(),
        "shapes": _shapes(dataset),
        "targets": targets.tolist(),
        # {modality: per-sample booleans}, where the dataset knows it without reading
        "presence": None
        if presence is None
        else {m: np.asarray(v, dtype=bool).tolist() for m, v in presence.items()},
        "manifest": _stored_manifest(dataset),
    }


def _shapes(dataset: MultiModalDataset) -> dict[str, list[int]]:
    """``{modality: [C, H, W]}`` from the first samples that have each modality."""
    shapes: dict[str, list[int]] = {}
    for i in range(len(dataset)):
        sample = dataset[i]
        shapes.update({m: list(sample[m].shape) for m in dataset.modalities if m in sample})
        if len(shapes) == len(dataset.modalities):
            break
    return shapes


def _stored_manifest(dataset: MultiModalDataset) -> dict[str, Any]:
    """The dataset manifest restricted to the written bands (so band indexes match)."""
    man = dataset.manifest.to_dict()
    man["modalities"] = {m: man["modalities"][m] for m in dataset.modalities}
    for m in dataset.modalities:
        info = man["modalities"][m]
        info["bands"] = list(dataset.bands[m])
        if info.get("stats"):
            info["stats"] = {b: info["stats"][b] for b in dataset.bands[m] if b in info["stats"]}
    return man


def shard_manifest(
    manifest: str | Path,
    out: str | Path,
    split: str | None = None,
    chunk_bytes: str | int = "256MB",
    num_workers: int = 1,
    modalities: Sequence[str] | None = None,
    dtypes: str = "float32",
) -> dict[str, int]:
    """Write the chips of a stack manifest as shards, one folder per split under ``out``.

    Args:
        manifest: the chip manifest (``chips.parquet``).
        out: the folder of the split folders.
        split: only this split (default: every split with chips).
        chunk_bytes: chunk size.
        num_workers: processes reading chips.
        modalities: modalities to write (default: all of the manifest).
        dtypes: ``"float32"`` or ``"source"`` (see :func:`write_shards`).

    Returns:
        ``{split: samples written}``.
    """
    from rsmm.datasets.stacks import CoRegisteredStack
    from rsmm.stacks.splits import SPLITS

    written = {}
    for name in [split] if split is not None else SPLITS:
        ds = CoRegisteredStack(manifest, split=name, modalities=modalities)
        if len(ds) == 0 and split is None:
            continue
        source = f"{manifest} (split {name})"
        write_shards(ds, Path(out) / name, chunk_bytes, num_workers, source, dtypes)
        written[name] = len(ds)
    return written


# -- reading -------------------------------------------------------------------------


def read_shards_info(
    root: str | Path, cache_dir: str | None = None, storage_options: dict | None = None
) -> dict[str, Any]:
    """The :data:`SHARDS_INFO` of a split folder or URI (downloaded into ``cache_dir``).

    Raises:
        MissingShardsError: there is none.
    """
    path = _join(root, SHARDS_INFO)
    if is_remote(root):
        from litdata.streaming.downloader import get_downloader

        local_dir = cache_dir or tempfile.mkdtemp(prefix="rsmm-shards-")
        local = os.path.join(local_dir, SHARDS_INFO)
        try:
            get_downloader(str(root), local_dir, [], storage_options).download_file(path, local)
        except Exception as err:  # the storage client's own error types
            raise MissingShardsError(f"{path}: cannot read it ({err})") from err
        path = local
    if not Path(path).is_file():
        raise MissingShardsError(f"{path} not found: no rsmm shards there (rsmm manifest shard)")
    info = json.loads(Path(path).read_text())
    if info.get("format") not in READABLE_FORMATS:
        raise DatasetFileError(
            f"{path}: shard format {info.get('format')!r} is none of "
            f"{', '.join(map(str, READABLE_FORMATS))} (written by a newer rsmm?)"
        )
    return info


class ShardDataset(MultiModalDataset):
    """The samples of one split folder of shards (see :func:`shard_manifest`).

    Indexing reads one sample (random access); :meth:`streaming` gives the
    ``litdata.StreamingDataset`` that training loaders iterate (shuffled by chunk,
    split across ranks and workers, resumable).

    Args:
        root: the folder of split folders (local, or ``s3://``, ``gs://`` ...).
        split: the split folder to read; ``None``: ``root`` is a split folder itself.
        modalities: modalities to return (default: all of the shards).
        bands: optional ``{modality: band names}`` subsets.
        cache_dir: where LitData caches remote chunks (default LitData's).
        storage_options: credentials and options of the object store (LitData's).
    """

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        modalities: Sequence[str] | None = None,
        bands: Mapping[str, Sequence[str]] | None = None,
        cache_dir: str | None = None,
        storage_options: dict | None = None,
    ) -> None:
        self.root = str(root) if split is None else _join(root, split)
        self.split = split
        self.cache_dir = cache_dir
        self.storage_options = dict(storage_options or {})
        self.info = read_shards_info(self.root, cache_dir, self.storage_options)
        self.stored: tuple[str, ...] = tuple(self.info["modalities"])
        #: ``{modality: dtype name}`` of the records (float32 in format 1 shards)
        self.stored_dtypes: dict[str, str] = {
            m: self.info.get("dtypes", {}).get(m, "float32") for m in self.stored
        }
        super().__init__(modalities or self.stored, bands)
        self.may_lack_modalities: bool = bool(self.info["may_lack_modalities"])
        self._targets = np.asarray(self.info["targets"])
        keep = {}
        for m in self.modalities:
            stored = self.manifest.modality(m).bands
            chosen = self.bands[m]
            keep[m] = None if chosen == stored else [stored.index(b) for b in chosen]
        self.decoder = RecordDecoder(self.stored, keep)
        self.batch_decoder = RecordDecoder(self.stored, keep, convert=False)
        self._reader: Any = None

    def _load_manifest(self) -> DatasetManifest:
        return parse_manifest(self.info["manifest"], _join(self.root, SHARDS_INFO))

    def presence(self) -> dict[str, np.ndarray] | None:
        """The per-sample presence recorded when the shards were written (``None``: every
        sample has every modality, or shards that recorded none, see
        :attr:`presence_known`)."""
        recorded = self.info.get("presence")
        if not self.may_lack_modalities or recorded is None:
            return None
        return {m: np.asarray(recorded[m], dtype=bool) for m in self.modalities}

    @property
    def presence_known(self) -> bool:
        """Whether :meth:`presence` is exact without reading the records."""
        return not self.may_lack_modalities or self.info.get("presence") is not None

    def training_gsd(self) -> dict[str, float | None]:
        return {m: self.info["training_gsd"].get(m) for m in self.modalities}

    def __len__(self) -> int:
        return int(self.info["num_samples"])

    def targets(self) -> np.ndarray:
        return self._targets.copy()

    def streaming(
        self,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        indices: Sequence[int] | None = None,
        convert: bool = True,
    ) -> Any:
        """A ``litdata.StreamingDataset`` of the samples (only ``indices`` when given).

        Records are decoded one at a time (``batch_decode=0``): LitData's default
        ("auto") decoded whole windows of a shuffled chunk for each record here, 10x
        slower for rsmm's few large tensors per record.

        Args:
            shuffle: shuffle chunks and the samples within them.
            drop_last: equal sample counts on every rank.
            seed: the shuffling seed.
            indices: the samples to stream (default: all).
            convert: samples hold float32 modalities; False: integer records stay
                :class:`~rsmm.datasets.shard_records.StoredValues`, for a collate
                function that converts them into the batch
                (:class:`~rsmm.datamodules.collate.SampleCollate` does).
        """
        from litdata import StreamingDataset

        ds = StreamingDataset(
            self.root,
            cache_dir=self.cache_dir,
            batch_decode=0,
            shuffle=shuffle,
            drop_last=drop_last,
            seed=seed,
            storage_options=self.storage_options,
            transform=self.decoder if convert else self.batch_decoder,
        )
        return ds if indices is None else ds.subset(list(indices))

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < len(self):
            raise IndexError(f"sample index {index} out of range for {len(self)} samples")
        if self._reader is None:
            self._reader = self.streaming()
        return self._reader[int(index)]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_reader"] = None  # LitData's reader holds threads
        return state
