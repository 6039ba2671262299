"""Multimodal self-supervised (or supervised contrastive) pre-training.

Every (modality, view) of a batch goes through its modality's encoder and projector;
the rows are scored by a contrastive loss (:mod:`rsmm.losses`). Under DDP the
embeddings of all ranks are gathered with gradients, so every rank's anchors see the
whole global batch as negatives: the loss on 2 ranks x N samples equals the loss on
1 rank x 2N samples.

While pre-training, a leave-one-out k-nearest-neighbour accuracy on the labelled
validation split (when there is one) is logged every epoch as ``val/knn_acc``, so that
a collapsed run shows early.

The baseline SSL methods (MoCo v2, BYOL, Barlow Twins, VICReg, MMCR) run their step
through a strategy of :mod:`rsmm.tasks.methods`, which also holds their momentum
targets, queue and predictors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from itertools import combinations
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from rsmm.errors import ConfigError
from rsmm.losses.contrastive import per_anchor_contrastive, supcon_positives
from rsmm.models.multimodal import MultiModalEncoder
from rsmm.tasks.base import MultiModalTask, encoder_inputs
from rsmm.tasks.methods import (
    SSL_METHODS,
    SSLMethod,
    build_method,
    check_options,
    reject_unknown_options,
)

CONTRASTIVE = ("ntxent", "supcon")


def _align_uniform(zA: Tensor, zB: Tensor, lam: float = 1.0, t: float = 2.0) -> Tensor:
    """Wang & Isola (2020): alignment + lam * mean uniformity of both views."""
    from rsmm.losses.ot import align_loss, uniform_loss

    return align_loss(zA, zB) + lam * (uniform_loss(zA, t) + uniform_loss(zB, t)) / 2


def pairwise_losses() -> dict[str, Callable[..., Tensor]]:
    """Pairwise objectives ``f(zA, zB, **loss_kwargs)`` of chapter 3 (optimal transport),
    selectable as ``PretrainTask(loss=<name>)``."""
    from rsmm.losses import ot

    return {
        "ot_sample": ot.sample_loss,  # eq. 3.3-3.6
        "ot_feature": ot.feature_loss,  # eq. 3.7-3.8
        "coot": ot.coot_loss,  # eq. 3.9-3.10
        "ssw_ssl": ot.ssw_ssl,  # eq. 3.17
        "sw_ssl": lambda zA, zB, **kw: ot.ssw_ssl(zA, zB, sliced="linear", **kw),
        "align_uniform": _align_uniform,
        "infonce_alignment": ot.infonce_alignment,
        "gca_ince": ot.gca_ince,
        "gca_rince": ot.gca_rince,
        "gca_uot": ot.gca_uot,
    }


def _check_pairwise_options(loss: str, options: dict[str, Any] | None) -> None:
    """Unknown ``loss_kwargs`` of a pairwise objective fail when the task is configured
    (not at the first training step)."""
    import inspect

    from rsmm.losses import ot

    fn = ot.ssw_ssl if loss == "sw_ssl" else pairwise_losses()[loss]
    params = list(inspect.signature(fn).parameters.values())[2:]  # after zA, zB
    if any(q.kind is q.VAR_KEYWORD for q in params):
        return
    allowed = [q.name for q in params if q.name != "sliced" or loss != "sw_ssl"]
    reject_unknown_options(loss, options, allowed)


PAIRWISE = (
    "ot_sample", "ot_feature", "coot", "ssw_ssl", "sw_ssl", "align_uniform",
    "infonce_alignment", "gca_ince", "gca_rince", "gca_uot",
)  # fmt: skip


def negative_rows(labels: Tensor, negative_class: int | None) -> Tensor:
    """Boolean mask of rows whose sample is of the negative-only class."""
    if negative_class is None:
        return torch.zeros(labels.shape[0], dtype=torch.bool, device=labels.device)
    if labels.ndim == 2:  # multi-hot: the negative class is the all-zero row
        return labels.sum(1) == 0
    return labels == negative_class


def knn_accuracy(features: Tensor, labels: Tensor, k: int = 20) -> float:
    """Leave-one-out cosine k-NN accuracy (majority vote weighted by similarity)."""
    keep = labels >= 0
    f, y = F.normalize(features[keep].float(), dim=1), labels[keep]
    n = f.shape[0]
    if n < 2:
        return float("nan")
    k = min(k, n - 1)
    sim = f @ f.T
    sim.fill_diagonal_(float("-inf"))
    top, idx = sim.topk(k, dim=1)
    votes = torch.zeros(n, int(y.max()) + 1, device=f.device)
    votes.scatter_add_(1, y[idx], top.clamp_min(0) + 1e-6)
    return float((votes.argmax(1) == y).float().mean())


class PretrainTask(MultiModalTask):
    """Multimodal contrastive pre-training of one encoder per modality.

    Args:
        modalities: modalities to pre-train on (default: all the datamodule loads).
        backbone: timm architecture for all modalities or ``{modality: arch}``.
        weights: optional local weights file(s) to start from.
        in_channels: ``{modality: bands}``; read from the datamodule when omitted.
        backbone_kwargs: extra ``timm.create_model`` arguments for every backbone.
        projection_dim: embedding size.
        hidden_dim: projector hidden width.
        projector_layers: projector depth.
        projector_bn: batch norm in the projector (turn off for exact DDP equivalence
            without ``sync_batchnorm``).
        loss: ``"ntxent"`` (SimCLR; eq. 4.1), ``"supcon"`` (eq. 4.3-4.4, needs
            labels), a pairwise optimal-transport objective of :func:`pairwise_losses`
            (``ot_sample``, ``ot_feature``, ``coot``, ``ssw_ssl``, ``sw_ssl``,
            ``align_uniform``, ``infonce_alignment``, ``gca_ince``, ``gca_rince``,
            ``gca_uot``), averaged over every pair of (modality, view) groups, or a
            baseline SSL method of :mod:`rsmm.tasks.methods`. With groups = the
            (modality, view) pairs of a batch:

            * ``"moco"`` (MoCo v2): one momentum encoder+projector per modality; the
              online query of group a is matched to the momentum key of every other
              group b (cross-modal pairs are positives) against a queue of past keys
              shared by all modalities (buffers ``queue``/``queue_ptr``). Options
              ``queue_size`` (3072), ``momentum`` (0.99), ``momentum_end`` (1.0); uses
              ``temperature``.
            * ``"byol"``: one EMA target encoder+projector and one predictor per
              modality; negative cosine of predictor(online of a) and the stopped
              target of b, every ordered pair a != b. Options ``momentum``,
              ``momentum_end``, ``predictor_hidden_dim`` (default ``hidden_dim``).
            * ``"barlow_twins"`` (``lambda_param`` 0.0051) and ``"vicreg"``
              (``lambda_param`` 25, ``mu_param`` 25, ``nu_param`` 1, ``eps``):
              lightly's losses on the projector outputs, averaged over unordered
              pairs of groups.
            * ``"mmcr"``: minus the nuclear norm of the per-sample centroids of all
              the sample's groups (``lmda`` 0.005 weighs lightly's local term).

            Momentum follows lightly's cosine schedule from ``momentum`` to
            ``momentum_end`` over ``trainer.estimated_stepping_batches`` optimiser
            steps. With one modality and two views each is the standard method.
            ``negative_class`` and ``dense`` apply to the contrastive and pairwise
            losses only.
        loss_kwargs: extra arguments of a pairwise objective (``eps``, ``n_iters``,
            ``lam``, ``rho`` ...) or the options of an SSL method above.
        temperature: contrastive temperature.
        dense: dense patch matching added to the global loss (DenseCL family, eq.
            3.18-3.24): ``"argmax"``, ``"emd"``, ``"sinkhorn"``, ``"unbalanced"`` or
            ``"uniform"`` plans between the patches of every pair of (modality, view)
            groups (cross-modal pairs match patches across resolutions); ``None`` = off.
        dense_weight: weight of the dense term (0.5 = equal weights with the global loss).
        dense_dim: dense embedding size.
        dense_kwargs: extra arguments of the dense loss (``eps``, ``n_iters``, ``rho``,
            ``negatives``).
        negative_class: class id whose samples only serve as negatives (Meter-ML's
            Negative = 6); ``None`` for none.
        lr: learning rate.
        weight_decay: weight decay.
        optimizer: ``"adamw"`` or ``"sgd"``.
        warmup_epochs: linear warm-up before the cosine decay.
        knn_k: neighbours of the online k-NN monitor.
        gather_distributed: gather embeddings across DDP ranks (with gradients).
        data_info: filled from the datamodule (bands, statistics) for export.
    """

    def __init__(
        self,
        modalities: list[str] | None = None,
        backbone: str | dict[str, str] = "resnet18",
        weights: str | dict[str, str] | None = None,
        in_channels: dict[str, int] | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        projection_dim: int = 128,
        hidden_dim: int = 512,
        projector_layers: int = 2,
        projector_bn: bool = True,
        loss: str = "ntxent",
        temperature: float = 0.1,
        loss_kwargs: dict[str, Any] | None = None,
        dense: str | None = None,
        dense_weight: float = 0.5,
        dense_dim: int = 64,
        dense_kwargs: dict[str, Any] | None = None,
        negative_class: int | None = None,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        optimizer: str = "adamw",
        warmup_epochs: float = 0.0,
        knn_k: int = 20,
        gather_distributed: bool = True,
        data_info: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        known = CONTRASTIVE + PAIRWISE + SSL_METHODS
        if loss not in known:
            raise ConfigError(f"loss: unknown {loss!r}; choose one of {', '.join(known)}")
        if loss in CONTRASTIVE and loss_kwargs:
            raise ConfigError(
                f"loss_kwargs: loss {loss!r} takes no options (its temperature is "
                f"`temperature`), got {sorted(loss_kwargs)}"
            )
        if loss in PAIRWISE:
            _check_pairwise_options(loss, loss_kwargs)
        if loss in SSL_METHODS:
            check_options(loss, loss_kwargs)
            if dense is not None:
                raise ConfigError(f"dense matching is not combined with loss {loss!r}")
        if temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}")
        if dense is not None:
            from rsmm.losses.ot import MATCHING_METHODS

            if dense not in MATCHING_METHODS:
                raise ConfigError(
                    f"dense: unknown {dense!r}; choose one of {', '.join(MATCHING_METHODS)}"
                )
        self.save_hyperparameters()
        self._val_feats: list[Tensor] = []
        self._val_labels: list[Tensor] = []
        self.method: SSLMethod | None = None  # the SSL method's strategy, if any
        self._maybe_build()

    def configure_models(self) -> None:
        hp = self.hparams
        self.encoder = MultiModalEncoder(
            hp.in_channels,
            backbone=hp.backbone,
            weights=hp.weights,
            backbone_kwargs=hp.backbone_kwargs,
            projection_dim=hp.projection_dim,
            hidden_dim=hp.hidden_dim,
            projector_layers=hp.projector_layers,
            projector_bn=hp.projector_bn,
            dense_dim=hp.dense_dim if hp.get("dense") else 0,
            **encoder_inputs(hp.data_info),
        )
        if hp.loss in SSL_METHODS:
            self.method = build_method(
                hp.loss,
                self.encoder,
                temperature=hp.temperature,
                hidden_dim=hp.hidden_dim,
                batch_norm=hp.projector_bn,
                options=hp.loss_kwargs,
            )

    # -- the objective -----------------------------------------------------------------

    def _gather(self, t: Tensor, grads: bool) -> Tensor:
        g = self.all_gather(t, sync_grads=grads)
        return g.reshape(-1, *t.shape[1:])

    def contrastive_loss(self, z: Tensor, ids: Tensor, labels: Tensor | None) -> Tensor:
        """The configured loss over all ranks' rows, averaged over every anchor of the
        global batch (each rank holds its share so that DDP's gradient mean is exact)."""
        hp = self.hparams
        mask = None
        if labels is not None and hp.negative_class is not None:
            mask = ~negative_rows(labels, hp.negative_class)
        world = self.trainer.world_size if self._trainer is not None else 1
        rows = None
        if world > 1 and hp.gather_distributed:
            n_local = z.shape[0]
            offset = (int(ids.max()) + 1) if ids.numel() else 0
            offsets = self._gather(torch.tensor([offset], device=z.device), False)
            base = torch.cumsum(offsets, 0) - offsets
            ids = self._gather(ids, False) + torch.repeat_interleave(base, n_local)
            z = self._gather(z, True)
            labels = None if labels is None else self._gather(labels, False)
            mask = None if mask is None else self._gather(mask, False)
            rows = torch.arange(n_local, device=z.device) + self.global_rank * n_local
        if hp.loss == "supcon":
            if labels is None or labels.ndim != 1:
                raise ConfigError("loss 'supcon' needs integer labels in the batch")
            positives = supcon_positives(ids, labels, rows)
        else:
            anchors = ids if rows is None else ids[rows]
            positives = anchors[:, None] == ids[None, :]
        per, valid = per_anchor_contrastive(z, positives, hp.temperature, rows, mask)
        n_valid = valid.sum()
        if world > 1 and hp.gather_distributed:
            total = self.trainer.strategy.reduce(n_valid.float(), reduce_op="sum")
            if total == 0:
                raise ConfigError("no anchor has a positive in the global batch")
            return per.sum() * world / total
        if n_valid == 0:
            raise ConfigError(
                "no anchor has a positive: use views >= 2 or several modalities (one modality "
                "with one view has nothing to contrast)"
            )
        return per.sum() / n_valid

    def pairwise_loss(self, z: Tensor, n_groups: int) -> Tensor:
        """Mean of the pairwise objective over all pairs of (modality, view) groups.

        Under DDP the rows of all ranks are gathered with gradients and every rank
        computes the loss of the global batch (its gradient, averaged by DDP, is then
        exactly the single-process one)."""
        hp = self.hparams
        fn = pairwise_losses()[hp.loss]
        kw = dict(hp.loss_kwargs or {})
        if hp.loss in ("infonce_alignment", "gca_ince", "gca_rince", "gca_uot"):
            kw.setdefault("tau", hp.temperature)
        groups = z.reshape(n_groups, -1, z.shape[1])
        world = self.trainer.world_size if self._trainer is not None else 1
        if world > 1 and hp.gather_distributed:
            g = self.all_gather(groups, sync_grads=True)  # W x G x B x d
            groups = g.permute(1, 0, 2, 3).reshape(n_groups, -1, z.shape[1])
        pairs = list(combinations(range(n_groups), 2))
        if not pairs:
            raise ConfigError(
                f"loss {hp.loss!r} needs two views or two modalities to pair (got one group)"
            )
        return sum(fn(groups[a], groups[b], **kw) for a, b in pairs) / len(pairs)

    def _gather_rows(self, t: Tensor, grads: bool) -> Tensor:
        """The rows of ``t`` of every rank when gathering under DDP, else ``t``."""
        world = self.trainer.world_size if self._trainer is not None else 1
        if world > 1 and self.hparams.gather_distributed:
            return self._gather(t, grads)
        return t

    def shared_step(self, batch: Mapping[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        views = self.batch_views(batch, self.modalities)
        if self.method is not None:
            return self.method(self.encoder, views, self._gather_rows)
        if self.hparams.get("dense"):
            z, feats, groups, maps = self.encoder.embed_views(views, dense=True)
            loss, feats = self._global_loss(batch, z, feats, groups)
            return self._with_dense(loss, maps), feats
        z, feats, groups = self.encoder.embed_views(views)
        return self._global_loss(batch, z, feats, groups)

    def _with_dense(self, global_loss: Tensor, maps: list[Tensor]) -> Tensor:
        """DenseCL-style combination with the dense loss averaged over group pairs
        (negatives: the other images of the local batch)."""
        from rsmm.losses.ot import combine_global_dense, dense_contrastive_loss

        hp = self.hparams
        pairs = list(combinations(range(len(maps)), 2))
        if not pairs:
            raise ConfigError("dense matching needs two views or two modalities to pair")
        kw = dict(hp.dense_kwargs or {})
        dense = sum(
            dense_contrastive_loss(maps[a], maps[b], method=hp.dense, tau=hp.temperature, **kw)
            for a, b in pairs
        ) / len(pairs)
        return combine_global_dense(global_loss, dense, hp.dense_weight)

    def _global_loss(
        self, batch: Mapping[str, Any], z: Tensor, feats: dict[str, Tensor], groups: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        if self.hparams.loss in PAIRWISE:
            return self.pairwise_loss(z, int(groups.max()) + 1), feats
        ids, labels = self.row_ids_and_labels(groups, batch.get("label"))
        return self.contrastive_loss(z, ids, labels), feats

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        if self.method is not None:
            total = max(1, int(self.trainer.estimated_stepping_batches))
            self.method.before_step(self.encoder, self.global_step, total)
        loss, _ = self.shared_step(batch)
        bs = next(iter(self.batch_views(batch, self.modalities).values()))[0].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=bs, sync_dist=False)
        return loss

    # -- monitoring ----------------------------------------------------------------------

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        views = self.batch_views(batch, self.modalities)
        b = views[self.modalities[0]][0].shape[0]
        if sum(len(v) for v in views.values()) > 1:
            loss, per_modality = self.shared_step(batch)
            feats = self.encoder.fuse_first_view(per_modality, self.modalities, b)
            self.log("val/loss", loss, batch_size=b, sync_dist=True)
        else:
            feats = self.encoder.fused({m: v[0] for m, v in views.items()}, self.modalities)
        labels = batch.get("label")
        if labels is not None and labels.ndim == 1:
            self._val_feats.append(feats.detach())
            self._val_labels.append(labels.detach())

    def on_validation_epoch_end(self) -> None:
        if self._val_feats:
            # one process: all_gather returns the tensor as it is
            feats = self._gather(torch.cat(self._val_feats), False)
            labels = self._gather(torch.cat(self._val_labels), False)
            acc = knn_accuracy(feats, labels, self.hparams.knn_k)
            self.log("val/knn_acc", acc, prog_bar=True, rank_zero_only=True)
        self._val_feats.clear()
        self._val_labels.clear()
