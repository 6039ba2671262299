"""Shard records: one sample as the flat dict LitData writes, and back.

A modality is stored in the dtype of its source files when that is an integer dtype
smaller than float32 (Sentinel-2 digital numbers: uint16; NAIP: uint8), else as
float32 (Sentinel-1 dB), so shards and the bytes a loader reads are 2x (S2) or 4x
(NAIP) smaller than float32 ones. The sample a dataset returns is float32 after its
own conversion (nodata pixels filled with their band's mean, offsets of other
processing baselines added, resampling), so the integer tensor goes with the pixels it
does not hold exactly: ``"<modality>.at"`` (int32 flat indexes) and
``"<modality>.values"`` (their float32 values, bit for bit). Decoding converts the
integer tensor to float32 and puts those pixels back: the very float32 tensor the
dataset returned. A record whose exceptions would take more bytes than float32 (a
chip resampled bilinearly) holds the float32 tensor itself.

A training loader need not make that float32 tensor at all: :class:`RecordDecoder`
with ``convert=False`` leaves an integer modality as :class:`StoredValues`, which the
collate function (:func:`rsmm.datamodules.collate.collate_samples`) converts while
writing it into its row of the float32 batch. Each value is then read once (1 or 2
bytes) and written once (4 bytes), where converting per sample and stacking reads and
writes the float32 tensor twice more.

LitData fixes the keys and each value's format from the first record it writes: a
modality absent from the first sample would be dropped from every sample, and a 1-D
placeholder would make later C x H x W tensors come back flat. So every record holds
every modality, an absent one as a ``C x 0 x 0`` tensor of the modality's stored dtype
(same rank, no bytes), with empty exceptions; ``nodata`` (one count per modality) is
``-1`` where the modality is absent. Decoding gives back a sample without that
modality's key, as the contract of rsmm's samples says.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from rsmm.datasets.base import Sample

_INDEX_BYTES = 4  # an exception: an int32 index (and a float32 value)
_NO_INDEXES = torch.empty(0, dtype=torch.int32)
_NO_VALUES = torch.empty(0, dtype=torch.float32)


def dtype_name(dtype: torch.dtype) -> str:
    """``"uint16"`` for ``torch.uint16`` (the names ``rsmm-shards.json`` records)."""
    return str(dtype).removeprefix("torch.")


#: The integer dtypes a modality may be stored in: smaller than float32, exact in it.
INTEGER_DTYPES = {dtype_name(d): d for d in (torch.uint8, torch.int8, torch.uint16, torch.int16)}


def storage_dtype(source: np.dtype | str) -> torch.dtype:
    """The dtype of the records of a modality whose files hold ``source`` values: that
    dtype when it is an integer one smaller than float32, else float32."""
    return INTEGER_DTYPES.get(np.dtype(source).name, torch.float32)


def encode_values(x: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """A float32 tensor as ``(stored, indexes, values)``: ``stored`` of ``dtype`` (or
    ``x`` itself when that takes fewer bytes), the flat indexes of the pixels it does not
    hold bit for bit and their values (:func:`decode_values` inverts it).

    NumPy does the work: it runs in the processes LitData's ``optimize`` forks, where
    torch's OpenMP pool, started in the parent, hangs.
    """
    if x.dtype != torch.float32:
        raise TypeError(f"samples hold float32 modalities, got {x.dtype}")
    if dtype == torch.float32:
        return x, _NO_INDEXES, _NO_VALUES
    flat = np.ascontiguousarray(x.numpy()).reshape(-1)
    target = torch.empty(0, dtype=dtype).numpy().dtype
    info = np.iinfo(target)
    exact = (flat >= info.min) & (flat <= info.max) & (flat == np.round(flat))  # NaN: False
    stored = np.where(exact, flat, 0).astype(target)
    exact &= stored.astype(np.float32).view(np.int32) == flat.view(np.int32)  # -0.0
    at = np.flatnonzero(~exact)
    saved = flat.size * (flat.itemsize - stored.itemsize)
    if at.size * (_INDEX_BYTES + flat.itemsize) >= saved:
        return x, _NO_INDEXES, _NO_VALUES
    return (
        torch.from_numpy(stored.reshape(x.shape)),
        torch.from_numpy(at.astype(np.int32)),
        torch.from_numpy(flat[at]),
    )


def decode_values(
    stored: torch.Tensor, indexes: torch.Tensor, values: torch.Tensor
) -> torch.Tensor:
    """The float32 tensor :func:`encode_values` encoded."""
    if stored.dtype == torch.float32:
        return stored
    return StoredValues(stored, indexes, values).decode()


class StoredValues:
    """An integer modality of a record, not yet converted: the float32 tensor
    ``decode()`` gives (``bands`` of it), written where it is needed by
    :meth:`copy_into`.

    The collate function of rsmm's loaders writes it straight into its row of the
    float32 batch (see :mod:`rsmm.datamodules.collate`); ``shape`` and ``dtype`` are
    those of the float32 tensor.

    Args:
        stored: the integer ``C x H x W`` tensor of the record.
        indexes: int32 flat indexes (into ``stored``) of the pixels it does not hold.
        values: their float32 values.
        bands: the band indexes to keep (``None``: all, in order).
    """

    __slots__ = ("bands", "indexes", "shape", "stored", "values")
    dtype = torch.float32

    def __init__(
        self,
        stored: torch.Tensor,
        indexes: torch.Tensor,
        values: torch.Tensor,
        bands: Sequence[int] | None = None,
    ) -> None:
        self.stored, self.indexes, self.values = stored, indexes, values
        self.bands = None if bands is None else list(bands)
        #: the shape of the float32 tensor
        self.shape = stored.shape if bands is None else (len(bands), *stored.shape[1:])

    def copy_into(self, out: torch.Tensor) -> None:
        """Write the float32 tensor into ``out`` (contiguous, float32, :attr:`shape`):
        every value converted while copied, then the pixels the dtype cannot hold."""
        if self.bands is None:
            out.copy_(self.stored)
            if self.indexes.numel():  # index_copy_: 2x faster than x[at] = v
                out.view(-1).index_copy_(0, self.indexes.long(), self.values)
            return
        for j, b in enumerate(self.bands):
            out[j].copy_(self.stored[b])
        if self.indexes.numel():
            out.view(-1).index_copy_(0, *self._band_exceptions())

    def _band_exceptions(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The exceptions in the kept bands, as flat indexes into ``out``."""
        plane = self.stored[0].numel()
        at = self.indexes.long()
        kept = torch.tensor(self.bands, dtype=torch.long)
        hit, row = (at[:, None] // plane == kept[None, :]).nonzero(as_tuple=True)
        return row * plane + at[hit] % plane, self.values[hit]

    def decode(self) -> torch.Tensor:
        """The float32 tensor (a new one)."""
        out = torch.empty(self.shape, dtype=torch.float32)
        self.copy_into(out)
        return out


def encode_sample(
    sample: Mapping[str, Any],
    channels: Mapping[str, int],
    dtypes: Mapping[str, torch.dtype] | None = None,
) -> dict[str, Any]:
    """The flat record of one sample: every modality of ``channels`` present.

    Args:
        sample: an rsmm sample (``{modality: C x H x W, "label", "meta"}``); a modality
            may be absent.
        channels: ``{modality: number of bands}`` of every modality the shards hold.
        dtypes: ``{modality: stored dtype}`` (default: float32 for all, no exception
            keys: the records of shards written before dtypes were recorded).
    """
    meta = sample["meta"]
    nodata = meta.get("nodata", {})
    record: dict[str, Any] = {"id": str(meta["id"]), "label": torch.as_tensor(sample["label"])}
    counts = []
    for m, c in channels.items():
        dtype = (dtypes or {}).get(m, torch.float32)
        if m in sample:
            stored, at, values = encode_values(torch.as_tensor(sample[m]), dtype)
            counts.append(int(nodata.get(m, 0)))
        else:
            stored, at, values = torch.empty((c, 0, 0), dtype=dtype), _NO_INDEXES, _NO_VALUES
            counts.append(-1)
        record[m] = stored
        if dtype != torch.float32:
            record[f"{m}.at"], record[f"{m}.values"] = at, values
    record["nodata"] = torch.tensor(counts, dtype=torch.int64)
    record["lonlat"] = torch.as_tensor(meta["lonlat"], dtype=torch.float32)
    if "date" in meta:
        record["date"] = torch.as_tensor(meta["date"], dtype=torch.float32)
    return record


class RecordDecoder:
    """Turns a record back into the sample dict (picklable: runs in loader workers).

    Args:
        stored: the modalities of the records, in order.
        keep: ``{modality: band indexes or None for all}`` of the modalities to return.
        convert: give integer modalities as float32 tensors (the sample dict); False:
            as :class:`StoredValues`, for a collate function that converts them while
            writing the batch.
    """

    def __init__(
        self, stored: Sequence[str], keep: Mapping[str, list[int] | None], convert: bool = True
    ) -> None:
        self.slots = [(i, m, keep[m]) for i, m in enumerate(stored) if m in keep]
        self.convert = convert

    def __call__(self, record: Mapping[str, Any]) -> Sample:
        counts = record["nodata"].tolist()
        sample: Sample = {}
        nodata = {}
        for i, m, bands in self.slots:
            if counts[i] >= 0:
                x = record[m]
                if x.dtype != torch.float32:  # an integer record, its exceptions beside it
                    x = StoredValues(x, record[f"{m}.at"], record[f"{m}.values"], bands)
                    sample[m] = x.decode() if self.convert else x
                else:
                    sample[m] = x if bands is None else x[bands]
                nodata[m] = counts[i]
        sample["label"] = record["label"]
        meta = {"id": record["id"], "nodata": nodata, "lonlat": record["lonlat"]}
        if "date" in record:
            meta["date"] = record["date"]
        sample["meta"] = meta
        return sample
