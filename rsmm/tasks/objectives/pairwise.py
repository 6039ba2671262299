"""Pairwise objectives: optimal transport for SSL (thesis chapter 3), alignment and
uniformity, and generalised contrastive alignment.

Each scores two views ``f(zA, zB, **loss_kwargs)`` (``B x d`` L2-normalised rows, row
``i`` of both the same sample) and is averaged over every unordered pair of (modality,
view) groups of a batch. Under DDP the rows of all ranks are gathered with gradients
and every rank computes the loss of the global batch (its gradient, averaged by DDP,
is then exactly the single-process one).

============================= ========================================================
``loss``                      objective
============================= ========================================================
``ot_sample``                 :func:`~rsmm.losses.ot.sample_loss`, L_Sample, eq. 3.3-3.6
``ot_feature``                :func:`~rsmm.losses.ot.feature_loss`, L_Feature, eq. 3.7-3.8
``coot``                      :func:`~rsmm.losses.ot.coot_loss`, L_COOT, eq. 3.9-3.10
``ssw_ssl`` / ``sw_ssl``      :func:`~rsmm.losses.ot.ssw_ssl`, eq. 3.17, spherical / straight
                              slices
``align_uniform``             Wang & Isola's alignment + uniformity
``infonce_alignment``         :func:`~rsmm.losses.ot.infonce_alignment` (GCA's InfoNCE; with
                              ``cross_view: true`` the one-directional global term of dense
                              contrastive learning, eq. 3.20)
``gca_ince`` ``gca_rince``    :func:`~rsmm.losses.ot.gca_ince`, :func:`~rsmm.losses.ot.gca_rince`,
``gca_uot``                   :func:`~rsmm.losses.ot.gca_uot` (arXiv:2502.20141)
============================= ========================================================

The options (``loss_kwargs``) of each are the keyword arguments of its function. The
objectives with a temperature ``tau`` take the task's ``temperature`` unless
``loss_kwargs`` sets ``tau``.

Negative-only samples (the dataset's ``negative_classes``, e.g. Meter-ML's Negative)
follow the rule of every contrastive objective: they are never anchors or positives but
stay wherever samples compete or are spread apart. Each loss taking ``anchors`` applies
it (:attr:`~rsmm.tasks.objectives.base.Objective.uses_negatives`): their twin terms are
left out of the mean (``ot_sample``, ``infonce_alignment`` and the GCA family, the sample
term of ``coot``) while their rows stay in the plans and denominators; their views are
not aligned (``ssw_ssl``, ``sw_ssl``, ``align_uniform``) but count in the uniformity
terms; ``ot_feature`` leaves them out of its feature correlations (its only use of a
sample is as an aligned pair).

The literal thesis forms are options: ``ot_feature`` ``standardise: false`` (eq. 3.7),
``coot`` ``twins: true, reduction: sum`` (eq. 3.10), ``infonce_alignment``
``cross_view: true`` (eq. 3.20; for a pair of groups ``(a, b)``, ``a`` before ``b``, the
rows of ``a`` are the anchors and the rows of ``b`` the candidates);
``gca_rince`` ``total: negatives`` makes its ``lam`` act.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from torch import Tensor

from rsmm.errors import ConfigError
from rsmm.losses import ot
from rsmm.losses.ot.gca import RINCE_TOTALS
from rsmm.losses.ot.plans import REDUCTIONS
from rsmm.models.multimodal import MultiModalEncoder
from rsmm.models.views import EmbeddedViews
from rsmm.tasks.objectives.base import Objective, Ranks

#: keyword arguments of the pairwise losses that the objective fills, never ``loss_kwargs``
FILLED = ("anchors",)


def options_of(fn: Callable[..., Tensor], skip: Sequence[str] = ()) -> dict[str, Any]:
    """The keyword arguments of a pairwise loss ``fn(zA, zB, ...)`` and their defaults
    (those in ``skip`` and :data:`FILLED` left out)."""
    params = list(inspect.signature(fn).parameters.values())[2:]
    return {p.name: p.default for p in params if p.name not in (*skip, *FILLED)}


def takes_anchors(fn: Callable[..., Tensor]) -> bool:
    """Whether a pairwise loss applies the negative-only rule (has ``anchors``)."""
    return "anchors" in inspect.signature(fn).parameters


class PairwiseObjective(Objective):
    """``pair_loss(zA, zB, **options)`` averaged over every pair of groups.

    A subclass names its loss as :attr:`function` (its options are then the function's
    keyword arguments) or overrides :meth:`pair_loss` and declares :attr:`defaults`.
    """

    supports_dense: ClassVar[bool] = True
    #: the loss ``f(zA, zB, **options)``
    function: ClassVar[Callable[..., Tensor] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fn = cls.__dict__.get("function")
        if fn is not None:
            fn = fn.__func__ if isinstance(fn, staticmethod) else fn
            if "defaults" not in cls.__dict__:
                cls.defaults = options_of(fn)
            if "uses_negatives" not in cls.__dict__:
                cls.uses_negatives = takes_anchors(fn)
        cls.uses_temperature = "tau" in cls.defaults

    def __init__(
        self,
        encoder: MultiModalEncoder,
        *,
        temperature: float,
        hidden_dim: int = 512,
        batch_norm: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(encoder, temperature=temperature, **options)
        # what the loss is called with: the options given, and the task's temperature
        self.arguments = dict(options)
        if self.uses_temperature:
            self.arguments.setdefault("tau", temperature)

    def pair_loss(self, zA: Tensor, zB: Tensor, **options: Any) -> Tensor:
        """The loss of two groups ``B x d`` (``options`` hold ``anchors`` when the
        objective :attr:`uses_negatives` and the batch has negative-only samples)."""
        assert self.function is not None
        return self.function(zA, zB, **options)

    def loss(self, views: EmbeddedViews, ranks: Ranks) -> Tensor:
        views = ranks.global_views(views)
        pairs = views.pairs()
        if not pairs:
            raise ConfigError(
                f"loss {self.name!r} needs two views or two modalities to pair (got one group)"
            )
        z = views.unit()
        arguments = dict(self.arguments)
        negative = views.samples.negative
        if self.uses_negatives and negative is not None:
            if bool(negative.all()):
                raise ConfigError(
                    f"loss {self.name!r}: every sample of the batch is negative-only "
                    "(the dataset's negative_classes); no pair is left to align"
                )
            arguments["anchors"] = ~negative
        return sum(self.pair_loss(z[a], z[b], **arguments) for a, b in pairs) / len(pairs)


class OTSample(PairwiseObjective):
    """L_Sample: entropic plan between the samples of both views, twins as targets."""

    name = "ot_sample"
    function = staticmethod(ot.sample_loss)


class OTFeature(PairwiseObjective):
    """L_Feature: plan between standardised features (``standardise: false``: raw inner
    products of the L2-normalised rows, eq. 3.7 as printed), the identity as target."""

    name = "ot_feature"
    function = staticmethod(ot.feature_loss)


def check_choice(options: Mapping[str, Any], key: str, choices: Sequence[str]) -> None:
    """``options[key]`` is one of ``choices`` (else a :class:`ConfigError` naming them)."""
    if options[key] not in choices:
        raise ConfigError(
            f"loss_kwargs.{key}: unknown {options[key]!r}; choose one of {', '.join(choices)}"
        )


class COOT(PairwiseObjective):
    """L_COOT: co-optimal transport (Redko et al. 2020, arXiv:2002.03731), joint sample
    and feature plans (``twins: true, reduction: sum`` = eq. 3.10 as printed)."""

    name = "coot"
    function = staticmethod(ot.coot_loss)

    @classmethod
    def check_values(cls, options: Mapping[str, Any]) -> None:
        check_choice(options, "reduction", REDUCTIONS)


class SSWSSL(PairwiseObjective):
    """SSW-SSL: alignment + spherical sliced-Wasserstein uniformity (Bonet et al. 2023,
    arXiv:2206.08780)."""

    name = "ssw_ssl"
    function = staticmethod(ot.ssw_ssl)


class SWSSL(PairwiseObjective):
    """SW-SSL: SSW-SSL with straight-line slices."""

    name = "sw_ssl"
    defaults: ClassVar[dict[str, Any]] = options_of(ot.ssw_ssl, skip=("sliced",))
    uses_negatives: ClassVar[bool] = True

    def pair_loss(self, zA: Tensor, zB: Tensor, **options: Any) -> Tensor:
        return ot.ssw_ssl(zA, zB, sliced="linear", **options)


class AlignUniform(PairwiseObjective):
    """Alignment + ``lam`` times the mean uniformity of both views (Wang & Isola 2020,
    arXiv:2005.10242), ``t`` the uniformity's scale."""

    name = "align_uniform"
    defaults: ClassVar[dict[str, Any]] = {"lam": 1.0, "t": 2.0}
    uses_negatives: ClassVar[bool] = True

    def pair_loss(
        self,
        zA: Tensor,
        zB: Tensor,
        lam: float = 1.0,
        t: float = 2.0,
        anchors: Tensor | None = None,
    ) -> Tensor:
        align = ot.align_loss(zA, zB, anchors=anchors)
        return align + lam * (ot.uniform_loss(zA, t) + ot.uniform_loss(zB, t)) / 2


class InfoNCEAlignment(PairwiseObjective):
    """InfoNCE as one Sinkhorn row-normalisation (GCA, arXiv:2502.20141)."""

    name = "infonce_alignment"
    function = staticmethod(ot.infonce_alignment)


class GCAInce(PairwiseObjective):
    """GCA-INCE: several Sinkhorn steps of the InfoNCE plan (arXiv:2502.20141)."""

    name = "gca_ince"
    function = staticmethod(ot.gca_ince)


class GCARInce(PairwiseObjective):
    """GCA-RINCE: the robust ``(q, lam)`` variant of GCA-INCE (arXiv:2502.20141)."""

    name = "gca_rince"
    function = staticmethod(ot.gca_rince)

    @classmethod
    def check_values(cls, options: Mapping[str, Any]) -> None:
        check_choice(options, "total", RINCE_TOTALS)


class GCAUOT(PairwiseObjective):
    """GCA-UOT: an unbalanced (KL-relaxed marginals) plan (arXiv:2502.20141)."""

    name = "gca_uot"
    function = staticmethod(ot.gca_uot)
