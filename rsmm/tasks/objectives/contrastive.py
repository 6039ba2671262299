"""Multimodal contrastive objectives: ``loss: ntxent`` (eq. 4.1) and ``loss: supcon``
(eq. 4.3-4.4).

Every row of :meth:`EmbeddedViews.flat <rsmm.models.views.EmbeddedViews.flat>` (one per
sample, modality and view) is an anchor scored against every other row by
:func:`rsmm.losses.contrastive.per_anchor_contrastive`; rows of negative-only samples
(the dataset's ``negative_classes``) are never anchors or positives but stay in every
denominator.

Under DDP the rows of all ranks are gathered with gradients, so every rank's anchors see
the whole global batch; each rank returns its share (its anchors' losses over the
global number of anchors, times the world size), so that DDP's gradient mean is
exactly the gradient of the single-process loss on the concatenated batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from torch import Tensor

from rsmm.errors import ConfigError
from rsmm.losses.contrastive import per_anchor_contrastive, supcon_positives
from rsmm.models.views import EmbeddedViews
from rsmm.tasks.objectives.base import Objective, Ranks


class ContrastiveObjective(Objective):
    """A contrastive loss over all rows, defined by its positive matrix."""

    uses_temperature: ClassVar[bool] = True
    uses_negatives: ClassVar[bool] = True
    supports_dense: ClassVar[bool] = True

    def positives(self, views: EmbeddedViews, anchors: Tensor | None) -> Tensor:
        """``A x K`` booleans: True where row ``k`` is a positive of anchor row ``a``
        (``anchors``: the anchor rows, ``None`` = all)."""
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
        per, valid = per_anchor_contrastive(
            self.rows(views),
            self.positives(views, anchors),
            self.temperature,
            anchors,
            views.anchor_mask(),
            similarity=self.similarity(),
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
