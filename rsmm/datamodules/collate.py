"""Batching samples that may lack a modality.

A sample lacks the key of a modality it does not have (cloudy Sentinel-2, no NAIP
there). PyTorch's ``default_collate`` fails on such a batch; :func:`collate_samples`
zero-fills the absent entries with the shape and dtype of the modality and adds::

    batch["presence"] = {modality: torch.bool tensor (B,)}   # False = zero-filled

The zero-filled entries are placeholders, never data: augmentation, statistics and
losses read ``presence`` (see :class:`rsmm.models.views.SampleInfo`). The key
``"presence"`` is in every batch of a loader whose dataset may lack a modality
(:attr:`rsmm.datasets.MultiModalDataset.may_lack_modalities`) and in no other, so
full-modality code paths see exactly the batches ``default_collate`` makes.

A modality entry may also be a *row writer* (:class:`RowWriter`: ``shape``, ``dtype``
and ``copy_into(out)``), such as the integer shard records of
:class:`rsmm.datasets.shard_records.StoredValues`: it writes its values into its row
of the preallocated batch itself, converting them while copying, so a uint16 record
becomes a float32 row in one pass without a float32 tensor per sample. The batch is
the one of the tensors the entries stand for, bit for bit. In a loader worker the
batch's modality tensors are allocated in shared memory, as ``default_collate`` does
(sent to the main process without a copy).

Everything else (``"label"``: int64 scalars or float32 multi-hot vectors, ``"meta"``:
nested dicts of strings and tensors) is collated as ``default_collate`` does, except
that a nested ``meta`` entry some samples lack (``meta["nodata"][m]`` of an absent
modality, a ``date`` that only some chips have) is filled with a zero of the same kind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
from torch.utils.data import default_collate, get_worker_info

__all__ = ["PRESENCE_KEY", "RowWriter", "SampleCollate", "collate_samples"]

#: the batch key of the per-modality presence vectors
PRESENCE_KEY = "presence"

Shape = tuple[int, ...]


@runtime_checkable
class RowWriter(Protocol):
    """A modality entry that writes its tensor into its row of the batch."""

    @property
    def shape(self) -> torch.Size: ...

    @property
    def dtype(self) -> torch.dtype: ...

    def copy_into(self, out: torch.Tensor) -> None:
        """Write the tensor into ``out`` (contiguous, of ``shape`` and ``dtype``)."""
        ...


def _is_modality(value: Any) -> bool:
    return isinstance(value, torch.Tensor | RowWriter) and len(value.shape) >= 3


def _batch_tensor(shape: Shape, dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised batch tensor; in shared memory in a loader worker."""
    if get_worker_info() is None:
        return torch.empty(shape, dtype=dtype)
    numel = 1
    for n in shape:
        numel *= n
    storage = torch.UntypedStorage._new_shared(numel * dtype.itemsize)
    return torch.empty(0, dtype=dtype).set_(storage).view(shape)


def _stack_rows(entries: Sequence[Any], shape: Shape, dtype: torch.dtype) -> torch.Tensor:
    """The batch of ``entries`` (tensors, row writers, ``None``: a zero row)."""
    out = _batch_tensor((len(entries), *shape), dtype)
    if all(isinstance(x, torch.Tensor) for x in entries):
        return torch.stack(list(entries), out=out)
    for row, x in zip(out, entries):
        if x is None:
            row.zero_()
        elif isinstance(x, torch.Tensor):
            row.copy_(x)
        else:
            x.copy_into(row)
    return out


def _blank(value: Any) -> Any:
    """A zero of the kind of ``value`` (for a nested entry some samples lack)."""
    if isinstance(value, torch.Tensor):
        return torch.zeros_like(value)
    if isinstance(value, Mapping):
        return {k: _blank(v) for k, v in value.items()}
    if isinstance(value, str):
        return ""
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return type(value)(0)
    return None


def _collate_nested(values: Sequence[Any]) -> Any:
    """``default_collate`` of ``values``, where mappings may lack keys (union of keys,
    a missing entry filled with :func:`_blank` of a present one)."""
    first = values[0]
    if isinstance(first, Mapping):
        keys = list(dict.fromkeys(k for v in values for k in v))
        out = {}
        for k in keys:
            example = next(v[k] for v in values if k in v)
            out[k] = _collate_nested([v[k] if k in v else _blank(example) for v in values])
        return out
    return default_collate(list(values))


