"""Classification metrics (torchmetrics) and the confusion-matrix report.

Single-label (updated with ``N x K`` class scores, larger = more likely: logits or a
hyperbolic head's scores): overall accuracy (OA, the top-1 accuracy), top-k accuracies
(``Acc@k``: the fraction of samples whose class is among the k largest scores, as the
thesis' Tables 3.1 and 3.2 report ``Acc@5``), per-class accuracy, average accuracy over
classes (AA, optionally excluding a class, as the thesis excludes Meter-ML's Negative),
Cohen's kappa and the confusion matrix (OA, per-class accuracy, kappa and the confusion
matrix read the argmax of the scores; class ids ``N`` are accepted too, without Acc@k).

Multi-label (multi-hot targets, sigmoid scores): per-class average precision (AUPRC,
``AP/<class>``), their mean over the classes with a positive (``mAP`` = ``mAP_macro``),
the micro average over every (sample, class) pair (``mAP_micro``, what sklearn's
``average_precision_score(..., average="micro")`` gives and the number BigEarthNet
papers such as SSL4EO-S12 usually report), and F1 at a 0.5 threshold, micro and macro
(``F1_micro``, ``F1_macro``; a class with neither positives nor predictions counts 0 in
the macro average, as torchmetrics and sklearn count it).

Per available-modality subset (:class:`SubsetMetrics`): the same scalars for a model
predicting from one subset of its modalities, logged as ``<metric>@<subset>`` (e.g.
``OA@s1``, ``OA@s1+s2``, ``Acc@5@s1``).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Sequence
from itertools import combinations
from pathlib import Path

import torch
from torch import Tensor
from torchmetrics import ConfusionMatrix, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassCohenKappa,
    MultilabelAveragePrecision,
    MultilabelF1Score,
    MultilabelStatScores,
)

from rsmm.atomic import atomic_open, atomic_path
from rsmm.errors import ConfigError

#: Scalars a multi-label collection reports (besides ``AP/<class>``), in table order.
MULTILABEL_SCALARS = ("mAP_micro", "mAP_macro", "F1_micro", "F1_macro")
#: The top-k accuracies a fine-tuning reports unless told otherwise (``Acc@5``).
DEFAULT_TOP_K = (5,)


def check_top_k(top_k: Sequence[int]) -> tuple[int, ...]:
    """The ``top_k`` option as a tuple of positive ints (a :class:`ConfigError` names a
    bad entry)."""
    out = []
    for k in top_k:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"top_k: entries must be positive integers, got {k!r}")
        out.append(k)
    return tuple(out)


def top_k_values(num_classes: int, top_k: Sequence[int]) -> tuple[int, ...]:
    """The k of the ``Acc@k`` a collection of ``num_classes`` classes reports: the
    entries of ``top_k`` with ``1 < k < num_classes``, sorted, each once (``Acc@1`` is
    OA, and with k >= the number of classes every sample is a hit)."""
    return tuple(sorted({k for k in check_top_k(top_k) if 1 < k < num_classes}))


def classification_metrics(
    num_classes: int, multilabel: bool = False, top_k: Sequence[int] = ()
) -> MetricCollection:
    """The metric collection of a fine-tuning split.

    Args:
        num_classes: number of classes (labels when ``multilabel``).
        multilabel: multi-hot targets and sigmoid scores (AP and F1 metrics).
        top_k: single-label only: report ``Acc@k`` for each k of ``top_k`` with
            ``1 < k < num_classes`` (see :func:`top_k_values`); the collection must then
            be updated with ``N x K`` scores.
    """
    if multilabel:
        k = num_classes
        return MetricCollection(
            {
                "AP": MultilabelAveragePrecision(num_labels=k, average=None),
                "mAP_micro": MultilabelAveragePrecision(num_labels=k, average="micro"),
                "F1_micro": MultilabelF1Score(num_labels=k, threshold=0.5, average="micro"),
                "F1_macro": MultilabelF1Score(num_labels=k, threshold=0.5, average="macro"),
                # per class: tp, fp, tn, fn, support (positives seen)
                "stats": MultilabelStatScores(num_labels=k, threshold=0.5, average=None),
            }
        )
    metrics = {
        "OA": MulticlassAccuracy(num_classes=num_classes, average="micro", ignore_index=-1),
        "per_class": MulticlassAccuracy(num_classes=num_classes, average=None, ignore_index=-1),
        "kappa": MulticlassCohenKappa(num_classes=num_classes, ignore_index=-1),
        "confusion": ConfusionMatrix(task="multiclass", num_classes=num_classes, ignore_index=-1),
    }
    for k in top_k_values(num_classes, top_k):
        # torchmetrics' top-k: a hit when the class is among torch.topk's k indices (a
        # tie at the k-th score is broken as torch.topk breaks it)
        metrics[f"Acc@{k}"] = MulticlassAccuracy(
            num_classes=num_classes, top_k=k, average="micro", ignore_index=-1
        )
    # no compute groups: torchmetrics merges metrics whose states agree after the first
    # batch, and a top-k accuracy's per-class states agree with per_class's whenever the
    # first batch's top-1 predictions are all right (per_class would then count top-k hits)
    return MetricCollection(metrics, compute_groups=False)


def summarise(
    values: dict[str, Tensor], classes: Sequence[str], exclude_class: int | None = None
) -> dict[str, float]:
    """Scalars to log from a computed collection (per-class entries named by class)."""
    out: dict[str, float] = {}
    if "AP" in values:
        ap = values["AP"].float().clone()
        if "stats" in values:  # AP is undefined for a class without positives
            ap[values["stats"][:, 4] == 0] = float("nan")
        out["mAP"] = out["mAP_macro"] = float(torch.nanmean(ap))
        for name in MULTILABEL_SCALARS[:1] + MULTILABEL_SCALARS[2:]:
            if name in values:
                out[name] = float(values[name])
        for i, v in enumerate(ap.tolist()):
            if not math.isnan(v):
                out[f"AP/{classes[i]}"] = v
        return out
    out["OA"] = float(values["OA"])
    out.update({k: float(v) for k, v in values.items() if k.startswith("Acc@")})
    if "AHC" in values:
        out["AHC"] = float(values["AHC"])
    out["kappa"] = float(values["kappa"])
    cm = values["confusion"].float()
    support = cm.sum(1)
    per = values["per_class"].float()
    present = support > 0
    if exclude_class is not None and 0 <= exclude_class < len(per):
        present[exclude_class] = False
    out["AA"] = float(per[present].mean()) if present.any() else float("nan")
    for i, v in enumerate(per.tolist()):
        if support[i] > 0:
            out[f"acc/{classes[i]}"] = v
    return out


def save_confusion(
    cm: Tensor, classes: Sequence[str], out_dir: str | Path, stem: str = "confusion"
) -> tuple[Path, Path]:
    """Write the confusion matrix as CSV (counts) and PNG (row-normalised); rows = truth."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cm = cm.detach().cpu().long()
    csv_path = out_dir / f"{stem}.csv"
    with atomic_open(csv_path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["true \\ predicted", *classes])
        for name, row in zip(classes, cm.tolist()):
            w.writerow([name, *row])
    norm = cm.float() / cm.sum(1, keepdim=True).clamp_min(1)
    n = len(classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.45 * n, 0.8 + 0.45 * n))
    ax.imshow(norm.numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=90, fontsize=7)
    ax.set_yticks(range(n), classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=6)
    fig.tight_layout()
    png_path = out_dir / f"{stem}.png"
    try:
        with atomic_path(png_path) as tmp:
            fig.savefig(tmp, format="png", dpi=120)
    finally:
        plt.close(fig)
    return csv_path, png_path


