"""The baseline self-supervised methods as objectives: MoCo v2, BYOL, Barlow Twins,
VICReg and MMCR.

Each owns what it adds to the shared per-modality encoder (MoCo's and BYOL's momentum
targets, MoCo's queue, BYOL's predictors) and updates it once per optimiser step
(:meth:`~rsmm.tasks.objectives.base.Objective.before_step`). The target networks have
no gradients and are not optimised. Groups are the (modality, view) pairs of a batch:

============== =========================================================================
``loss``       multimodal pairing
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

With one modality and two views each is the standard single-modal method. They work
on the projector outputs and do not apply the negative-only rule (every sample is an
ordinary sample).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from lightly.loss import BarlowTwinsLoss, VICRegLoss
from torch import Tensor, nn

from rsmm.errors import ConfigError
from rsmm.losses.ssl import cross_group_byol, cross_group_moco, mean_over_pairs, mmcr_loss
from rsmm.models.heads import ProjectionHead
from rsmm.models.multimodal import MultiModalEncoder
from rsmm.models.views import EmbeddedViews, SampleInfo
from rsmm.tasks.momentum import KeyQueue, MomentumTarget, momentum_at
from rsmm.tasks.objectives.base import Objective, Ranks, Views, check_number


class SSLMethod(Objective):
    """A baseline method: it needs the encoder's projector."""

    def __init__(self, encoder: MultiModalEncoder, **kwargs: Any) -> None:
        super().__init__(encoder, **kwargs)
        if encoder.projection_dim <= 0:
            raise ConfigError(f"loss {self.name!r} needs a projector: use projection_dim > 0")


class _Momentum(SSLMethod):
    """A method with a momentum target (encoder + projector) per modality."""

    def __init__(self, encoder: MultiModalEncoder, **kwargs: Any) -> None:
        super().__init__(encoder, **kwargs)
        self.target = MomentumTarget(encoder)

    @classmethod
    def check_values(cls, options: Mapping[str, Any]) -> None:
        for key in ("momentum", "momentum_end"):
            check_number(options, key, low=0.0, high=1.0)

    def momentum(self, step: int, total_steps: int) -> float:
        """The EMA momentum at optimiser step ``step`` (lightly's cosine schedule)."""
        o = self.options
        return momentum_at(step, total_steps, float(o["momentum"]), float(o["momentum_end"]))

    def before_step(self, encoder: MultiModalEncoder, step: int, total_steps: int) -> None:
        self.target.update_once(encoder, self.momentum(step, total_steps), step)

    @torch.no_grad()
    def target_views(self, views: Views) -> EmbeddedViews:
        """The target network's embeddings of ``views``."""
        return self.target.net.embed_views(views)


class MoCo(_Momentum):
    """MoCo v2 (Chen et al. 2020, arXiv:2003.04297): InfoNCE of online queries against
    momentum keys and a queue of past keys (:func:`rsmm.losses.ssl.cross_group_moco`).

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
    uses_temperature = True
    defaults: ClassVar[dict[str, Any]] = {
        "queue_size": 3072,
        "momentum": 0.99,
        "momentum_end": 1.0,
        "symmetric": True,
    }

    def __init__(self, encoder: MultiModalEncoder, **kwargs: Any) -> None:
        super().__init__(encoder, **kwargs)
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

    def step(
        self, encoder: MultiModalEncoder, views: Views, samples: SampleInfo, ranks: Ranks
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
        online = encoder.embed_views(views_q, samples=samples)
        queries = list(online.unit())
        keys = list(self.target_views(views_k).unit())
        # a copy: the enqueue below writes in place into the buffer autograd would keep
        loss = cross_group_moco(queries, keys, self.keys.queue.clone(), self.temperature, pairs)
        if self.training:
            self.keys.enqueue(ranks.gather(torch.cat(keys), False))
        return loss, dict(online.features)


class BYOL(_Momentum):
    """BYOL (Grill et al. 2020, arXiv:2006.07733): a predictor on the online branch
    regresses the EMA target's projection of another group
    (:func:`rsmm.losses.ssl.cross_group_byol`)."""

    name = "byol"
    defaults: ClassVar[dict[str, Any]] = {
        "momentum": 0.99,
        "momentum_end": 1.0,
        "predictor_hidden_dim": None,
    }

    def __init__(
        self, encoder: MultiModalEncoder, *, hidden_dim: int, batch_norm: bool, **kwargs: Any
    ) -> None:
        super().__init__(encoder, hidden_dim=hidden_dim, batch_norm=batch_norm, **kwargs)
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

    def step(
        self, encoder: MultiModalEncoder, views: Views, samples: SampleInfo, ranks: Ranks
    ) -> tuple[Tensor, dict[str, Tensor]]:
        online = encoder.embed_views(views, samples=samples)
        predictions = [self.predictors[m](z) for (m, _), z in zip(online.layout, online.embeddings)]
        targets = list(self.target_views(views).embeddings)
        return cross_group_byol(predictions, targets), dict(online.features)


class _PairedLightly(SSLMethod):
    """A symmetric lightly loss averaged over unordered pairs of groups, on the
    projector outputs of the global batch."""

    def make_loss(self) -> nn.Module:
        raise NotImplementedError

    def __init__(self, encoder: MultiModalEncoder, **kwargs: Any) -> None:
        super().__init__(encoder, **kwargs)
        # gather_distributed=False: the objective gathers the rows of every rank itself
        self.criterion = self.make_loss()

    def loss(self, views: EmbeddedViews, ranks: Ranks) -> Tensor:
        return mean_over_pairs(self.criterion, ranks.global_views(views).embeddings)


class BarlowTwins(_PairedLightly):
    """Barlow Twins (Zbontar et al. 2021, arXiv:2103.03230, eq. 1), lightly's
    ``BarlowTwinsLoss``."""

    name = "barlow_twins"
    defaults: ClassVar[dict[str, Any]] = {"lambda_param": 0.0051}

    @classmethod
    def check_values(cls, options: Mapping[str, Any]) -> None:
        check_number(options, "lambda_param", low=0.0)

    def make_loss(self) -> nn.Module:
        return BarlowTwinsLoss(lambda_param=float(self.options["lambda_param"]))


class VICReg(_PairedLightly):
    """VICReg (Bardes et al. 2022, arXiv:2105.04906, eq. 6), lightly's ``VICRegLoss``.

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
            check_number(options, key, low=0.0)
        check_number(options, "eps", low=0.0, strict=True)

    def make_loss(self) -> nn.Module:
        o = self.options
        return VICRegLoss(
            lambda_param=float(o["lambda_param"]),
            mu_param=float(o["mu_param"]),
            nu_param=float(o["nu_param"]),
            eps=float(o["eps"]),
        )


class MMCR(SSLMethod):
    """MMCR (Yerxa et al. 2023, arXiv:2303.03307): nuclear norm of the per-sample
    centroids of all the sample's (modality, view) embeddings
    (:func:`rsmm.losses.ssl.mmcr_loss`)."""

    name = "mmcr"
    defaults: ClassVar[dict[str, Any]] = {"lmda": 5e-3}

    @classmethod
    def check_values(cls, options: Mapping[str, Any]) -> None:
        check_number(options, "lmda", low=0.0)

    def loss(self, views: EmbeddedViews, ranks: Ranks) -> Tensor:
        if views.num_groups < 2:
            raise ConfigError("mmcr needs two views or two modalities per sample (got one group)")
        per_sample = torch.stack(ranks.global_views(views).unit(), dim=1)
        return mmcr_loss(per_sample, float(self.options["lmda"]))