def collate_samples(
    samples: Sequence[Mapping[str, Any]],
    modalities: Sequence[str] | None = None,
    shapes: Mapping[str, Shape] | None = None,
    presence: bool = True,
) -> dict[str, Any]:
    """Collate rsmm samples into a batch, zero-filling absent modalities.

    Args:
        samples: sample dicts (``{modality: C x H x W, "label": ..., "meta": ...}``);
            a sample lacks the key of a modality it does not have.
        modalities: the modality keys of the batch, in order (default: every key of
            the samples whose value is a tensor of 3 or more dimensions).
        shapes: ``{modality: C x H x W}`` used for a modality that no sample of the
            batch has (otherwise the shape of the present entries is used).
        presence: add ``batch["presence"]``; False for a loader whose dataset never
            lacks a modality, where a missing key is then an error.

    Returns:
        The batch: ``{modality: float32 B x C x H x W, "label": B or B x K,
        "meta": ..., "presence": {modality: bool B}}`` (``"presence"`` only when asked).

    Raises:
        ValueError: for an empty batch, a modality that no sample has and whose shape
            is not in ``shapes``, entries of one modality with different shapes, or a
            missing modality when ``presence`` is False.
    """
    if not samples:
        raise ValueError("collate_samples: empty batch")
    if modalities is None:
        modalities = [
            k
            for k in dict.fromkeys(k for s in samples for k in s)
            if _is_modality(next(s[k] for s in samples if k in s))
        ]
    shapes = shapes or {}
    batch: dict[str, Any] = {}
    flags: dict[str, torch.Tensor] = {}
    for m in modalities:
        have = torch.tensor([m in s for s in samples], dtype=torch.bool)
        if not presence and not bool(have.all()):
            raise ValueError(
                f"collate_samples: {int((~have).sum())} of {len(samples)} samples lack "
                f"modality {m!r} but the dataset declares none may (may_lack_modalities)"
            )
        present = [s[m] for s in samples if m in s]
        if present:
            example = present[0]
            for x in present[1:]:
                if x.shape != example.shape:
                    raise ValueError(
                        f"collate_samples: modality {m!r} has entries of shapes "
                        f"{tuple(example.shape)} and {tuple(x.shape)} in one batch"
                    )
            shape, dtype = tuple(example.shape), example.dtype
        elif m in shapes:
            shape, dtype = tuple(shapes[m]), torch.float32
        else:
            raise ValueError(
                f"collate_samples: no sample of the batch has modality {m!r} and its shape "
                "is not given (shapes)"
            )
        if all(isinstance(x, torch.Tensor) for x in present) and not bool(have.all()):
            zero = torch.zeros(shape, dtype=dtype)  # torch.stack's fast path
            entries = [s[m] if m in s else zero for s in samples]
        else:
            entries = [s.get(m) for s in samples]
        batch[m] = _stack_rows(entries, shape, dtype)
        flags[m] = have
    for key in dict.fromkeys(k for s in samples for k in s):
        if key in batch or key == PRESENCE_KEY:
            continue
        values = [s[key] for s in samples if key in s]
        if len(values) != len(samples):
            raise ValueError(
                f"collate_samples: only {len(values)} of {len(samples)} samples have {key!r}"
            )
        batch[key] = _collate_nested(values)
    if presence:
        batch[PRESENCE_KEY] = flags
    return batch


@dataclass(frozen=True)
class SampleCollate:
    """:func:`collate_samples` with fixed arguments: the ``collate_fn`` of rsmm's
    loaders (a picklable object, so worker processes can use it).

    Attributes:
        modalities: the dataset's modality keys, in order.
        shapes: ``{modality: C x H x W}`` for batches that no sample of has it.
        presence: whether batches carry ``"presence"`` (the dataset's
            ``may_lack_modalities``).
    """

    modalities: tuple[str, ...]
    shapes: Mapping[str, Shape] = field(default_factory=dict)
    presence: bool = False

    def __call__(self, samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return collate_samples(samples, self.modalities, self.shapes, self.presence)