def modality_subsets(modalities: Sequence[str]) -> Iterator[tuple[str, ...]]:
    """Every non-empty subset of ``modalities``, in their order, smallest first."""
    for k in range(1, len(modalities) + 1):
        yield from combinations(modalities, k)


def subset_name(subset: Sequence[str]) -> str:
    """The name of a modality subset in metric names: ``s1+s2``."""
    return "+".join(subset)


class SubsetMetrics:
    """One metric collection per modality subset, created when first updated.

    Not an ``nn.Module``: the collections hold no weights and stay out of checkpoints.

    Args:
        num_classes: number of classes.
        multilabel: multi-hot targets.
        top_k: the ``Acc@k`` to report (single-label; see :func:`classification_metrics`).
    """

    def __init__(
        self, num_classes: int, multilabel: bool = False, top_k: Sequence[int] = ()
    ) -> None:
        self.num_classes = num_classes
        self.multilabel = multilabel
        self.top_k = check_top_k(top_k)
        self.collections: dict[str, MetricCollection] = {}

    def update(self, subset: Sequence[str], preds: Tensor, target: Tensor) -> None:
        """Add a batch's predictions made from ``subset``: ``N x K`` class scores (class
        ids ``N`` when no ``Acc@k`` is asked for), or sigmoid scores when multi-label."""
        name = subset_name(subset)
        if name not in self.collections:
            metrics = classification_metrics(self.num_classes, self.multilabel, self.top_k)
            self.collections[name] = metrics.to(preds.device)
        if target.shape[0]:
            self.collections[name].update(preds, target)

    def compute(
        self, classes: Sequence[str], exclude_class: int | None = None
    ) -> dict[str, float]:
        """``{"<metric>@<subset>": value}`` for the whole-split scalars (OA, Acc@k, AA,
        kappa; mAP, F1 when multi-label) of every subset seen, then reset."""
        out: dict[str, float] = {}
        for name, metrics in self.collections.items():
            if not any(m.update_count for m in metrics.values()):
                continue
            scalars = summarise(metrics.compute(), classes, exclude_class)
            out.update({f"{k}@{name}": v for k, v in scalars.items() if "/" not in k})
        self.reset()
        return out

    def reset(self) -> None:
        """Forget every batch."""
        for metrics in self.collections.values():
            metrics.reset()
