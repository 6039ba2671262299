"""Band-aware, batched, device-side augmentation.

:class:`BandAugment` turns a batch ``{modality: B x C x H x W}`` (values as stored)
into ``{modality: [view_1, ..., view_V]}`` normalised per band, on the batch's device.
Geometry is drawn in normalised coordinates (shared across modalities of different
resolutions if asked), radiometric operations depend on the sensor kind (no colour op
on SAR, units-aware speckle and dB offsets for SAR), and presets are YAML files in
``rsmm/augment/recipes/`` (``eval``, ``mm_pretrain``, ``simclr_ms``, ``torchgeo_simclr``).
"""

from __future__ import annotations

from typing import Any

from rsmm.augment.geometry import GeometryConfig, affine_matrices, apply_geometry, draw_geometry
from rsmm.augment.ops import OPS, ModalityInfo, Op
from rsmm.augment.optical import BandDropout, Brightness, Contrast, GaussianBlur, Grayscale
from rsmm.augment.pipeline import BandAugment
from rsmm.augment.presets import Preset, available_presets, load_preset, parse_preset
from rsmm.augment.sar import DbOffset, Speckle, db_to_linear, linear_to_db

__all__ = [
    "OPS",
    "BandAugment",
    "BandDropout",
    "Brightness",
    "Contrast",
    "DbOffset",
    "GaussianBlur",
    "GeometryConfig",
    "Grayscale",
    "ModalityInfo",
    "Op",
    "Preset",
    "Speckle",
    "affine_matrices",
    "apply_geometry",
    "available_presets",
    "db_to_linear",
    "draw_geometry",
    "linear_to_db",
    "load_preset",
    "parse_preset",
    "plot_views",
]


def __getattr__(name: str) -> Any:
    # plotting pulls in matplotlib; import it only when asked for
    if name == "plot_views":
        from rsmm.augment.plot import plot_views

        return plot_views
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
