"""Plot a sample next to its augmented views."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import torch

from rsmm.render import render_modality
from rsmm.sensors import get_sensor

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def plot_views(
    sample_batch: Mapping[str, torch.Tensor],
    views: Mapping[str, Sequence[torch.Tensor]],
    sensors: Mapping[str, str],
    bands: Mapping[str, Sequence[str]],
    index: int = 0,
    units: Mapping[str, str] | None = None,
    suptitle: str | None = None,
) -> Figure:
    """One row per modality rendering: the input sample, then each of its views.

    Each panel is rendered by :func:`rsmm.render.render_modality` (percentile
    stretch per panel, so normalised views display like the input).

    Args:
        sample_batch: the input batch ``{modality: B x C x H x W}`` (values as stored).
        views: the output of :class:`~rsmm.augment.BandAugment` on that batch.
        sensors: ``{modality: sensor name}``.
        bands: ``{modality: band names in channel order}``.
        index: which sample of the batch to show.
        units: ``{modality: units}`` of the input (for the SAR ratio panel); the views
            are normalised dB-like values and rendered as ``"db"``.
        suptitle: optional figure title.

    Returns:
        The matplotlib figure.

    Raises:
        ValueError: if ``index`` is outside the batch or a modality has no views.
    """
    units = dict(units or {})
    rows: list[tuple[str, list[tuple[str, object]]]] = []
    for m, x in sample_batch.items():
        if not 0 <= index < x.shape[0]:
            raise ValueError(f"index {index} is outside the batch of {x.shape[0]} samples")
        if m not in views:
            raise ValueError(f"no views given for modality {m!r}")
        u = units.get(m, "db" if get_sensor(sensors[m]).is_sar else "dn")
        columns = [render_modality(sensors[m], bands[m], x[index], u)]
        columns += [render_modality(sensors[m], bands[m], v[index], "db") for v in views[m]]
        for k in range(len(columns[0])):
            label = columns[0][k][0]
            rows.append(
                (
                    label,
                    [
                        ("input" if j == 0 else f"view {j}", col[k][1])
                        for j, col in enumerate(columns)
                    ],
                )
            )
    import matplotlib.pyplot as plt  # only when a plot is asked for

    ncols = max(len(r[1]) for r in rows)
    fig, axs = plt.subplots(len(rows), ncols, figsize=(2.6 * ncols, 2.6 * len(rows)), squeeze=False)
    for r, (label, panels) in enumerate(rows):
        for c in range(ncols):
            ax = axs[r, c]
            ax.axis("off")
            if c < len(panels):
                title, img = panels[c]
                ax.imshow(img, cmap=None if getattr(img, "ndim", 2) == 3 else "gray")
                ax.set_title(f"{label}\n{title}" if c == 0 else title, fontsize=9)
    if suptitle is not None:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig
