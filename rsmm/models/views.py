"""The embedded views of a batch: one embedding per (modality, view) group.

Every pre-training objective (and fine-tuning's SupCon term) reads the same structure,
built by :meth:`MultiModalEncoder.embed_views <rsmm.models.MultiModalEncoder.embed_views>`:
a batch of ``B`` samples, each seen through ``G`` groups (every view of every modality,
in the order of the views mapping), gives ``K = G * B`` rows. Everything about the rows
(sample ids, group ids, labels, which rows may be anchors) follows from that known
structure, so nothing here reads a value back from the device.

Rows of :meth:`EmbeddedViews.flat` are ordered (modality, view, sample)::

    row = group * B + sample,   group = index of (modality, view) in ``layout``

Per-sample facts travel with the embeddings in :class:`SampleInfo`: labels, the samples
that only serve as negatives (a dataset's ``negative_classes``, e.g. Meter-ML's
Negative), and two fields that later objectives read and that default to "not given":
per-modality presence (``None`` = every sample has every modality) and numeric
metadata such as location or day of year (``None`` = none).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import combinations

import torch
import torch.nn.functional as F
from torch import Tensor

#: ``all_gather(t, with_grads)``: ``t`` of every DDP rank stacked, ``W x *t.shape``
#: (Lightning's ``LightningModule.all_gather(t, sync_grads=...)``).
AllGather = Callable[[Tensor, bool], Tensor]


#: the numeric sample metadata that datasets give (see :mod:`rsmm.datasets.geometa`) and
#: tasks carry in :attr:`SampleInfo.meta`: ``lonlat`` (``B x 2`` degrees), ``date``
#: (``B`` days since 1970-01-01)
META_KEYS = ("lonlat", "date")


def negative_samples(labels: Tensor | None, class_ids: Sequence[int]) -> Tensor | None:
    """Which samples only serve as negatives: their label is one of ``class_ids``.

    Multi-hot labels (``B x C``) have no column for such classes (Meter-ML's Negative is
    the all-zero row), so there a sample is negative-only when no class is set.

    Args:
        labels: ``B`` class ids or ``B x C`` multi-hot targets, or ``None``.
        class_ids: ids of the negative-only classes (a dataset's ``negative_classes``).

    Returns:
        ``B`` booleans, or ``None`` when there are no labels or no such class.
    """
    if labels is None or not class_ids:
        return None
    if labels.ndim == 2:
        return labels.sum(1) == 0
    negative = torch.zeros(labels.shape, dtype=torch.bool, device=labels.device)
    for c in class_ids:  # Python scalars: no host-to-device copy
        negative |= labels == c
    return negative


def present_views(samples: SampleInfo | None, modality: str, views: int) -> Tensor | None:
    """``V * B`` booleans, rows ordered (view, sample): True where the sample has
    ``modality``; ``None`` when every sample has it (or nothing is known)."""
    if samples is None or samples.presence is None or modality not in samples.presence:
        return None
    present = samples.presence[modality].to(torch.bool)
    if bool(present.all()):
        return None
    return present.repeat(views)


def scatter_rows(t: Tensor, keep: Tensor | None) -> Tensor:
    """The rows ``t`` of the ``keep`` positions of a zero tensor of ``len(keep)`` rows
    (``t`` itself when ``keep`` is ``None``); gradients flow to ``t``."""
    if keep is None:
        return t
    out = t.new_zeros((keep.shape[0], *t.shape[1:]))
    return out.index_put((keep.to(t.device),), t)


def _gather_rows(all_gather: AllGather, t: Tensor) -> Tensor:
    return all_gather(t, False).reshape(-1, *t.shape[1:])


@dataclass(frozen=True, eq=False)
class SampleInfo:
    """What objectives know about the samples of a batch besides their pixels.

    Attributes:
        labels: ``B`` class ids (``-1`` = unlabelled) or ``B x C`` multi-hot targets.
        negative: ``B`` booleans, True for samples that only serve as negatives: their
            rows are never anchors or positives but stay in every denominator.
        presence: ``{modality: B booleans}``, False where a sample lacks the modality;
            ``None`` = every sample has every modality.
        meta: numeric per-sample metadata, ``{name: B x ...}`` (e.g. ``lonlat``
            ``B x 2``, ``date`` ``B``, see :data:`META_KEYS`) for metadata-weighted
            objectives; ``None`` = none.
    """

    labels: Tensor | None = None
    negative: Tensor | None = None
    presence: Mapping[str, Tensor] | None = None
    meta: Mapping[str, Tensor] | None = None

    def gathered(self, all_gather: AllGather) -> SampleInfo:
        """The same facts for the samples of every DDP rank, rank-major."""

        def rows(t: Tensor | None) -> Tensor | None:
            return None if t is None else _gather_rows(all_gather, t)

        def each(d: Mapping[str, Tensor] | None) -> dict[str, Tensor] | None:
            return None if d is None else {k: _gather_rows(all_gather, v) for k, v in d.items()}

        return SampleInfo(
            rows(self.labels), rows(self.negative), each(self.presence), each(self.meta)
        )


@dataclass(frozen=True, eq=False)
class EmbeddedViews:
    """The embeddings of every (modality, view) group of a batch.

    Attributes:
        embeddings: one ``B x d`` float32 tensor per group: the projector outputs (the
            backbone features when the encoder has no projector), not normalised.
        layout: ``(modality, view index)`` of each group, in order.
        features: ``{modality: backbone features of its V x B rows}``, rows ordered
            (view, sample); this rank's only.
        dense: one dense embedding ``B x D x h x w`` per group, when asked for.
        samples: the batch's :class:`SampleInfo`.
        rank: this process' DDP rank once :meth:`gathered`, else 0.
        world_size: the number of ranks whose samples the rows hold (1 = this rank's).
    """

    embeddings: tuple[Tensor, ...]
    layout: tuple[tuple[str, int], ...]
    features: Mapping[str, Tensor] = field(default_factory=dict)
    dense: tuple[Tensor, ...] | None = None
    samples: SampleInfo = field(default_factory=SampleInfo)
    rank: int = 0
    world_size: int = 1

    def __post_init__(self) -> None:
        if not self.embeddings or len(self.embeddings) != len(self.layout):
            raise ValueError(
                f"EmbeddedViews needs one embedding per group, got {len(self.embeddings)} "
                f"embeddings for layout {self.layout}"
            )

    # -- structure ----------------------------------------------------------------------

    @property
    def num_groups(self) -> int:
        """``G``, the number of (modality, view) groups."""
        return len(self.layout)

    @property
    def batch_size(self) -> int:
        """``B``, the number of samples (of every rank once gathered)."""
        return self.embeddings[0].shape[0]

    @property
    def modalities(self) -> tuple[str, ...]:
        """The modalities of the groups, in order, each once."""
        return tuple(dict.fromkeys(m for m, _ in self.layout))

    def pairs(self) -> list[tuple[int, int]]:
        """Every unordered pair ``(a, b)``, ``a < b``, of group indices."""
        return list(combinations(range(self.num_groups), 2))

    # -- rows -----------------------------------------------------------------------------

    def unit(self) -> tuple[Tensor, ...]:
        """The L2-normalised embedding of each group, ``B x d`` each."""
        return tuple(F.normalize(z, dim=1) for z in self.embeddings)

    def flat(self) -> Tensor:
        """``K x d`` L2-normalised rows ordered (modality, view, sample)."""
        return torch.cat(self.unit())

    def stacked(self) -> Tensor:
        """``G x B x d`` L2-normalised embeddings."""
        return torch.stack(self.unit())

    def _device(self) -> torch.device:
        return self.embeddings[0].device

    def sample_ids(self) -> Tensor:
        """``K`` sample ids of the rows (``0 .. B-1``, the same in every group)."""
        return torch.arange(self.batch_size, device=self._device()).repeat(self.num_groups)

    def groups(self) -> Tensor:
        """``K`` group ids of the rows (index in :attr:`layout`)."""
        ids = torch.arange(self.num_groups, device=self._device())
        return ids.repeat_interleave(self.batch_size)

    def _per_row(self, t: Tensor) -> Tensor:
        return t.repeat(self.num_groups, *([1] * (t.ndim - 1)))

    def row_labels(self) -> Tensor | None:
        """The label of every row (its sample's), or ``None`` without labels."""
        labels = self.samples.labels
        return None if labels is None else self._per_row(labels)

    def present_rows(self) -> Tensor | None:
        """``K`` booleans, False for rows of a modality their sample lacks; ``None`` when
        every sample has every modality."""
        presence = self.samples.presence
        if presence is None:
            return None
        return torch.cat([presence[m] for m, _ in self.layout])

    def anchor_mask(self) -> Tensor | None:
        """``K`` booleans, False for rows that may be neither anchors nor positives (rows
        of negative-only samples and of absent modalities); ``None`` when every row may."""
        present = self.present_rows()
        negative = self.samples.negative
        if negative is None:
            return present
        keep = self._per_row(~negative)
        return keep if present is None else keep & present

    # -- distributed ------------------------------------------------------------------------

    def local_rows(self) -> Tensor | None:
        """Indices in :meth:`flat` of this rank's rows once :meth:`gathered`; ``None``
        when the rows are this rank's only."""
        if self.world_size == 1:
            return None
        b = self.batch_size // self.world_size
        device = self._device()
        start = torch.arange(self.num_groups, device=device)[:, None] * self.batch_size
        return (start + self.rank * b + torch.arange(b, device=device)[None, :]).reshape(-1)

    def gathered(self, all_gather: AllGather, rank: int) -> EmbeddedViews:
        """The views of the global batch of every DDP rank.

        Each group then holds the ``W * B`` rows of all ranks, rank-major (gradients
        flow back to this rank's rows); the samples' facts are gathered alike. The
        backbone features and dense maps stay this rank's.

        Args:
            all_gather: see :data:`AllGather`.
            rank: this process' rank.
        """
        stacked = all_gather(torch.stack(self.embeddings), True)  # W x G x B x d
        world, g, b = stacked.shape[:3]
        groups = stacked.transpose(0, 1).reshape(g, world * b, *stacked.shape[3:])
        return replace(
            self,
            embeddings=tuple(groups.unbind(0)),
            samples=self.samples.gathered(all_gather),
            rank=rank,
            world_size=world,
        )
