"""Plots of embeddings and prototypes in the Poincaré disk (d = 2) or ball (d = 3)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from rsmm.hyperbolic.hierarchy import LabelTree

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _class_groups(
    num_classes: int, classes: Sequence[str] | None, tree: LabelTree | None
) -> list[str]:
    """Colour key of each class: its top-level group in the tree, else its name."""
    names = list(classes) if classes is not None else [str(i) for i in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"classes has {len(names)} names for {num_classes} classes")
    if tree is None:
        return names
    return [tree.group(name, level=1) for name in names]


def plot_poincare(
    embeddings: Tensor | None = None,
    labels: Tensor | None = None,
    prototypes: Tensor | None = None,
    classes: Sequence[str] | None = None,
    tree: LabelTree | None = None,
    c: float = 1.0,
    title: str | None = None,
) -> Figure:
    """Draw points of the ball and ideal prototypes, coloured by top-level group.

    Args:
        embeddings: ``N x d`` points inside the ball of curvature ``c`` (d = 2 or 3).
        labels: ``N`` class ids of the embeddings (required with ``embeddings``).
        prototypes: ``K x d`` unit vectors (drawn on the boundary, annotated with names).
        classes: class names in label order (default: ids).
        tree: hierarchy; colours are the classes' top-level groups (default: classes).
        c: curvature magnitude; points are rescaled by ``sqrt(c)`` to the unit ball.
        title: axes title.

    Returns:
        The matplotlib figure.
    """
    if embeddings is None and prototypes is None:
        raise ValueError("plot_poincare needs embeddings or prototypes")
    if embeddings is not None and labels is None:
        raise ValueError("labels are required to colour the embeddings")
    ref = embeddings if embeddings is not None else prototypes
    d = ref.shape[-1]
    if d not in (2, 3):
        raise ValueError(f"plot_poincare draws d = 2 or 3 dimensions, got d = {d}")
    if classes is not None:
        num_classes = len(classes)
    elif prototypes is not None:
        num_classes = prototypes.shape[0]
    else:
        num_classes = int(labels.max()) + 1
    import matplotlib.pyplot as plt  # only when a plot is asked for

    groups = _class_groups(num_classes, classes, tree)
    keys = list(dict.fromkeys(groups))
    cmap = plt.get_cmap("tab10" if len(keys) <= 10 else "tab20")
    colour = {g: cmap(i % cmap.N) for i, g in enumerate(keys)}

    fig = plt.figure(figsize=(6, 6))
    ax = fig.add_subplot(projection="3d" if d == 3 else None)
    if d == 2:
        t = np.linspace(0, 2 * np.pi, 256)
        ax.plot(np.cos(t), np.sin(t), color="0.5", lw=1)
        ax.set_aspect("equal")
        ax.set_xlim(-1.15, 1.15)
        ax.set_ylim(-1.15, 1.15)
    else:
        u, v = np.mgrid[0 : 2 * np.pi : 24j, 0 : np.pi : 12j]
        ax.plot_wireframe(
            np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v), color="0.8", lw=0.5
        )
    ax.set_axis_off()

    if embeddings is not None:
        pts = (torch.as_tensor(embeddings).detach().cpu().double() * c**0.5).numpy()
        lab = torch.as_tensor(labels).detach().cpu().long().numpy()
        for g in keys:
            members = [k for k in range(num_classes) if groups[k] == g]
            mask = np.isin(lab, members)
            if mask.any():
                ax.scatter(*pts[mask].T, s=8, alpha=0.6, color=colour[g], label=g)
    if prototypes is not None:
        protos = torch.as_tensor(prototypes).detach().cpu().double().numpy()
        names = list(classes) if classes is not None else [str(k) for k in range(len(protos))]
        ax.scatter(
            *protos.T,
            marker="*",
            s=160,
            edgecolors="k",
            color=[colour[groups[k]] for k in range(len(protos))],
        )
        for k, point in enumerate(protos):
            ax.text(*(1.08 * point), names[k], fontsize=7, ha="center", va="center")
    if embeddings is not None:
        ax.legend(loc="upper right", fontsize=7, markerscale=2)
    if title:
        ax.set_title(title)
    return fig
