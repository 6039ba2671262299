"""Multimodal self-supervised (or supervised contrastive) pre-training.

Every (modality, view) of a batch goes through its modality's encoder and projector and
the configured objective (``loss``) scores the embeddings. The objectives live in
:mod:`rsmm.tasks.objectives`, one class each, registered by name: a training step is
one call into the objective, which also holds what a method adds to the encoders
(momentum targets, queues, predictors) as the task's submodule ``method``. Under DDP
the objectives gather the embeddings of all ranks with gradients, so every rank's
anchors see the whole global batch: the loss on 2 ranks x N samples equals the loss on
1 rank x 2N samples.

While pre-training, a leave-one-out k-nearest-neighbour accuracy on the labelled
validation split (when there is one) is logged every epoch as ``val/knn_acc``, so that
a collapsed run shows early. Its features are the pooled backbone features of the
task's modalities, concatenated; where samples may lack a modality, each sample's
features come from its present modalities only (computed on those rows alone), two
samples are compared on the modalities both have, and a sample with none is skipped.

Samples may lack a modality (a stack with ``min_modalities``, ``drop_modalities``): the
batch's ``"presence"`` becomes :attr:`SampleInfo.presence
<rsmm.models.views.SampleInfo.presence>`, the encoders see the present rows only and the
contrastive objectives leave the absent rows out (the others refuse such batches). The
samples seen per modality are logged every epoch as ``train/samples_<modality>``.

Under ``--trainer.strategy fsdp2`` (Lightning's ModelParallelStrategy) the encoders are
sharded over the ranks with FSDP2 (:meth:`PretrainTask.shard`, :mod:`rsmm.tasks.sharding`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from rsmm.checkpoints import PRETRAIN, TASK_KEY
from rsmm.datamodules.collate import PRESENCE_KEY
from rsmm.errors import ConfigError
from rsmm.models.multimodal import MultiModalEncoder
from rsmm.models.views import SampleInfo
from rsmm.tasks.base import MultiModalTask, encoder_inputs
from rsmm.tasks.objectives import (
    DenseMatching,
    Objective,
    Ranks,
    build_objective,
    check_dense,
    check_objective,
)
from rsmm.tasks.sharding import shard_task


def shared_modality_cosine(features: Tensor, presence: Tensor, widths: Sequence[int]) -> Tensor:
    """``N x N`` cosine similarities of samples compared on the modalities both have.

    ``features`` concatenates one block per modality (``widths`` columns each, in the
    order of ``presence``'s columns); the similarity of samples ``i`` and ``j`` is the
    cosine of their concatenated blocks of the modalities both have, so an absent
    modality's block (whatever it holds) is never read, and two samples with every
    modality get the cosine of their whole features. Pairs that share no modality get
    ``-inf`` (never neighbours).

    Args:
        features: ``N x sum(widths)``.
        presence: ``N x M`` booleans, True where the sample has the modality.
        widths: the ``M`` block widths.
    """
    blocks = features.float().split(list(widths), dim=1)
    p = presence.to(torch.float32)
    z = torch.cat([torch.where(presence[:, i, None], b, 0.0) for i, b in enumerate(blocks)], 1)
    sq = torch.stack([b.pow(2).sum(1) for b in blocks], 1) * p
    norm2 = sq @ p.T  # [i, j]: squared norm of i's blocks of the modalities i and j share
    sim = (z @ z.T) / (norm2 * norm2.T).sqrt().clamp_min(1e-12)
    return sim.masked_fill((p @ p.T) == 0, float("-inf"))


def knn_accuracy(
    features: Tensor,
    labels: Tensor,
    k: int = 20,
    presence: Tensor | None = None,
    widths: Sequence[int] | None = None,
) -> float:
    """Leave-one-out cosine k-NN accuracy (majority vote weighted by similarity).

    Args:
        features: ``N x F``.
        labels: ``N`` class ids; ``-1`` rows are left out.
        k: neighbours.
        presence: ``N x M`` booleans (``features`` = ``M`` modality blocks of ``widths``
            columns) when samples may lack a modality: samples with none are left out,
            similarities are :func:`shared_modality_cosine`, and a sample that shares no
            modality with any other counts as a miss. When every sample has every
            modality it is the plain cosine, as without ``presence``.
        widths: the block widths (with ``presence``).
    """
    keep = labels >= 0
    if presence is not None:
        presence = presence.to(torch.bool)
        keep &= presence.any(1)
    f, y = features[keep].float(), labels[keep]
    n = f.shape[0]
    if n < 2:
        return float("nan")
    k = min(k, n - 1)
    if presence is None or bool(presence[keep].all()):
        f = F.normalize(f, dim=1)
        sim = f @ f.T
    else:
        if widths is None or sum(widths) != f.shape[1]:
            raise ValueError(f"widths {widths} do not split {f.shape[1]} feature columns")
        sim = shared_modality_cosine(f, presence[keep], widths)
    sim.fill_diagonal_(float("-inf"))
    top, idx = sim.topk(k, dim=1)
    real = torch.isfinite(top)  # -inf: a sample sharing no modality, not a neighbour
    votes = torch.zeros(n, int(y.max()) + 1, device=f.device)
    votes.scatter_add_(1, y[idx], torch.where(real, top.clamp_min(0) + 1e-6, 0.0))
    return float(((votes.argmax(1) == y) & real.any(1)).float().mean())


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
        loss: the objective, by its name in :data:`rsmm.tasks.objectives.OBJECTIVES`:
            ``"ntxent"`` (SimCLR; eq. 4.1), ``"supcon"`` (eq. 4.3-4.4, needs labels),
            a pairwise optimal-transport objective (``ot_sample``, ``ot_feature``,
            ``coot``, ``ssw_ssl``, ``sw_ssl``, ``align_uniform``,
            ``infonce_alignment``, ``gca_ince``, ``gca_rince``, ``gca_uot``) averaged
            over every pair of (modality, view) groups, or a baseline SSL method
            (``moco``, ``byol``, ``barlow_twins``, ``vicreg``, ``mmcr``); each
            objective's class documents what it computes and its options.
        temperature: contrastive temperature (for the objectives that use one).
        loss_kwargs: the objective's options, checked when the task is constructed.
        dense: dense patch matching added to the global loss (DenseCL family, eq.
            3.18-3.24): ``"argmax"``, ``"emd"``, ``"sinkhorn"``, ``"unbalanced"`` or
            ``"uniform"`` plans between the patches of every pair of (modality, view)
            groups (cross-modal pairs match patches across resolutions); ``None`` = off.
            Not combined with the baseline SSL methods.
        dense_weight: weight of the dense term (0.5 = equal weights with the global loss).
        dense_dim: dense embedding size.
        dense_kwargs: extra arguments of the dense loss (``eps``, ``n_iters``, ``rho``,
            ``negatives``, ``symmetric``).
        negative_class: class id whose samples only serve as negatives. By default the
            dataset's ``negative_classes`` (Meter-ML's Negative); a value that differs
            from the dataset's is used with a warning. Read by every objective that
            applies the negative-only rule (``Objective.uses_negatives``: the
            contrastive and the pairwise optimal-transport objectives); the baseline
            SSL methods treat every sample alike (with a warning).
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
        objective = check_objective(loss, loss_kwargs)
        if temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}")
        if dense is not None:
            check_dense(objective, dense, dense_weight, dense_kwargs)
        self.save_hyperparameters()
        self.hparams[TASK_KEY] = PRETRAIN  # what a checkpoint of this task is
        if negative_class is not None:
            self.negative_classes = (negative_class,)
        self._val_feats: list[Tensor] = []
        self._val_labels: list[Tensor] = []
        self._val_presence: list[Tensor] = []
        #: the objective (a submodule, so that its state is in the checkpoint)
        self.method: Objective | None = None
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
        objective = build_objective(
            hp.loss,
            self.encoder,
            temperature=hp.temperature,
            hidden_dim=hp.hidden_dim,
            batch_norm=hp.projector_bn,
            options=hp.loss_kwargs,
        )
        if hp.get("dense"):
            objective = DenseMatching(
                self.encoder,
                objective,
                method=hp.dense,
                weight=hp.dense_weight,
                temperature=hp.temperature,
                options=hp.dense_kwargs,
            )
        self.method = objective

    def resolve_negative_classes(self, declared: tuple[int, ...]) -> tuple[int, ...]:
        """The dataset's negative-only classes, unless ``negative_class`` names another."""
        explicit = self.hparams.get("negative_class")
        if explicit is not None and declared and explicit not in declared:
            warnings.warn(
                f"negative_class={explicit} differs from the dataset's negative-only classes "
                f"{list(declared)}; using {explicit}. negative_class is deprecated: the "
                "dataset declares its negative-only classes (negative_classes)",
                FutureWarning,
                stacklevel=2,
            )
        chosen = declared if explicit is None else (explicit,)
        if chosen and not check_objective(self.hparams.loss).uses_negatives:
            warnings.warn(
                f"loss {self.hparams.loss!r} does not apply the negative-only rule: the "
                f"samples of classes {list(chosen)} are treated as ordinary samples",
                stacklevel=2,
            )
        return chosen

    def shard(self, mesh: Any) -> None:
        """Shard the encoders (and the objective's parameters) over ``mesh`` with FSDP2:
        :func:`rsmm.tasks.sharding.shard_task`."""
        shard_task(self, mesh)

    # -- the objective -----------------------------------------------------------------

    def ranks(self) -> Ranks:
        """The DDP ranks the objective gathers rows from (none on one process or with
        ``gather_distributed=False``)."""
        world = self.trainer.world_size if self._trainer is not None else 1
        if world == 1 or not self.hparams.gather_distributed:
            return Ranks()
        return Ranks(
            world,
            self.global_rank,
            lambda t, grads: self.all_gather(t, sync_grads=grads),
            lambda t: self.trainer.strategy.reduce(t, reduce_op="sum"),
        )

    def sample_info(self, batch: Mapping[str, Any]) -> SampleInfo:
        """The batch's :class:`SampleInfo`, with the presence of the task's modalities
        when the batch has ``"presence"`` (see :mod:`rsmm.datamodules.collate`)."""
        info = super().sample_info(batch)
        presence = batch.get(PRESENCE_KEY)
        if presence is None:
            return info
        return replace(info, presence={m: presence[m] for m in self.modalities})

    def shared_step(self, batch: Mapping[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        """The objective's loss of a batch and ``{modality: backbone features}``."""
        assert self.method is not None, "the task is built once in_channels is known"
        views = self.batch_views(batch, self.modalities)
        return self.method(self.encoder, views, self.sample_info(batch), self.ranks())

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        assert self.method is not None
        total = max(1, int(self.trainer.estimated_stepping_batches))
        self.method.before_step(self.encoder, self.global_step, total)
        loss, _ = self.shared_step(batch)
        bs = next(iter(self.batch_views(batch, self.modalities).values()))[0].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=bs, sync_dist=False)
        self.log_samples_seen(batch, bs)
        return loss

    def log_samples_seen(self, batch: Mapping[str, Any], batch_size: int) -> None:
        """Log ``train/samples_<modality>``: the samples of the epoch that have the
        modality (all of the batch without ``"presence"``), summed over the epoch and
        the ranks."""
        presence = batch.get(PRESENCE_KEY)
        for m in self.modalities:
            n = float(batch_size) if presence is None else presence[m].sum().float()
            self.log(
                f"train/samples_{m}",
                n,
                on_step=False,
                on_epoch=True,
                reduce_fx="sum",
                sync_dist=True,
                batch_size=batch_size,
            )

    # -- monitoring ----------------------------------------------------------------------

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        views = self.batch_views(batch, self.modalities)
        b = views[self.modalities[0]][0].shape[0]
        info = self.sample_info(batch)
        presence = info.presence
        paired = sum(len(v) for v in views.values()) > 1
        if paired and presence is not None:
            paired = self._any_pair(views, info)
        if paired:
            loss, per_modality = self.shared_step(batch)
            feats = {m: per_modality[m][:b] for m in self.modalities}  # the first view
            self.log("val/loss", loss, batch_size=b, sync_dist=True)
        else:  # each modality's encoder sees the rows of the samples that have it
            feats = self.encoder.features({m: v[0] for m, v in views.items()}, presence)
        labels = batch.get("label")
        if labels is not None and labels.ndim == 1:
            self._val_feats.append(torch.cat([feats[m] for m in self.modalities], 1).detach())
            self._val_labels.append(labels.detach())
            self._val_presence.append(self._presence_matrix(presence, labels))

    def _any_pair(self, views: Mapping[str, list[Tensor]], info: SampleInfo) -> bool:
        """Whether a sample of the batch, on any rank, has two present (modality, view)
        rows and is not negative-only: the validation loss needs one (a batch whose
        samples all lack every modality but one has none), and every rank takes the
        same decision (the objective gathers rows across ranks)."""
        assert info.presence is not None
        rows = sum(info.presence[m].long() * len(views[m]) for m in self.modalities)
        ok = rows >= 2
        if info.negative is not None:
            ok &= ~info.negative.to(torch.bool)
        count = ok.sum().float()
        if self._trainer is not None and self.trainer.world_size > 1:
            count = self.trainer.strategy.reduce(count, reduce_op="sum")
        return bool(count > 0)

    def _presence_matrix(self, presence: Mapping[str, Tensor] | None, labels: Tensor) -> Tensor:
        """``B x M`` (0/1, uint8: gathered across ranks) of the task's modalities."""
        if presence is None:
            return labels.new_ones(labels.shape[0], len(self.modalities), dtype=torch.uint8)
        return torch.stack([presence[m].to(torch.uint8) for m in self.modalities], 1)

    def _all_rows(self, t: Tensor) -> Tensor:
        """The rows of ``t`` of every rank (one process: ``t`` as it is)."""
        return self.all_gather(t).reshape(-1, *t.shape[1:])

    def on_validation_epoch_end(self) -> None:
        if self._val_feats:
            feats = self._all_rows(torch.cat(self._val_feats))
            labels = self._all_rows(torch.cat(self._val_labels))
            presence = self._all_rows(torch.cat(self._val_presence).to(labels.device))
            widths = [self.encoder.backbones[m].num_features for m in self.modalities]
            acc = knn_accuracy(feats, labels, self.hparams.knn_k, presence.bool(), widths)
            self.log("val/knn_acc", acc, prog_bar=True, rank_zero_only=True)
        self._val_feats.clear()
        self._val_labels.clear()
        self._val_presence.clear()
