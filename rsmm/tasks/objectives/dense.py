"""Dense matching added to a global objective (``PretrainTask(dense=...)``).

DenseCL-style (Wang et al. 2021, arXiv:2011.09157), thesis eq. 3.18-3.24: the patches
of every pair of (modality, view) groups are matched by a plan (``argmax``, ``emd``,
``sinkhorn``, ``unbalanced`` or ``uniform``; cross-modal pairs match patches across
resolutions) whose rows are the soft targets of a dense InfoNCE
(:func:`rsmm.losses.ot.dense_contrastive_loss`) with the other images of the local
batch as negatives, at the task's temperature; images of negative-only samples are no
queries when the global objective applies the negative-only rule. The total is
``(1 - dense_weight) * global + dense_weight * dense``.

The thesis' form (eq. 3.19, 3.20, 3.24 as printed) is ``loss: infonce_alignment`` with
``loss_kwargs: {cross_view: true}`` and ``dense_kwargs: {negatives: images, symmetric:
false}``: each patch is contrasted with the
image-level representations (mean dense embeddings) of the ``N`` images, and the global
term is one-directional cross-view InfoNCE; rsmm's default contrasts patches with the other
images' patches, both directions, next to any global objective.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from torch import Tensor

from rsmm.errors import ConfigError
from rsmm.losses.ot import MATCHING_METHODS, combine_global_dense, dense_contrastive_loss
from rsmm.models.multimodal import MultiModalEncoder
from rsmm.models.views import SampleInfo
from rsmm.tasks.objectives.base import Objective, Ranks, Views

#: ``dense_kwargs`` accepted: the dense loss' options the configuration may set
DENSE_OPTIONS = tuple(
    name
    for name in list(inspect.signature(dense_contrastive_loss).parameters)[2:]
    if name not in ("method", "tau", "match_features", "image_keys", "anchors")
)


def check_dense(
    objective: type[Objective], method: str, weight: float, options: Mapping[str, Any] | None
) -> None:
    """Check the dense-matching settings of a task (a :class:`ConfigError` names the
    option and lists the valid choices)."""
    if not objective.supports_dense:
        raise ConfigError(f"dense matching is not combined with loss {objective.name!r}")
    if method not in MATCHING_METHODS:
        raise ConfigError(f"dense: unknown {method!r}; choose one of {', '.join(MATCHING_METHODS)}")
    if not 0 <= weight <= 1:
        raise ConfigError(f"dense_weight must be in [0, 1], got {weight!r}")
    unknown = sorted(set(options or {}) - set(DENSE_OPTIONS))
    if unknown:
        raise ConfigError(
            f"dense_kwargs: {unknown} are not options of dense matching "
            f"(it takes {', '.join(DENSE_OPTIONS)})"
        )


class DenseMatching(Objective):
    """A global objective plus the dense loss averaged over every pair of groups.

    Args:
        encoder: the task's online encoder, built with ``dense_dim > 0``.
        objective: the global objective.
        method: the matching plan, one of :data:`~rsmm.losses.ot.MATCHING_METHODS`.
        weight: ``dense_weight``.
        temperature: the dense InfoNCE's temperature.
        options: ``dense_kwargs`` (:data:`DENSE_OPTIONS`).
    """

    def __init__(
        self,
        encoder: MultiModalEncoder,
        objective: Objective,
        *,
        method: str,
        weight: float,
        temperature: float,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(encoder, temperature=temperature)
        check_dense(type(objective), method, weight, options)
        if encoder.dense_dim <= 0:
            raise ConfigError("dense matching needs an encoder built with dense_dim > 0")
        self.objective = objective
        self.name = objective.name
        self.method, self.weight = method, weight
        self.dense_options = dict(options or {})

    def describe(self) -> str:
        return f"loss {self.name!r} with dense matching (dense={self.method!r})"

    def before_step(self, encoder: MultiModalEncoder, step: int, total_steps: int) -> None:
        self.objective.before_step(encoder, step, total_steps)

    def step(
        self, encoder: MultiModalEncoder, views: Views, samples: SampleInfo, ranks: Ranks
    ) -> tuple[Tensor, dict[str, Tensor]]:
        embedded = encoder.embed_views(views, dense=True, samples=samples)
        global_loss = self.objective.loss(embedded, ranks)
        maps = embedded.dense
        assert maps is not None
        pairs = embedded.pairs()
        if not pairs:
            raise ConfigError("dense matching needs two views or two modalities to pair")
        # negative-only images (the dataset's negative_classes) are no queries, as the
        # global objectives that apply the rule leave them out of the anchors
        negative = samples.negative if self.objective.uses_negatives else None
        anchors = None if negative is None else ~negative
        if anchors is not None and not bool(anchors.any()):
            raise ConfigError("every sample of the batch is negative-only: no dense query is left")
        dense = sum(
            dense_contrastive_loss(
                maps[a],
                maps[b],
                method=self.method,
                tau=self.temperature,
                anchors=anchors,
                **self.dense_options,
            )
            for a, b in pairs
        ) / len(pairs)
        return combine_global_dense(global_loss, dense, self.weight), dict(embedded.features)
