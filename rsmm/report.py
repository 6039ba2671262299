"""A one-page PNG report of a pre-train / fine-tune comparison.

Panels: the pre-training loss curve (from the CSV logger), one confusion matrix per
compared initialisation (from the CSV :func:`rsmm.tasks.metrics.save_confusion` writes at
test time) and a 2-D principal-component projection of the test embeddings of each
initialisation, coloured by class. ``rsmm quickstart`` writes it; any run directory of
``rsmm pretrain`` / ``rsmm test`` has the files it reads.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rsmm.atomic import atomic_path
from rsmm.errors import ConfigError, UnknownNameError


def last_logged(metrics_csv: str | Path, prefixes: tuple[str, ...]) -> dict[str, float]:
    """The last logged value of every column of a Lightning CSV logger's ``metrics.csv``
    whose name starts with one of ``prefixes`` (cells that are empty or not numbers are
    skipped)."""
    last: dict[str, float] = {}
    with Path(metrics_csv).open(newline="") as fh:
        for row in csv.DictReader(fh):
            for k, v in row.items():
                if k and k.startswith(prefixes) and v not in (None, ""):
                    try:
                        last[k] = float(v)
                    except ValueError:
                        continue
    return last


def read_logged(metrics_csv: str | Path, key: str) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of one metric in a Lightning CSV logger's ``metrics.csv``.

    Raises:
        FileNotFoundError: if the file does not exist.
        KeyError: if the file has no column ``key`` (the message lists the columns).
    """
    path = Path(metrics_csv)
    if not path.is_file():
        raise FileNotFoundError(f"no metrics file {path}")
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    columns = rows[0].keys() if rows else []
    if key not in columns:
        raise UnknownNameError(f"{path} has no column {key!r}; columns: {', '.join(columns)}")
    kept = [(int(r["step"]), float(r[key])) for r in rows if r.get(key) not in (None, "")]
    steps, values = zip(*kept, strict=True) if kept else ((), ())
    return np.asarray(steps, dtype=np.int64), np.asarray(values, dtype=np.float64)


def read_confusion(confusion_csv: str | Path) -> tuple[np.ndarray, list[str]]:
    """Counts (rows = truth) and class names of a confusion-matrix CSV."""
    path = Path(confusion_csv)
    if not path.is_file():
        raise FileNotFoundError(f"no confusion matrix {path}")
    with path.open(newline="") as fh:
        header, *rows = list(csv.reader(fh))
    classes = header[1:]
    counts = np.asarray([[int(v) for v in row[1:]] for row in rows], dtype=np.int64)
    if counts.shape != (len(classes), len(classes)):
        raise ConfigError(f"{path}: expected a {len(classes)} x {len(classes)} matrix")
    return counts, classes


def pca_2d(features: Tensor | np.ndarray, standardise: bool = True) -> np.ndarray:
    """Project ``n x d`` features on their first two principal components (``n x 2``).

    With ``standardise`` each feature is scaled to unit variance first, so that a few
    high-variance channels (one modality's) do not hide the others.
    """
    x = torch.as_tensor(np.asarray(features), dtype=torch.float64)
    x = x - x.mean(0, keepdim=True)
    if standardise:
        x = x / x.std(0, keepdim=True).clamp_min(1e-12)
    _, _, vh = torch.linalg.svd(x, full_matrices=False)
    comps = vh[:2]
    # fixed sign: the largest-magnitude loading of each component is positive
    signs = torch.sign(comps.gather(1, comps.abs().argmax(1, keepdim=True)))
    xy = x @ (comps * signs).T
    if xy.shape[1] < 2:  # one feature: pad with zeros
        xy = torch.cat([xy, torch.zeros(xy.shape[0], 2 - xy.shape[1], dtype=xy.dtype)], 1)
    return xy.numpy()


@torch.no_grad()
def embed_test_split(task: torch.nn.Module, datamodule: object) -> tuple[np.ndarray, np.ndarray]:
    """Backbone features (modalities concatenated) and labels of the test split.

    Batches go through the datamodule's device hook, so they are normalised exactly as
    in training; the task's encoder is used in evaluation mode.
    """
    dl = datamodule.test_dataloader()  # type: ignore[attr-defined]
    was_training = task.training
    task.eval()
    feats, labels = [], []
    for i, batch in enumerate(dl):
        batch = datamodule.on_after_batch_transfer(batch, i)  # type: ignore[attr-defined]
        views = {m: v[0] for m, v in batch.items() if m not in ("label", "meta")}
        mods = [m for m in task.modalities if m in views]  # type: ignore[attr-defined]
        feats.append(task.encoder.fused(views, mods).float().cpu())  # type: ignore[attr-defined]
        labels.append(batch["label"].cpu())
    task.train(was_training)
    return torch.cat(feats).numpy(), torch.cat(labels).numpy()


def write_report(
    path: str | Path,
    *,
    loss: tuple[np.ndarray, np.ndarray] | None,
    confusions: Mapping[str, tuple[np.ndarray, Sequence[str]]],
    embeddings: Mapping[str, tuple[np.ndarray, np.ndarray]],
    classes: Sequence[str],
    title: str = "rsmm report",
) -> Path:
    """Write the report figure.

    Args:
        path: output PNG.
        loss: ``(steps, values)`` of the pre-training loss, or ``None``.
        confusions: ``{name: (counts, class names)}``, one panel each (row-normalised).
        embeddings: ``{name: (n x 2 projected features, n labels)}``, one panel each.
        classes: class names (index = label id) for the embedding legend.
        title: figure title.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    panels = (loss is not None) + len(confusions) + len(embeddings)
    cols = min(3, max(panels, 1))
    rows = math.ceil(panels / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 4.2 * rows), squeeze=False)
    flat = list(axes.flat)
    k = 0
    if loss is not None:
        ax = flat[k]
        k += 1
        ax.plot(loss[0], loss[1], lw=1.2)
        ax.set_xlabel("step")
        ax.set_ylabel("pre-training loss")
        ax.set_title("pre-training loss")
    for name, (counts, names) in confusions.items():
        ax = flat[k]
        k += 1
        norm = counts / np.maximum(counts.sum(1, keepdims=True), 1)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        n = len(names)
        ax.set_xticks(range(n), names, rotation=90, fontsize=7)
        ax.set_yticks(range(n), names, fontsize=7)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        oa = np.trace(counts) / max(counts.sum(), 1)
        ax.set_title(f"confusion: {name} (OA {oa:.3f})")
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for name, (xy, labels) in embeddings.items():
        ax = flat[k]
        k += 1
        for c, cname in enumerate(classes):
            sel = labels == c
            if sel.any():
                ax.scatter(xy[sel, 0], xy[sel, 1], s=6, color=cmap(c % cmap.N), label=cname)
        ax.set_title(f"test embeddings (PCA): {name}")
        ax.set_xticks([])
        ax.set_yticks([])
    if embeddings:
        flat[k - 1].legend(fontsize=6, markerscale=2, loc="best")
    for ax in flat[k:]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=110)
    finally:
        plt.close(fig)
    return path
