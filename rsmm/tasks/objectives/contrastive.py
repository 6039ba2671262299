"""Multimodal contrastive objectives: ``loss: ntxent`` (eq. 4.1), ``loss: supcon``
(eq. 4.3-4.4) and ``loss: kernel_ntxent`` (eq. 4.1 with metadata-kernel weights).

Every row of :meth:`EmbeddedViews.flat <rsmm.models.views.EmbeddedViews.flat>` (one per
sample, modality and view) is an anchor scored against every other row by
:func:`rsmm.losses.contrastive.per_anchor_contrastive`; rows of negative-only samples
(the dataset's ``negative_classes``) are never anchors or positives but stay in every
denominator. Rows of modalities a sample lacks (``SampleInfo.presence``) are left
out of everything, exactly as if they did not exist (:func:`present_only`).

Under DDP the rows of all ranks are gathered with gradients, so every rank's anchors see
the whole global batch; each rank returns its share (its anchors' losses over the
global number of anchors, times the world size), so that DDP's gradient mean is
exactly the gradient of the single-process loss on the concatenated batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from rsmm.errors import ConfigError
from rsmm.losses.contrastive import kernel_positives, per_anchor_contrastive, supcon_positives
from rsmm.losses.kernels import doy_kernel, geo_kernel
from rsmm.models.views import EmbeddedViews
from rsmm.tasks.objectives.base import Objective, Ranks, check_number


class ContrastiveObjective(Objective):
    """A contrastive loss over all rows, defined by its positive matrix."""

    uses_temperature: ClassVar[bool] = True
    uses_negatives: ClassVar[bool] = True
    supports_dense: ClassVar[bool] = True
    supports_presence: ClassVar[bool] = True

    def positives(self, views: EmbeddedViews, anchors: Tensor | None) -> Tensor:
        """``A x K`` booleans, True where row ``k`` is a positive of anchor row ``a``, or
        non-negative weights (``anchors``: the anchor rows, ``None`` = all)."""
        raise NotImplementedError

    def rows(self, views: EmbeddedViews) -> Tensor:
        """``K x d`` rows the loss scores: the L2-normalised embeddings."""
        return views.flat()

    def similarity(self) -> Callable[[Tensor, Tensor], Tensor] | None:
        """The similarity of two sets of rows (``None``: the dot product)."""
        return None

    def loss(self, views: EmbeddedViews, ranks: Ranks) -> Tensor:
        views = ranks.global_views(views)
        anchors = views.local_rows()
        z, positives, anchors, mask = present_only(
            views.present_rows(),
            self.rows(views),
            self.positives(views, anchors),
            anchors,
            views.anchor_mask(),
        )
        per, valid = per_anchor_contrastive(
            z, positives, self.temperature, anchors, mask, similarity=self.similarity()
        )
        n_valid = valid.sum()
        if ranks.distributed:
            total = ranks.sum(n_valid.float())
            if total == 0:
                raise ConfigError("no anchor has a positive in the global batch")
            return per.sum() * ranks.world_size / total
        if n_valid == 0:
            raise ConfigError(
                "no anchor has a positive: use views >= 2 or several modalities (one modality "
                "with one view has nothing to contrast)"
            )
        return per.sum() / n_valid


def present_only(
    present: Tensor | None,
    z: Tensor,
    positives: Tensor,
    anchors: Tensor | None,
    mask: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """The rows, positive matrix, anchor indices and anchor mask of a contrastive loss
    with the rows of absent modalities removed (``present``: ``K`` booleans, ``None`` =
    every row is present): they are neither anchors, positives nor negatives.

    Args:
        present: ``K`` booleans, False for rows of a modality their sample lacks.
        z: ``K x d`` rows.
        positives: ``A x K`` positives of the anchors.
        anchors: ``A`` anchor indices into ``z`` (``None`` = every row, ``A = K``).
        mask: ``K`` booleans of the rows that may be anchors or positives.
    """
    if present is None:
        return z, positives, anchors, mask
    present = present.to(z.device)
    if anchors is None:
        positives = positives[present]
    else:
        kept = present[anchors]
        new_index = torch.cumsum(present.long(), 0) - 1
        positives, anchors = positives[kept], new_index[anchors[kept]]
    return z[present], positives[:, present], anchors, None if mask is None else mask[present]


class NTXent(ContrastiveObjective):
    """Multimodal NT-Xent, eq. 4.1: the positives of a row are the other rows of its
    sample (other modalities and views). One modality with two views is SimCLR's
    NT-Xent (Chen et al. 2020, arXiv:2002.05709)."""

    name = "ntxent"

    def positives(self, views: EmbeddedViews, anchors: Tensor | None) -> Tensor:
        ids = views.sample_ids()
        own = ids if anchors is None else ids[anchors]
        return own[:, None] == ids[None, :]


class SupCon(ContrastiveObjective):
    """Multimodal supervised contrastive loss, eq. 4.3-4.4: the positives of a row are
    the rows of its sample and of every sample with the same label (all modalities and
    views). One modality is Khosla et al.'s SupCon (arXiv:2004.11362). Needs integer
    labels in the batch (``-1`` = unlabelled: positives within its own sample only)."""

    name = "supcon"

    def positives(self, views: EmbeddedViews, anchors: Tensor | None) -> Tensor:
        labels = views.row_labels()
        if labels is None or labels.ndim != 1:
            raise ConfigError("loss 'supcon' needs integer labels in the batch")
        return supcon_positives(views.sample_ids(), labels, anchors)


#: the metadata each ``kernel`` of ``kernel_ntxent`` reads (keys of ``batch["meta"]``)
KERNEL_META: dict[str, tuple[str, ...]] = {
    "geo": ("lonlat",),
    "time": ("date",),
    "geo_time": ("lonlat", "date"),
}


class KernelNTXent(ContrastiveObjective):
    """y-aware multimodal NT-Xent (Dufumier et al., MICCAI 2021, arXiv:2106.08808):
    eq. 4.1 where rows of other samples are weighted positives, with the weight a
    Gaussian kernel on the samples' metadata (:func:`rsmm.losses.mm_kernel_ntxent`):
    ``kernel: geo`` on the geodesic distance between chip centres
    (``meta["lonlat"]``, bandwidth ``sigma_km``), ``time`` on the circular day-of-year
    difference (``meta["date"]``, ``sigma_days``), ``geo_time`` their product. Rows of
    the same sample keep weight 1. Needs two views or two modalities."""

    name = "kernel_ntxent"
    defaults: ClassVar[Mapping[str, Any]] = {"kernel": "geo", "sigma_km": 2.0, "sigma_days": 30.0}

    @classmethod
    def check_values(cls, options: Mapping[str, Any]) -> None:
        if options["kernel"] not in KERNEL_META:
            raise ConfigError(
                f"loss_kwargs.kernel: unknown {options['kernel']!r}; "
                f"choose one of {', '.join(KERNEL_META)}"
            )
        check_number(options, "sigma_km", 0.0, strict=True)
        check_number(options, "sigma_days", 0.0, strict=True)

    def sample_weights(self, views: EmbeddedViews) -> Tensor:
        """``B x B`` kernel weights between the samples of ``views``.

        Raises:
            ConfigError: when the batch lacks the metadata the kernel reads, or some
                samples have none (NaN).
        """
        kernel = self.options["kernel"]
        meta = views.samples.meta or {}
        for key in KERNEL_META[kernel]:
            if key not in meta:
                raise ConfigError(
                    f"loss 'kernel_ntxent' with kernel {kernel!r} needs meta[{key!r}] in the "
                    f"batch, which has {sorted(meta) or 'no numeric metadata'}; use a dataset "
                    "that gives it (stacks, Meter-ML, BigEarthNet, SEN12MS for lonlat) or "
                    "another kernel"
                )
            if not bool(torch.isfinite(meta[key]).all()):
                raise ConfigError(
                    f"loss 'kernel_ntxent': some samples of the batch have no meta[{key!r}] "
                    "(NaN); leave them out or use another kernel"
                )
        w = torch.ones(views.batch_size, views.batch_size, device=views.embeddings[0].device)
        if "lonlat" in KERNEL_META[kernel]:
            lonlat = meta["lonlat"]
            w = w * geo_kernel(lonlat, lonlat, self.options["sigma_km"]).to(w.device)
        if "date" in KERNEL_META[kernel]:
            date = meta["date"]
            w = w * doy_kernel(date, date, self.options["sigma_days"]).to(w.device)
        return w

    def positives(self, views: EmbeddedViews, anchors: Tensor | None) -> Tensor:
        if views.num_groups < 2:
            raise ConfigError(
                "loss 'kernel_ntxent': no anchor has a positive of its own sample; use "
                "views >= 2 or several modalities (two views or two modalities)"
            )
        return kernel_positives(views.sample_ids(), self.sample_weights(views), anchors)
