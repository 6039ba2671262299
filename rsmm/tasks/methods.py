"""The step logic of the baseline SSL methods of :class:`~rsmm.tasks.PretrainTask`.

One small strategy module per method (``PretrainTask(loss=<name>)``): it owns what the
method adds to the shared per-modality encoder (MoCo's and BYOL's momentum targets,
MoCo's queue, BYOL's predictors), computes the loss of a batch's views, and updates its
state once per optimiser step. Being a submodule of the task, all of it is in the
task's checkpoint; the target networks have no gradients and are not optimised.

Groups are the (modality, view) pairs of a batch:

============== =========================================================================
method         multimodal pairing
============== =========================================================================
moco           online queries of group a vs target keys of group b, every ordered pair
               a != b (cross-modal pairs are positives); one target encoder+projector
               per modality; one queue shared by all modalities, fed with the target
               keys of every group
byol           predictor(online of a) vs target of b, every ordered pair a != b; one
               target encoder+projector and one predictor per modality
barlow_twins   lightly's BarlowTwinsLoss averaged over unordered pairs of groups
vicreg         lightly's VICRegLoss averaged over unordered pairs of groups
mmcr           one centroid per sample over all its groups (nuclear norm)
============== =========================================================================

With one modality and two views each is the standard single-modal method.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from lightly.loss import BarlowTwinsLoss, VICRegLoss
from torch import Tensor, nn

from rsmm.errors import ConfigError, UnknownNameError
from rsmm.losses.ssl import cross_group_byol, cross_group_moco, mean_over_pairs, mmcr_loss
from rsmm.models.heads import ProjectionHead
from rsmm.models.multimodal import MultiModalEncoder
from rsmm.tasks.momentum import KeyQueue, MomentumTarget, momentum_at

#: ``gather(t, with_grads)``: the rows of ``t`` of every DDP rank (``t`` itself on one
#: process), with gradients flowing back to each rank's own rows when asked.
Gather = Callable[[Tensor, bool], Tensor]

Views = Mapping[str, Sequence[Tensor]]


def project_groups(
    encoder: MultiModalEncoder, views: Views
) -> tuple[list[Tensor], dict[str, Tensor]]:
    """Projector outputs (not normalised) of every (modality, view) group.

    Each modality's views go through its backbone and projector as one batch.

    Returns:
        ``(groups, features)``: one ``B x d`` float32 tensor per group, ordered
        (modality, view), and ``{modality: backbone features of its V x B rows}``.
    """
    if encoder.projection_dim <= 0:
        raise ConfigError("the SSL methods need a projector: use projection_dim > 0")
    groups: list[Tensor] = []
    feats: dict[str, Tensor] = {}
    for m, vs in views.items():
        if m not in encoder.backbones:
            raise UnknownNameError(f"no encoder for modality {m!r} (have {list(encoder.modalities)})")
        f = encoder.backbones[m](torch.cat(list(vs), dim=0))
        feats[m] = f
        groups.extend(encoder.projectors[m](f).float().chunk(len(vs), dim=0))
    return groups, feats


class SSLMethod(nn.Module):
    """Base of the method strategies.

    Args:
        encoder: the task's online encoder (not kept as a submodule).
        temperature: the task's temperature (used by MoCo).
        hidden_dim: the task's projector width (BYOL's default predictor width).
        batch_norm: the task's ``projector_bn`` (used by BYOL's predictor).
        **options: the method's ``loss_kwargs``; see :attr:`defaults`.
    """

    #: the ``PretrainTask(loss=...)`` name
    name: ClassVar[str] = ""
    #: accepted ``loss_kwargs`` and their defaults
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        encoder: MultiModalEncoder,
        temperature: float,
        hidden_dim: int,
        batch_norm: bool,
        **options: Any,
    ) -> None:
        super().__init__()
        if encoder.projection_dim <= 0:
            raise ConfigError(f"loss {self.name!r} needs a projector: use projection_dim > 0")
        self.options = {**self.defaults, **check_options(self.name, options)}
        self.temperature = temperature

    @classmethod
    def check_values(cls, options: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` naming ``loss_kwargs.<key>`` for an out-of-range value of
        the method's options (all of :attr:`defaults` present)."""

    def before_step(self, encoder: MultiModalEncoder, step: int, total_steps: int) -> None:
        """Called at the start of every ``training_step`` (momentum updates)."""

    def forward(
        self, encoder: MultiModalEncoder, views: Views, gather: Gather
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """``(loss, {modality: backbone features})`` of a batch's views."""
        raise NotImplementedError


class _Momentum(SSLMethod):
    """A method with a momentum target (encoder + projector) per modality."""

    def __init__(self, encoder: MultiModalEncoder, *args: Any, **options: Any) -> None:
        super().__init__(encoder, *args, **options)
        self.target = MomentumTarget(encoder)

    @classmethod
    def check_values(cls, options: Mapping[str, Any]) -> None:
        for key in ("momentum", "momentum_end"):
            _check_number(options, key, low=0.0, high=1.0)

    def momentum(self, step: int, total_steps: int) -> float:
        """The EMA momentum at optimiser step ``step`` (lightly's cosine schedule)."""
        o = self.options
        return momentum_at(step, total_steps, float(o["momentum"]), float(o["momentum_end"]))

    def before_step(self, encoder: MultiModalEncoder, step: int, total_steps: int) -> None:
        self.target.update_once(encoder, self.momentum(step, total_steps), step)

    @torch.no_grad()
    def target_groups(self, views: Views) -> list[Tensor]:
        return project_groups(self.target.net, views)[0]


class MoCo(_Momentum):
    """MoCo v2 (Chen et al. 2020): InfoNCE of online queries against momentum keys and
    a queue of past keys (:func:`rsmm.losses.ssl.cross_group_moco`).

    ``symmetric=False`` is MoCo v2 as published: the first view of each modality is
    the query, the last view's momentum keys are the positives (every modality's
    query against every modality's key) and only those keys enter the queue, one per
    sample and modality. It needs two views per modality. ``symmetric=True`` (default)
    scores every ordered pair of (modality, view) groups and queues the keys of all
    groups: twice the forward passes, and a queue of ``queue_size`` holds
    ``queue_size / groups`` distinct samples. No shuffling BN: with ``symmetric=True``
    the views of a modality share one BatchNorm batch; with ``symmetric=False`` the
    query and key views are separate batches, as in torchgeo's ``MoCoTask``. Validation
    batches (one view per modality) are scored symmetrically across modalities.
    """

    name = "moco"
    defaults: ClassVar[dict[str, Any]] = {
        "queue_size": 3072,
        "momentum": 0.99,
        "momentum_end": 1.0,
        "symmetric": True,
    }

    def __init__(self, encoder: MultiModalEncoder, *args: Any, **options: Any) -> None:
        super().__init__(encoder, *args, **options)
        self.symmetric = bool(self.options["symmetric"])
        self.keys = KeyQueue(int(self.options["queue_size"]), encoder.projection_dim)

    @classmethod
    def check_values(cls, options: Mapping[str, Any]) -> None:
        super().check_values(options)
        size = options["queue_size"]
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError(
                f"loss_kwargs.queue_size must be an integer >= 1, got {options['queue_size']!r}"
            )
        if not isinstance(options["symmetric"], bool):
            raise ConfigError(
                f"loss_kwargs.symmetric must be true or false, got {options['symmetric']!r}"
            )

    def forward(
        self, encoder: MultiModalEncoder, views: Views, gather: Gather
    ) -> tuple[Tensor, dict[str, Tensor]]:
        pairs = None
        views_q = views_k = views
        short = [m for m, vs in views.items() if len(vs) < 2]
        # one direction; an evaluation batch with one view per modality is scored
        # symmetrically across modalities instead (nothing is queued outside training)
        if not self.symmetric and (self.training or not short):
            if short:
                raise ConfigError(
                    f"loss_kwargs.symmetric=false needs two views per modality (query view 1, "
                    f"key view 2, as MoCo v2); modalities {short} have one (set data views: 2)"
                )
            n_mod = len(views)
            pairs = [(a, b) for a in range(n_mod) for b in range(n_mod)]
            views_q = {m: list(vs[:1]) for m, vs in views.items()}
            views_k = {m: list(vs[-1:]) for m, vs in views.items()}
        z, feats = project_groups(encoder, views_q)
        queries = [F.normalize(g, dim=1) for g in z]
        keys = [F.normalize(g, dim=1) for g in self.target_groups(views_k)]
        # a copy: the enqueue below writes in place into the buffer autograd would keep
        loss = cross_group_moco(queries, keys, self.keys.queue.clone(), self.temperature, pairs)
        if self.training:
            self.keys.enqueue(gather(torch.cat(keys), False))
        return loss, feats


class BYOL(_Momentum):
    """BYOL (Grill et al. 2020): a predictor on the online branch regresses the EMA
    target's projection of another group (:func:`rsmm.losses.ssl.cross_group_byol`)."""

    name = "byol"
    defaults: ClassVar[dict[str, Any]] = {
        "momentum": 0.99,
        "momentum_end": 1.0,
        "predictor_hidden_dim": None,
    }

    def __init__(
        self,
        encoder: MultiModalEncoder,
        temperature: float,
        hidden_dim: int,
        batch_norm: bool,
        **options: Any,
    ) -> None:
        super().__init__(encoder, temperature, hidden_dim, batch_norm, **options)
        d = encoder.projection_dim
        width = int(self.options["predictor_hidden_dim"] or hidden_dim)
        self.predictors = nn.ModuleDict()
        for m in encoder.modalities:
            self.predictors[m] = ProjectionHead(d, width, d, num_layers=2, batch_norm=batch_norm)

    @classmethod
    def check_values(cls, options: Mapping[str, Any]) -> None:
        super().check_values(options)
        width = options["predictor_hidden_dim"]
        if width is not None and (not isinstance(width, int) or width < 1):
            raise ConfigError(
                f"loss_kwargs.predictor_hidden_dim must be null or an integer >= 1, got {width!r}"
            )

    def forward(
        self, encoder: MultiModalEncoder, views: Views, gather: Gather
    ) -> tuple[Tensor, dict[str, Tensor]]:
        z, feats = project_groups(encoder, views)
        modality_of = [m for m, vs in views.items() for _ in vs]
        predictions = [self.predictors[m](g) for m, g in zip(modality_of, z)]
        return cross_group_byol(predictions, self.target_groups(views)), feats


class _PairedLightly(SSLMethod):
    """A symmetric lightly loss averaged over unordered pairs of groups, on the
    projector outputs of the global batch."""

    def make_loss(self) -> nn.Module:
        raise NotImplementedError

    def __init__(self, *args: Any, **options: Any) -> None:
        super().__init__(*args, **options)
        # gather_distributed=False: the task gathers the rows of every rank itself
        self.criterion = self.make_loss()

    def forward(
        self, encoder: MultiModalEncoder, views: Views, gather: Gather
    ) -> tuple[Tensor, dict[str, Tensor]]:
        z, feats = project_groups(encoder, views)
        return mean_over_pairs(self.criterion, [gather(g, True) for g in z]), feats


class BarlowTwins(_PairedLightly):
    """Barlow Twins (Zbontar et al. 2021, eq. 1), lightly's ``BarlowTwinsLoss``."""

    name = "barlow_twins"
    defaults: ClassVar[dict[str, Any]] = {"lambda_param": 0.0051}

    @classmethod
    def check_values(cls, options: Mapping[str, Any]) -> None:
        _check_number(options, "lambda_param", low=0.0)

    def make_loss(self) -> nn.Module:
        return BarlowTwinsLoss(lambda_param=float(self.options["lambda_param"]))


class VICReg(_PairedLightly):
    """VICReg (Bardes et al. 2022, eq. 6), lightly's ``VICRegLoss``.

    lightly normalises the terms as the authors' code does, not as eq. 6 is printed:
    the invariance term is a mean over samples *and* dimensions and the variance term
    is halved (averaged over the two branches); the weights 25 / 25 / 1 refer to that
    form."""

    name = "vicreg"
    defaults: ClassVar[dict[str, Any]] = {
        "lambda_param": 25.0,
        "mu_param": 25.0,
        "nu_param": 1.0,
        "eps": 1e-4,
    }

    @classmethod
    def check_values(cls, options: Mapping[str, Any]) -> None:
        for key in ("lambda_param", "mu_param", "nu_param"):
            _check_number(options, key, low=0.0)
        _check_number(options, "eps", low=0.0, strict=True)

    def make_loss(self) -> nn.Module:
        o = self.options
        return VICRegLoss(
            lambda_param=float(o["lambda_param"]),
            mu_param=float(o["mu_param"]),
            nu_param=float(o["nu_param"]),
            eps=float(o["eps"]),
        )


class MMCR(SSLMethod):
    """MMCR (Yerxa et al. 2023): nuclear norm of the per-sample centroids of all the
    sample's (modality, view) embeddings (:func:`rsmm.losses.ssl.mmcr_loss`)."""

    name = "mmcr"
    defaults: ClassVar[dict[str, Any]] = {"lmda": 5e-3}

    @classmethod
    def check_values(cls, options: Mapping[str, Any]) -> None:
        _check_number(options, "lmda", low=0.0)

    def forward(
        self, encoder: MultiModalEncoder, views: Views, gather: Gather
    ) -> tuple[Tensor, dict[str, Tensor]]:
        z, feats = project_groups(encoder, views)
        if len(z) < 2:
            raise ConfigError("mmcr needs two views or two modalities per sample (got one group)")
        per_sample = torch.stack([gather(F.normalize(g, dim=1), True) for g in z], dim=1)
        return mmcr_loss(per_sample, float(self.options["lmda"])), feats


METHODS: dict[str, type[SSLMethod]] = {
    cls.name: cls for cls in (MoCo, BYOL, BarlowTwins, VICReg, MMCR)
}
#: names accepted by ``PretrainTask(loss=...)`` for these methods
SSL_METHODS = tuple(METHODS)


def check_options(name: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate the ``loss_kwargs`` of method ``name`` (unknown keys are an error)."""
    if name not in METHODS:
        raise ConfigError(f"loss: unknown {name!r}; choose one of {', '.join(SSL_METHODS)}")
    options = dict(options or {})
    allowed = METHODS[name].defaults
    reject_unknown_options(name, options, allowed)
    METHODS[name].check_values({**allowed, **options})
    return options


def reject_unknown_options(
    loss: str, options: Mapping[str, Any] | None, allowed: Sequence[str] | Mapping[str, Any]
) -> None:
    """``ValueError`` naming the ``loss_kwargs`` of ``options`` that loss ``loss`` does
    not take (``allowed``, in the order the message lists them)."""
    unknown = sorted(set(options or {}) - set(allowed))
    if unknown:
        raise ConfigError(
            f"loss_kwargs: {unknown} are not options of loss {loss!r} "
            f"(it takes {', '.join(allowed) or 'none'})"
        )


def _check_number(
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


def build_method(
    name: str,
    encoder: MultiModalEncoder,
    *,
    temperature: float,
    hidden_dim: int,
    batch_norm: bool,
    options: Mapping[str, Any] | None = None,
) -> SSLMethod:
    """The strategy of method ``name`` for ``encoder`` with its ``loss_kwargs``."""
    check_options(name, options)
    return METHODS[name](encoder, temperature, hidden_dim, batch_norm, **dict(options or {}))
