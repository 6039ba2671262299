"""The base of pre-training objectives, and how an objective sees the DDP ranks.

An objective is what ``PretrainTask(loss=<name>)`` runs on a batch. Its class declares

* :attr:`Objective.name`, the ``loss`` name it is registered under;
* :attr:`Objective.defaults`, its options (``loss_kwargs``) with their defaults, checked
  by :meth:`Objective.check_options` when the task is constructed (before a run folder
  exists): an unknown name or a bad value is a :class:`~rsmm.errors.ConfigError` naming
  the option and listing the valid ones;
* whether it reads the task's ``temperature`` (:attr:`Objective.uses_temperature`),
  applies the negative-only rule of the dataset's ``negative_classes``
  (:attr:`Objective.uses_negatives`), can be combined with dense matching
  (:attr:`Objective.supports_dense`) and handles samples that lack a modality
  (:attr:`Objective.supports_presence`);
* how it consumes the views: :meth:`Objective.step` embeds every (modality, view) with
  the online encoder and hands the :class:`~rsmm.models.views.EmbeddedViews` to
  :meth:`Objective.loss`; methods with their own networks (momentum targets) override
  :meth:`Objective.step`.

Being a submodule of the task (``task.method``), an objective's state (momentum
targets, queues, predictors) is in the task's checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor, nn

from rsmm.errors import ConfigError
from rsmm.models.multimodal import MultiModalEncoder
from rsmm.models.views import AllGather, EmbeddedViews, SampleInfo

#: ``{modality: [view_1, ..., view_V]}``, each ``B x C x H x W``
Views = Mapping[str, Sequence[Tensor]]


@dataclass(frozen=True)
class Ranks:
    """The DDP ranks a batch is spread over, as an objective sees them.

    One process (or ``gather_distributed=False``) is ``Ranks()``: nothing is gathered.

    Attributes:
        world_size: number of ranks whose rows the objective gathers.
        rank: this process' rank.
        all_gather: stacks a tensor of every rank (see
            :data:`~rsmm.models.views.AllGather`); unused when ``world_size == 1``.
        all_reduce: sums a tensor over the ranks; unused when ``world_size == 1``.
    """

    world_size: int = 1
    rank: int = 0
    all_gather: AllGather | None = None
    all_reduce: Callable[[Tensor], Tensor] | None = None

    @property
    def distributed(self) -> bool:
        """Whether the rows of other ranks take part."""
        return self.world_size > 1

    def gather(self, t: Tensor, grads: bool) -> Tensor:
        """The rows of ``t`` of every rank, rank-major (``t`` itself on one rank)."""
        if not self.distributed:
            return t
        assert self.all_gather is not None
        return self.all_gather(t, grads).reshape(-1, *t.shape[1:])

    def sum(self, t: Tensor) -> Tensor:
        """``t`` summed over the ranks."""
        if not self.distributed:
            return t
        assert self.all_reduce is not None
        return self.all_reduce(t)

    def global_views(self, views: EmbeddedViews) -> EmbeddedViews:
        """``views`` of the whole global batch (``views`` itself on one rank)."""
        if not self.distributed:
            return views
        assert self.all_gather is not None
        return views.gathered(self.all_gather, self.rank)


def reject_unknown_options(
    loss: str, options: Mapping[str, Any] | None, allowed: Sequence[str] | Mapping[str, Any]
) -> None:
    """:class:`~rsmm.errors.ConfigError` naming the ``options`` that objective ``loss``
    does not take and listing those it takes (``allowed``, in that order)."""
    unknown = sorted(set(options or {}) - set(allowed))
    if unknown:
        raise ConfigError(
            f"loss_kwargs: {unknown} are not options of loss {loss!r} "
            f"(it takes {', '.join(allowed) or 'none'})"
        )


def check_number(
    options: Mapping[str, Any],
    key: str,
    low: float,
    high: float | None = None,
    strict: bool = False,
) -> None:
    """``options[key]`` is a number ``>= low`` (``> low`` if ``strict``) and ``<= high``."""
    value = options[key]
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok:
        ok = (value > low if strict else value >= low) and (high is None or value <= high)
    if not ok:
        bound = (
            f"in [{low:g}, {high:g}]" if high is not None else f"{'>' if strict else '>='} {low:g}"
        )
        raise ConfigError(f"loss_kwargs.{key} must be a number {bound}, got {value!r}")


class Objective(nn.Module):
    """Base of the pre-training objectives.

    Args:
        encoder: the task's online encoder (not kept as a submodule).
        temperature: the task's ``temperature``.
        hidden_dim: the task's projector width (BYOL's default predictor width).
        batch_norm: the task's ``projector_bn``.
        **options: the objective's ``loss_kwargs``; see :attr:`defaults`.
    """

    #: the ``PretrainTask(loss=...)`` name
    name: ClassVar[str] = ""
    #: accepted ``loss_kwargs`` and their defaults
    defaults: ClassVar[Mapping[str, Any]] = {}
    #: reads the task's ``temperature``
    uses_temperature: ClassVar[bool] = False
    #: rows of negative-only samples are never anchors or positives
    uses_negatives: ClassVar[bool] = False
    #: may be combined with dense matching (``PretrainTask(dense=...)``)
    supports_dense: ClassVar[bool] = False
    #: handles samples that lack a modality (``SampleInfo.presence``)
    supports_presence: ClassVar[bool] = False

    def __init__(
        self,
        encoder: MultiModalEncoder,
        *,
        temperature: float,
        hidden_dim: int = 512,
        batch_norm: bool = True,
        **options: Any,
    ) -> None:
        super().__init__()
        self.options = {**self.defaults, **self.check_options(options)}
        self.temperature = temperature

    # -- options -------------------------------------------------------------------------

    @classmethod
    def check_options(cls, options: Mapping[str, Any] | None) -> dict[str, Any]:
        """The objective's ``loss_kwargs``, checked: unknown names and out-of-range
        values are a :class:`~rsmm.errors.ConfigError`."""
        options = dict(options or {})
        if options and not cls.defaults:
            tau = " (its temperature is `temperature`)" if cls.uses_temperature else ""
            raise ConfigError(
                f"loss_kwargs: loss {cls.name!r} takes no options{tau}, got {sorted(options)}"
            )
        reject_unknown_options(cls.name, options, cls.defaults)
        cls.check_values({**cls.defaults, **options})
        return options

    @classmethod
    def check_values(cls, options: Mapping[str, Any]) -> None:
        """Raise a :class:`~rsmm.errors.ConfigError` naming ``loss_kwargs.<key>`` for an
        out-of-range value (all of :attr:`defaults` present)."""

    # -- a training step -----------------------------------------------------------------

    def before_step(self, encoder: MultiModalEncoder, step: int, total_steps: int) -> None:
        """Called at the start of every ``training_step`` (momentum updates)."""

    def forward(
        self, encoder: MultiModalEncoder, views: Views, samples: SampleInfo, ranks: Ranks
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The loss of a batch, and ``{modality: backbone features}`` of its online rows.

        Args:
            encoder: the online encoder.
            views: the batch's views.
            samples: what is known about the batch's samples.
            ranks: the DDP ranks to gather rows from.
        """
        if samples.presence is not None and not self.supports_presence:
            raise ConfigError(
                f"loss {self.name!r} does not handle samples that lack a modality (a dataset "
                "with min_modalities or drop_modalities); use a contrastive loss (ntxent, "
                "supcon, kernel_ntxent, hyp_ntxent) or load only samples that have every modality"
            )
        return self.step(encoder, views, samples, ranks)

    def step(
        self, encoder: MultiModalEncoder, views: Views, samples: SampleInfo, ranks: Ranks
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """How the objective consumes the views: by default every (modality, view)
        goes through the online encoder (one pass per modality) and :meth:`loss` scores
        the embeddings."""
        embedded = encoder.embed_views(views, samples=samples)
        return self.loss(embedded, ranks), dict(embedded.features)

    def loss(self, views: EmbeddedViews, ranks: Ranks) -> Tensor:
        """The loss of embedded views (this rank's share under DDP, or the loss of the
        gathered global batch, as each objective documents)."""
        raise NotImplementedError
