"""The synthetic scene's ground truth: land-cover parcels and each sensor's view of a class.

:func:`layout_fields` lays the classes out as strips of rectangular parcels;
:func:`field_index` finds the parcel under ground points. The signatures give each
class's mean Sentinel-2 reflectance, Sentinel-1 backscatter, NAIP digital numbers and
Sentinel-2 scene-classification value; :mod:`rsmm.stacks.scene` renders them.
"""

from __future__ import annotations

import numpy as np

#: The land-cover classes the scene can draw.
DEFAULT_CLASSES = ("water", "forest", "cropland", "urban", "bare")

#: Surface reflectance x 1e4 per class, Sentinel-2 bands in registry order
#: (B01, B02, B03, B04, B05, B06, B07, B08, B8A, B09, B10, B11, B12).
S2_SIGNATURES = {
    "water": (1100, 950, 800, 550, 450, 350, 300, 250, 230, 90, 10, 120, 80),
    "forest": (900, 700, 650, 380, 900, 2400, 2900, 3100, 3250, 1000, 15, 1600, 700),
    "cropland": (1000, 850, 1050, 750, 1450, 2700, 3300, 3600, 3700, 1150, 15, 2300, 1250),
    "urban": (1400, 1300, 1300, 1400, 1500, 1650, 1800, 1900, 2000, 700, 20, 2600, 2350),
    "bare": (1500, 1600, 1950, 2450, 2650, 2800, 2950, 3050, 3150, 950, 20, 3550, 3050),
}
#: Mean backscatter (VV, VH) in dB per class.
S1_SIGNATURES = {
    "water": (-22.0, -28.0),
    "forest": (-8.0, -14.0),
    "cropland": (-11.0, -18.0),
    "urban": (-3.0, -10.0),
    "bare": (-15.0, -23.0),
}
#: NAIP R, G, B, NIR digital numbers per class.
NAIP_SIGNATURES = {
    "water": (40, 60, 80, 20),
    "forest": (50, 85, 55, 170),
    "cropland": (130, 150, 85, 185),
    "urban": (155, 150, 150, 95),
    "bare": (185, 165, 130, 150),
}
#: SCL value per class (4 vegetation, 5 not vegetated, 6 water).
SCL_VALUES = {"water": 6, "forest": 4, "cropland": 4, "urban": 5, "bare": 5}


def layout_fields(
    rng: np.random.Generator,
    bbox: tuple[float, float, float, float],
    sizes: tuple[float, float],
    k: int,
) -> np.ndarray:
    """Strips of parcels: columns of random widths, each cut in rows of random heights.

    Args:
        rng: the scene's random generator.
        bbox: ``(xmin, ymin, xmax, ymax)`` to cover.
        sizes: range of parcel sides.
        k: number of classes.

    Returns:
        ``N x 5`` array ``xmin, ymin, xmax, ymax, class id``.
    """
    xmin, ymin, xmax, ymax = bbox
    fields = []
    x = xmin
    while x < xmax:
        w = float(rng.uniform(*sizes))
        y = ymin
        while y < ymax:
            h = float(rng.uniform(*sizes))
            fields.append((x, y, x + w, y + h, int(rng.integers(k))))
            y += h
        x += w
    return np.array(fields, dtype=np.float64)


def field_index(fields: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Row of ``fields`` holding each ground point ``(x, y)`` (-1 outside every field)."""
    idx = np.full(x.shape, -1, dtype=np.int64)
    for i, (fx0, fy0, fx1, fy1, _) in enumerate(fields):
        idx[(x >= fx0) & (x < fx1) & (y >= fy0) & (y < fy1)] = i
    return idx
