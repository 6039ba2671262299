"""Fine-tuning and linear probing on labelled data.

The encoders of any subset of the pre-trained modalities are loaded from an rsmm
pre-training checkpoint (or an export directory), their pooled features concatenated
(fusion by concatenation) and classified by a head. The objective is a classification
loss (CE, class-weighted CE, focal; BCE when multi-label) or the thesis' mixture
``alpha * L_MM-S + (1 - alpha) * L_cls`` (eq. 4.5) with multimodal SupCon on the
projected embeddings. ``freeze_backbone=True`` is a linear probe (encoders frozen and
kept in eval mode).

Negative-only classes (a dataset's ``negative_classes``, e.g. Meter-ML's Negative) follow
the rule of every objective: their samples are never anchors or positives of SupCon but
stay in its denominators. By default (the thesis' protocol, section 4.3.2) the head has no
output for them (Meter-ML: six classes) and they are left out of the classification loss
and of every metric; ``negative_head=True`` gives them head outputs like any class (a
seventh Meter-ML class, the metrics counting it unless ``exclude_class`` names it).

Missing modalities: a batch may carry ``presence`` (``{modality: B booleans}``, see
:mod:`rsmm.datamodules`), and a model may be tested on data that loads only some of its
modalities (``rsmm test --data.init_args.modalities [s1]`` on a model fine-tuned on S1 +
S2). The features are fused by ``fusion`` (:mod:`rsmm.models.fusion`: ``concat``, the
default, ``masked_mean`` or ``concat_missing``), which never reads an absent row;
``modality_dropout`` drops modalities at random while training so that one model serves
every subset; the test reports the metrics of every available-modality subset
(``test/OA@s1``, ``test/OA@s1+s2``, ...).

Single-label metrics are computed from the head's scores (logits, or a hyperbolic head's
scores: larger = more likely, as the cross-entropy reads them): OA, kappa and the
confusion matrix from their argmax, the top-k accuracies ``Acc@k`` (``top_k``, default
``Acc@5`` as the thesis' Tables 3.1 and 3.2 report it) from their k largest
(``val/Acc@5``, ``test/Acc@5``, and ``test/Acc@5@<subset>`` per subset).

``head_input="projector"`` keeps the pre-training's embedding space: the head reads the
pre-trained projectors' outputs instead of the backbone features, fused by their mean
(after the hyperbolic head's feature clipping, so that with a hyperbolic head the fused
point is the ``expmap0`` of the mean tangent vector at the origin). After ``loss:
hyp_ntxent`` pre-training, ``head="horospherical"`` with the same ``c`` and ``clip_r``
then classifies the very ball embeddings the pre-training shaped.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rsmm.checkpoints import (
    FINETUNE,
    TASK_KEY,
    PretrainedEncoders,
    check_pretrained,
    load_pretrained,
    load_pretrained_encoder,
    read_pretrained,
)
from rsmm.errors import CheckpointError, ConfigError
from rsmm.losses.classification import (
    classification_loss,
    inverse_frequency_weights,
    supcon_mixture,
)
from rsmm.losses.contrastive import mm_supcon
from rsmm.models.backbones import weights_per_modality
from rsmm.models.fusion import FUSIONS, build_fusion, masked_mean, presence_masks
from rsmm.models.multimodal import MultiModalEncoder
from rsmm.models.weights_info import describe_weights, resolve_weights_path
from rsmm.tasks.base import MultiModalTask, encoder_inputs
from rsmm.tasks.metrics import (
    DEFAULT_TOP_K,
    SubsetMetrics,
    check_top_k,
    classification_metrics,
    save_confusion,
    summarise,
)
from rsmm.tasks.missing import MissingModalities

# kept importable from here: the pre-trained weights API lives in rsmm.checkpoints
__all__ = [
    "LOSSES",
    "CheckpointError",
    "FinetuneTask",
    "PretrainedEncoders",
    "check_pretrained",
    "load_pretrained_encoder",
    "read_pretrained",
]

LOSSES = ("ce", "weighted_ce", "focal", "bce")
#: what the classification head reads (see :class:`FinetuneTask`)
HEAD_INPUTS = ("features", "projector")
#: ``head_kwargs.gw`` options of hierarchical prototypes (see
#: :func:`rsmm.hyperbolic.hierarchical_prototypes`); the thesis' procedure is
#: ``{normalise: false, n_init: 1, rounding: argmax, pad: true}``
GW_OPTIONS = ("n_init", "refine", "normalise", "rounding", "pad", "steps", "seed")
#: ``head_kwargs`` of ``head: mgp`` (see :class:`rsmm.hyperbolic.MetricGuidedPrototypes`)
MGP_OPTIONS = ("distortion_weight", "scale_free", "init_std")


class FinetuneTask(MissingModalities, MultiModalTask):
    """Supervised fine-tuning (or linear probing) of per-modality encoders.

    Args:
        modalities: modalities used (any subset of the pre-trained ones; default: all
            the datamodule loads).
        backbone: timm architecture for all or ``{modality: arch}`` (must match the
            pre-trained checkpoint).
        weights: optional local weights file(s) per modality (torchgeo/timm weights).
        in_channels: ``{modality: bands}``; read from the datamodule when omitted.
        backbone_kwargs: extra ``timm.create_model`` arguments for every backbone.
        pretrained: an rsmm pre-training checkpoint or export directory to start from, or
            a TorchGeo weights file (or WeightsEnum name) with a known band list (see
            :mod:`rsmm.models.weights_info`): it starts the encoders whose bands it has,
            its first convolution mapped by band name.
        freeze_backbone: linear probe (encoders frozen, eval mode).
        num_classes: outputs of the head; from the datamodule when omitted.
        multilabel: multi-hot targets (BCE loss, AP metrics).
        loss: ``ce``, ``weighted_ce``, ``focal`` (``bce`` for multi-label).
        focal_gamma: focusing parameter of the focal loss.
        alpha: weight of multimodal SupCon in eq. 4.5 (0 = classification only).
        temperature: SupCon temperature.
        projection_dim: SupCon embedding size (projectors are loaded from the
            checkpoint when it has them).
        hidden_dim: projector hidden width.
        head: ``"linear"``, a hyperbolic head name (see :mod:`rsmm.hyperbolic`), or
            ``"mgp"``: Metric-Guided Prototypes (Garnot & Landrieu 2021; needs
            ``hierarchy``, whose path lengths guide the prototypes; ``head_kwargs:
            {distortion_weight: 1.0}`` weighs its distortion term, added to the
            training loss and logged as ``train/distortion``).
        head_input: ``"features"`` (concatenated backbone features) or ``"projector"``
            (the mean of the projectors' outputs, loaded from ``pretrained``, which must
            have projectors of sizes ``projection_dim`` / ``hidden_dim``; frozen with the
            backbones under ``freeze_backbone``).
        head_kwargs: extra arguments of the head; ``prototypes: hierarchical`` places a
            horospherical/Busemann head's prototypes by Gromov-Wasserstein on
            ``hierarchy`` (thesis eq. 5.6-5.7), with the options ``gw`` (a mapping, see
            :data:`GW_OPTIONS`; ``{normalise: false, n_init: 1, rounding: argmax, pad:
            true}`` is the thesis' procedure; ``pad`` only shapes the prototypes, the
            hierarchical-cost metric reads the tree as written).
        head_dim: optional linear bottleneck before the head (hyperbolic heads with
            hierarchical prototypes work in low dimensions, e.g. 2-16).
        hierarchy: a label tree (packaged name such as ``"dfc2020"``, or a YAML path): adds
            the average hierarchical cost (eq. 5.11) to the metrics.
        exclude_class: dataset class id left out of the average accuracy (with
            ``negative_head=True``, Meter-ML's Negative: 6; a negative-only class is out of
            every metric anyway by default).
        negative_head: give the dataset's negative-only classes head outputs (see the
            module doc); by default the head has the other classes only and their samples
            are ignored by the classification loss and the metrics.
        linear_probe_norm: with ``freeze_backbone`` and a linear head, standardise the
            frozen features with a non-affine batch norm before the linear layer (rsmm's
            default, MAE's protocol); ``False`` = a plain linear layer, as the thesis'
            linear probe.
        lr: learning rate of the head.
        backbone_lr: learning rate of the encoders (default ``lr``).
        weight_decay: weight decay.
        optimizer: ``adamw`` (Riemannian Adam when the head has manifold parameters)
            or ``sgd``.
        warmup_epochs: linear warm-up.
        class_weights: per-class weights for ``weighted_ce`` (default: inverse
            frequency on the training split).
        fusion: how the modalities' features are fused: ``concat`` (the thesis'),
            ``masked_mean`` or ``concat_missing`` (see :mod:`rsmm.models.fusion`); with
            ``head_input="projector"`` the projector outputs are always averaged over the
            present modalities.
        fusion_dim: the common width of ``masked_mean`` (default: the widest features).
        modality_dropout: while training, drop each present modality of each sample
            with this probability (never all of a sample's present ones) before fusion.
        modality_dropout_seed: seed of the dropout draws (with the step and rank, so a
            resumed run draws the same).
        subset_metrics: test metrics of every non-empty subset of the modalities the
            test batches carry (``test/<metric>@<subset>``): ``None`` = when some test
            sample lacks a modality of the model, ``True`` = always, ``False`` = never.
        top_k: the top-k accuracies ``Acc@k`` the single-label metrics report (default
            ``[5]``; only those with ``1 < k < num_classes``: ``Acc@1`` is OA; ``[]`` =
            none).
        data_info: filled from the datamodule.
    """

    def __init__(
        self,
        modalities: list[str] | None = None,
        backbone: str | dict[str, str] = "resnet18",
        weights: str | dict[str, str] | None = None,
        in_channels: dict[str, int] | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        pretrained: str | None = None,
        freeze_backbone: bool = False,
        num_classes: int | None = None,
        multilabel: bool = False,
        loss: str = "ce",
        focal_gamma: float = 2.0,
        alpha: float = 0.0,
        temperature: float = 0.1,
        projection_dim: int = 128,
        hidden_dim: int = 512,
        head: str = "linear",
        head_kwargs: dict[str, Any] | None = None,
        head_dim: int | None = None,
        head_input: str = "features",
        hierarchy: str | None = None,
        exclude_class: int | None = None,
        negative_head: bool = False,
        linear_probe_norm: bool = True,
        lr: float = 1e-3,
        backbone_lr: float | None = None,
        weight_decay: float = 1e-4,
        optimizer: str = "adamw",
        warmup_epochs: float = 0.0,
        class_weights: list[float] | None = None,
        fusion: str = "concat",
        fusion_dim: int | None = None,
        modality_dropout: float = 0.0,
        modality_dropout_seed: int = 0,
        subset_metrics: bool | None = None,
        top_k: list[int] | None = None,
        data_info: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if loss not in LOSSES:
            raise ConfigError(f"loss: unknown {loss!r}; choose one of {', '.join(LOSSES)}")
        if multilabel and alpha > 0:
            raise ConfigError("alpha > 0 (SupCon mixture) needs single-label targets")
        if not 0 <= alpha <= 1:
            raise ConfigError(f"alpha must be in [0, 1], got {alpha}")
        if head_input not in HEAD_INPUTS:
            raise ConfigError(
                f"head_input: unknown {head_input!r}; choose one of {', '.join(HEAD_INPUTS)}"
            )
        if fusion not in FUSIONS:
            raise ConfigError(f"fusion: unknown {fusion!r}; choose one of {', '.join(FUSIONS)}")
        if head_input == "projector" and fusion != "concat":
            raise ConfigError(
                "fusion: head_input 'projector' averages the projector outputs; leave fusion "
                "at 'concat'"
            )
        if not 0 <= modality_dropout < 1:
            raise ConfigError(f"modality_dropout must be in [0, 1), got {modality_dropout}")
        check_top_k(DEFAULT_TOP_K if top_k is None else top_k)
        self.save_hyperparameters()
        self.hparams[TASK_KEY] = FINETUNE  # what a checkpoint of this task is
        self._maybe_build()

    # -- models ----------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        dm = self._datamodule()
        if dm is not None:
            self._multilabel_from(dm.reference_dataset)
            self._head_classes_from(dm)
        if dm is not None and self.hparams.get("num_classes") is None:
            ref = dm.reference_dataset
            targets = ref.targets()
            head = self.hparams.get("head_classes")
            self.hparams["num_classes"] = (
                targets.shape[1]
                if targets.ndim == 2
                else len(head)
                if head is not None
                else len(ref.classes)
            )
        if (
            dm is not None
            and self.hparams.loss == "weighted_ce"
            and not self.hparams.multilabel
            and not self.hparams.class_weights
        ):
            from rsmm.datamodules.base import subset_targets

            t = self.head_targets(torch.as_tensor(subset_targets(dm.datasets["train"])))
            counts = torch.bincount(t[t >= 0], minlength=self.hparams.num_classes)
            self.hparams["class_weights"] = inverse_frequency_weights(counts).tolist()
        super().setup(stage)

    def _head_classes_from(self, dm: Any) -> None:
        """The dataset class ids the head outputs (``hparams.head_classes``): all but the
        negative-only ones unless ``negative_head`` (single-label data only; multi-hot
        targets have no column for them)."""
        hp = self.hparams
        negatives = tuple(getattr(dm, "negative_class_ids", ()))
        if hp.multilabel or hp.get("negative_head") or not negatives:
            return
        classes = list(dm.reference_dataset.classes)
        head = [i for i in range(len(classes)) if i not in negatives]
        if hp.get("head_classes") is not None and list(hp.head_classes) != head:
            raise ConfigError(
                f"the model's head has classes {list(hp.head_classes)} but the data's "
                f"non-negative classes are {head}"
            )
        if hp.get("num_classes") is not None and hp.num_classes != len(head):
            dropped = [classes[i] for i in negatives]
            raise ConfigError(
                f"num_classes={hp.num_classes}, but the head has {len(head)} classes: "
                f"{dropped} only serve as negatives (set negative_head: true to give them "
                "outputs, or leave num_classes unset)"
            )
        hp["head_classes"] = head

    def head_targets(self, y: Tensor) -> Tensor:
        """Dataset class ids ``y`` as head targets: ``-1`` (ignored by the loss and the
        metrics) for the samples of negative-only classes, the others renumbered in
        order (identity when the head has every class)."""
        head = self.hparams.get("head_classes")
        if head is None or y.ndim != 1:
            return y
        table = torch.full((max(head) + 1,), -1, dtype=torch.long)
        table[torch.as_tensor(head)] = torch.arange(len(head))
        table = table.to(y.device)
        inside = (y >= 0) & (y < table.numel())
        return torch.where(inside, table[y.clamp(0, table.numel() - 1)], torch.full_like(y, -1))

    def _metric_exclude(self) -> int | None:
        """``exclude_class`` as a head class id (``None`` when the head has no output
        for it)."""
        exclude, head = self.hparams.get("exclude_class"), self.hparams.get("head_classes")
        if exclude is None or head is None:
            return exclude
        return list(head).index(exclude) if exclude in head else None

    def _multilabel_from(self, dataset: Any) -> None:
        """Follow the data's label kind: a dataset that declares multi-hot labels
        (``multilabel = True``, as BigEarthNet does) turns on BCE and the AP metrics; a
        multi-label model on single-label data is refused."""
        declared = getattr(dataset, "multilabel", None)
        if declared is None:
            return
        if declared and not self.hparams.multilabel:
            if self.hparams.alpha > 0:
                raise ConfigError("alpha > 0 (SupCon mixture) needs single-label targets")
            self.hparams["multilabel"] = True
            if self._built:  # built from in_channels before the data was known
                self.val_metrics = classification_metrics(self.hparams.num_classes, True)
                self.test_metrics = classification_metrics(self.hparams.num_classes, True)
                self.subset_test_metrics = SubsetMetrics(self.hparams.num_classes, True)
        elif self.hparams.multilabel and not declared:
            raise ConfigError(
                f"model.multilabel is true but {type(dataset).__name__} gives single labels "
                "(ask the data for multi-hot labels, e.g. data.multilabel: true)"
            )

    @classmethod
    def load_from_checkpoint(cls, *args: Any, **kwargs: Any) -> FinetuneTask:  # type: ignore[override]
        """Lightning's ``load_from_checkpoint``, built with ``pretrained=None``: the
        checkpoint holds every weight, and the pre-training file may have moved since.
        ``hparams.pretrained`` keeps the path the checkpoint records
        (:meth:`on_load_checkpoint`)."""
        return super().load_from_checkpoint(*args, **{**kwargs, "pretrained": None})

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Check the checkpoint fits (see :class:`MultiModalTask`), and keep its record of
        the pre-training the weights started from: a task restored from a checkpoint is
        built without reading its ``pretrained`` file (``pretrained=None``)."""
        self._serve_checkpoint_modalities(checkpoint)
        super().on_load_checkpoint(checkpoint)
        recorded = (checkpoint.get("hyper_parameters") or {}).get("pretrained")
        if recorded:
            self.hparams["pretrained"] = recorded

    def configure_models(self) -> None:
        hp = self.hparams
        if hp.num_classes is None:
            raise ConfigError("num_classes is unknown: pass it or fine-tune with a datamodule")
        inputs = encoder_inputs(hp.data_info)
        pretrained = hp.pretrained
        weights = hp.weights
        if pretrained and describe_weights(resolve_weights_path(pretrained)) is not None:
            # TorchGeo / timm weights: they start the encoders whose bands they have
            if weights:
                raise ConfigError("pretrained is a weights file: leave weights unset")
            bands = inputs["bands"] or {}
            weights = weights_per_modality(pretrained, {m: bands.get(m) for m in self.modalities})
            pretrained = None
        self.encoder = MultiModalEncoder(
            hp.in_channels,
            backbone=hp.backbone,
            weights=weights,
            backbone_kwargs=hp.backbone_kwargs,
            projection_dim=hp.projection_dim if hp.alpha > 0 or self._on_projector else 0,
            hidden_dim=hp.hidden_dim,
            **inputs,
        )
        # a task restored from its own checkpoint is built with pretrained=None
        if pretrained:
            bands = (hp.data_info or {}).get("bands")
            with warnings.catch_warnings():
                if self._on_projector:  # other sizes are an error below, not a warning
                    warnings.filterwarnings("ignore", message="the projectors of")
                pre = load_pretrained(
                    self.encoder, hp.pretrained, bands, projectors=hp.alpha > 0 or self._on_projector
                )
            if self._on_projector:
                self._check_projectors(pre.state_dict)
        self.fusion = build_fusion(
            hp.get("fusion", "concat"),
            {m: self.encoder.backbones[m].num_features for m in self.modalities},
            hp.get("fusion_dim"),
        )
        dim = hp.projection_dim if self._on_projector else self.fusion.out_dim
        names = (hp.data_info or {}).get("classes") or [str(i) for i in range(hp.num_classes)]
        head = hp.get("head_classes")
        if head is not None and len(names) > max(head):
            names = [names[i] for i in head]
        self.class_names = list(names)[: hp.num_classes]
        self.tree = None
        if hp.get("hierarchy") and not hp.multilabel:
            from rsmm.hyperbolic import LabelTree

            self.tree = LabelTree.from_yaml(hp.hierarchy, classes=self.class_names)
        self.head = self.build_head(dim)
        if hp.freeze_backbone:
            for p in self._frozen().parameters():
                p.requires_grad_(False)
        top_k = self._top_k()
        self.val_metrics = classification_metrics(hp.num_classes, hp.multilabel, top_k)
        self.test_metrics = classification_metrics(hp.num_classes, hp.multilabel, top_k)
        self.subset_test_metrics = SubsetMetrics(hp.num_classes, hp.multilabel, top_k)
        if self.tree is not None:
            from rsmm.hyperbolic import AverageHierarchicalCost

            D = self.tree.distance_matrix(self.class_names)
            self.val_metrics.add_metrics({"AHC": AverageHierarchicalCost(D, ignore_index=-1)})
            self.test_metrics.add_metrics({"AHC": AverageHierarchicalCost(D, ignore_index=-1)})
        if hp.class_weights:
            self.register_buffer(
                "class_weight", torch.tensor(hp.class_weights, dtype=torch.float32)
            )
        else:
            self.class_weight = None

    def _top_k(self) -> tuple[int, ...]:
        """The ``top_k`` option (``None``, and checkpoints that predate it: ``Acc@5``)."""
        top_k = self.hparams.get("top_k")
        return check_top_k(DEFAULT_TOP_K if top_k is None else top_k)

    @property
    def _on_projector(self) -> bool:
        return self.hparams.get("head_input", "features") == "projector"

    def _frozen(self) -> nn.Module:
        """What ``freeze_backbone`` freezes: the backbones (and the projectors the head
        reads)."""
        enc = self.encoder
        return nn.ModuleList([enc.backbones, enc.projectors]) if self._on_projector else enc.backbones

    def _check_projectors(self, state_dict: Mapping[str, Tensor]) -> None:
        own = {k: v for k, v in self.encoder.state_dict().items() if k.startswith("projectors.")}
        if any(k not in state_dict or state_dict[k].shape != v.shape for k, v in own.items()):
            raise CheckpointError(
                f"head_input: 'projector' needs the projectors of {self.hparams.pretrained} with "
                f"projection_dim={self.hparams.projection_dim} and hidden_dim="
                f"{self.hparams.hidden_dim} (set them as in the pre-training); it has none of "
                "these sizes"
            )

    def head_inputs(
        self,
        x: Mapping[str, Tensor],
        features: bool = False,
        presence: Mapping[str, Tensor] | None = None,
    ) -> Tensor:
        """What the head reads, from first-view images ``{modality: B x C x H x W}`` (or
        from backbone features when ``features``): the fused backbone features, or the
        mean of the clipped projector outputs (``head_input="projector"``), over the
        modalities present (``presence``, and those ``x`` has)."""
        if not self._on_projector:
            if features:
                return self.fusion({m: x[m] for m in self.modalities if m in x}, presence)
            return self.encoder.fused(x, self.modalities, presence, self.fusion)
        mods = [m for m in self.modalities if m in x]
        feats = x if features else self.encoder.features({m: x[m] for m in mods}, presence)
        from rsmm.hyperbolic.ball import clip_features

        clip_r = (self.hparams.head_kwargs or {}).get("clip_r")
        z = {m: clip_features(self.encoder.projectors[m](feats[m]), clip_r) for m in mods}
        if presence is None and len(mods) == len(self.modalities):
            return torch.stack(list(z.values())).mean(0)
        return masked_mean(z, presence_masks(z, self.modalities, presence))

    def build_head(self, dim: int) -> nn.Module:
        hp = self.hparams
        kw = dict(hp.head_kwargs or {})
        bottleneck: list[nn.Module] = []
        if hp.get("head_dim"):
            bottleneck, dim = [nn.Linear(dim, hp.head_dim)], hp.head_dim
        if hp.head == "linear":
            linear = nn.Linear(dim, hp.num_classes, **kw)
            if hp.freeze_backbone and not bottleneck and hp.get("linear_probe_norm", True):
                # linear-probe protocol (He et al. 2022, MAE): standardise the frozen
                # features with a non-affine batch norm before the linear classifier.
                # momentum=None keeps a cumulative average: the frozen features are
                # stationary, and an exponential average started at (0, 1) keeps a few %
                # of that start after a short probe, which wrecks evaluation when the
                # features' mean is large against their spread (random encoders).
                bn = nn.BatchNorm1d(dim, affine=False, momentum=None)
                return nn.Sequential(bn, linear)
            return nn.Sequential(*bottleneck, linear) if bottleneck else linear
        from rsmm.hyperbolic import build_head, hierarchical_prototypes

        if hp.head == "mgp":
            kw = self._mgp_kwargs(kw)
        gw = dict(kw.pop("gw", None) or {})
        if kw.get("prototypes") == "hierarchical":
            if self.tree is None:
                raise ConfigError("head_kwargs.prototypes: 'hierarchical' needs `hierarchy`")
            unknown = sorted(set(gw) - set(GW_OPTIONS))
            if unknown:
                raise ConfigError(
                    f"head_kwargs.gw: {unknown} are not options of the GW assignment "
                    f"(it takes {', '.join(GW_OPTIONS)})"
                )
            kw["prototypes"] = hierarchical_prototypes(
                self.tree, dim, classes=self.class_names, **gw
            )
        elif gw:
            raise ConfigError("head_kwargs.gw needs head_kwargs.prototypes: hierarchical")
        head = build_head(hp.head, dim, hp.num_classes, **kw)
        return nn.Sequential(*bottleneck, head) if bottleneck else head

    def _mgp_kwargs(self, kw: dict[str, Any]) -> dict[str, Any]:
        """``head: mgp``'s arguments: ``head_kwargs`` and the tree's cost matrix."""
        if self.tree is None:
            raise ConfigError(
                "head: 'mgp' (Metric-Guided Prototypes) needs `hierarchy` and single-label "
                "data: its prototypes follow the label tree's path lengths"
            )
        unknown = sorted(set(kw) - set(MGP_OPTIONS))
        if unknown:
            raise ConfigError(
                f"head_kwargs: {unknown} are not options of head 'mgp' "
                f"(it takes {', '.join(MGP_OPTIONS)})"
            )
        return {**kw, "cost": self.tree.distance_matrix(self.class_names)}

    def _head_regularisation(self, batch_size: int) -> Tensor | None:
        """The head's own training term (``head: mgp``: its weighted distortion), logged
        as ``train/distortion``; ``None`` for the other heads."""
        if self.hparams.head != "mgp":
            return None
        from rsmm.hyperbolic import MetricGuidedPrototypes

        (mgp,) = [m for m in self.head.modules() if isinstance(m, MetricGuidedPrototypes)]
        disto = mgp.distortion()
        self.log("train/distortion", disto, batch_size=batch_size)
        return mgp.distortion_weight * disto

    def param_groups(self) -> list[dict[str, Any]]:
        hp = self.hparams
        enc = [p for p in self.encoder.backbones.parameters() if p.requires_grad]
        rest = [
            p
            for n, p in self.named_parameters()
            if p.requires_grad and not n.startswith("encoder.backbones.")
        ]
        groups = [{"params": rest, "lr": hp.lr}]
        if enc:
            groups.append({"params": enc, "lr": hp.backbone_lr or hp.lr})
        return groups

    def on_train_epoch_start(self) -> None:
        if self.hparams.freeze_backbone:
            self._frozen().eval()

    # -- steps -------------------------------------------------------------------------------

    def forward(self, batch: Mapping[str, Any]) -> Tensor:
        """Logits of a batch (first view of each modality it carries)."""
        views = self.batch_views(batch, self.available(batch))
        first = {m: v[0] for m, v in views.items()}
        return self.head(self.head_inputs(first, presence=self.presence(batch)))

    def _loss(self, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor]:
        hp = self.hparams
        views = self.batch_views(batch, self.available(batch))
        first = {m: v[0] for m, v in views.items()}
        y = self.head_targets(batch["label"])
        b = y.shape[0]
        presence = self.presence(batch)
        fused_presence = self.dropped(presence, b)
        if hp.alpha > 0:
            # rows of negative-only samples (the dataset's negative_classes) are never
            # anchors or positives of SupCon, as in pre-training; rows of absent
            # modalities are left out altogether (modality dropout only affects fusion)
            samples = replace(self.sample_info(batch), presence=presence)
            e = self.encoder.embed_views(views, samples=samples)
            feats = {m: f[:b] for m, f in e.features.items()}
            logits = self.head(self.head_inputs(feats, True, fused_presence))
            z, ids, labels, anchors = e.flat(), e.sample_ids(), e.row_labels(), e.anchor_mask()
            keep = e.present_rows()
            if keep is not None:
                z, ids, labels = z[keep], ids[keep], labels[keep]
                anchors = anchors[keep] if anchors is not None else None
            sup = mm_supcon(z, ids, labels, hp.temperature, anchors)
            return supcon_mixture(sup, self._cls(logits, y), hp.alpha), logits
        # the encoders see the rows the samples have; dropout only hides them from fusion
        feats = self.encoder.features(first, presence)
        logits = self.head(self.head_inputs(feats, True, fused_presence))
        return self._cls(logits, y), logits

    def _cls(self, logits: Tensor, y: Tensor) -> Tensor:
        hp = self.hparams
        kind = "bce" if hp.multilabel else hp.loss
        return classification_loss(logits, y, kind, self.class_weight, hp.focal_gamma)

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        loss, _ = self._loss(batch)
        penalty = self._head_regularisation(batch["label"].shape[0])
        if penalty is not None:
            loss = loss + penalty
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["label"].shape[0])
        return loss

    def _predictions(self, logits: Tensor) -> Tensor:
        """What the metrics read: sigmoid scores (multi-label), else the class scores
        themselves (larger = more likely; the metrics take their argmax or top k)."""
        if self.hparams.multilabel:
            return torch.sigmoid(logits.float())
        return logits.float()

    def _target(self, y: Tensor) -> Tensor:
        return y.long() if self.hparams.multilabel else y

    def _eval_step(self, batch: Mapping[str, Any], metrics: Any, prefix: str) -> None:
        y = self.head_targets(batch["label"])
        presence = self.presence(batch)
        subsets = prefix == "test" and self._subset_metrics_on(presence)
        if not subsets:
            logits = self(batch)
        else:  # one backbone pass serves every subset
            mods = self.available(batch)
            views = self.batch_views(batch, mods)
            feats = self.encoder.features({m: v[0] for m, v in views.items()}, presence)
            logits = self.head(self.head_inputs(feats, True, presence))
            self._update_subset_metrics(feats, presence, y, mods)
        loss = self._cls(logits, y)
        self.log(f"{prefix}/loss", loss, batch_size=y.shape[0], sync_dist=True)
        metrics.update(self._predictions(logits), self._target(y))

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, self.val_metrics, "val")

    def test_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, self.test_metrics, "test")

    def _log_metrics(self, metrics: Any, prefix: str) -> dict[str, Any]:
        values = metrics.compute()
        scalars = summarise(values, self.class_names, self._metric_exclude())
        self.log_dict({f"{prefix}/{k}": v for k, v in scalars.items()}, sync_dist=False)
        metrics.reset()
        return values

    def on_validation_epoch_end(self) -> None:
        self._log_metrics(self.val_metrics, "val")

    def on_test_epoch_end(self) -> None:
        values = self._log_metrics(self.test_metrics, "test")
        per_subset = self.subset_test_metrics.compute(self.class_names, self.hparams.exclude_class)
        if per_subset:
            self.log_dict({f"test/{k}": v for k, v in per_subset.items()}, sync_dist=False)
        if "confusion" in values and self.trainer.is_global_zero:
            out = Path(self.trainer.log_dir or self.trainer.default_root_dir)
            save_confusion(values["confusion"], self.class_names, out)
