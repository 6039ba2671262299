"""Displayable panels of one modality's image (true colour, SAR composites, single bands).

Used by the datasets' ``plot()`` and the augmentation gallery; it depends only on the
sensor registry, so every layer above can use it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from rsmm.sensors import get_sensor


def _stretch(x: np.ndarray) -> np.ndarray:
    """Percentile stretch (2-98 %, per channel) to [0, 1]."""
    x = x.astype(np.float64)
    out = np.empty_like(x)
    for c in range(x.shape[-1]) if x.ndim == 3 else [None]:
        ch = x[..., c] if c is not None else x
        finite = ch[np.isfinite(ch)]
        lo, hi = np.percentile(finite, (2, 98)) if finite.size else (0.0, 1.0)
        scaled = np.clip((ch - lo) / max(hi - lo, 1e-12), 0, 1)
        if c is None:
            out = scaled
        else:
            out[..., c] = scaled
    return out


def render_modality(
    sensor: str, bands: Sequence[str], x: torch.Tensor | np.ndarray, units: str = "dn"
) -> list[tuple[str, np.ndarray]]:
    """Turn one modality's ``C x H x W`` image into displayable panels.

    Returns ``[(title, H x W x 3 or H x W array in [0, 1])]``.
    """
    arr = np.asarray(torch.as_tensor(x).detach().cpu().float())
    idx = {b: i for i, b in enumerate(bands)}

    def pick(*names: str) -> np.ndarray | None:
        if all(n in idx for n in names):
            return np.stack([arr[idx[n]] for n in names], axis=-1)
        return None

    s = get_sensor(sensor)
    if s.is_sar:
        vv, vh = arr[idx["VV"]] if "VV" in idx else None, arr[idx["VH"]] if "VH" in idx else None
        if vv is not None and vh is not None:
            if units == "db":
                ratio = vv - vh
            else:
                ratio = np.log10(np.maximum(vv, 1e-6) / np.maximum(vh, 1e-6))
            return [("S1 VV/VH/ratio", _stretch(np.stack([vv, vh, ratio], -1)))]
        return [(f"S1 {b}", _stretch(arr[i])) for b, i in idx.items()]
    if sensor == "s2":
        rgb = pick("B04", "B03", "B02")
        if rgb is not None:
            return [("S2 true colour", _stretch(rgb))]
        first = list(bands)[:3]
        if len(first) == 3:
            return [(f"S2 {'/'.join(first)}", _stretch(np.stack([arr[i] for i in range(3)], -1)))]
        return [(f"S2 {bands[0]}", _stretch(arr[0]))]
    panels = []
    rgb = pick("R", "G", "B")
    if rgb is not None:
        panels.append((f"{sensor.upper()} RGB", _stretch(rgb)))
    if "NIR" in idx:
        panels.append((f"{sensor.upper()} NIR", _stretch(arr[idx["NIR"]])))
    if not panels:
        panels.append((f"{sensor} {bands[0]}", _stretch(arr[0])))
    return panels
