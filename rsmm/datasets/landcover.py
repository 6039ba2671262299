"""Land-cover classes shared by SEN12MS and DFC2020: the simplified IGBP scheme.

Both datasets label land cover with the 10 classes of the *simplified IGBP* scheme
used by the IEEE GRSS Data Fusion Contest 2020 (Schmitt et al., "SEN12MS", ISPRS
Annals 2019; Robinson et al., "Global land-cover mapping with weak supervision",
IEEE JSTARS 2021). A DFC2020 mask stores value ``v`` in ``1..10`` for class ``v - 1``
(``0`` and ``255`` mark no data); a SEN12MS land-cover patch stores the original
17-class IGBP value in its first band, mapped to the simplified scheme with
:data:`IGBP_TO_DFC`.

A scene (patch) label is the most frequent class of its pixels
(:func:`majority_value`); ties go to the lowest class value.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from rsmm.errors import ConfigError

#: The 10 simplified IGBP classes; the index is the class id (dfc value minus one).
DFC_CLASSES: tuple[str, ...] = (
    "Forest",
    "Shrubland",
    "Savanna",
    "Grassland",
    "Wetlands",
    "Croplands",
    "Urban/Built-up",
    "Snow/Ice",
    "Barren",
    "Water",
)

#: Classes removed by the 8-class variant (too rare in the DFC2020 releases).
DROPPED_IN_8: tuple[str, ...] = ("Savanna", "Snow/Ice")

#: The 8-class scheme: :data:`DFC_CLASSES` without :data:`DROPPED_IN_8`, in order.
DFC_CLASSES_8: tuple[str, ...] = tuple(c for c in DFC_CLASSES if c not in DROPPED_IN_8)

#: ``IGBP_TO_DFC[igbp]`` is the simplified (dfc) value of an IGBP value ``0..17``;
#: ``0`` means no data. 1-5 forests -> Forest, 6-7 shrublands -> Shrubland,
#: 8-9 savannas -> Savanna, 10 -> Grassland, 11 -> Wetlands, 12 and 14 (cropland /
#: natural mosaic) -> Croplands, 13 -> Urban, 15 -> Snow/Ice, 16 -> Barren, 17 -> Water.
IGBP_TO_DFC: np.ndarray = np.array(
    [0, 1, 1, 1, 1, 1, 2, 2, 3, 3, 4, 5, 6, 7, 6, 8, 9, 10], dtype=np.int64
)

#: ``TEN_TO_EIGHT[c]`` is the 8-class id of 10-class id ``c``, or ``-1`` if dropped.
TEN_TO_EIGHT: np.ndarray = np.array(
    [DFC_CLASSES_8.index(c) if c in DFC_CLASSES_8 else -1 for c in DFC_CLASSES],
    dtype=np.int64,
)


def class_names(num_classes: int) -> tuple[str, ...]:
    """Class names of the 10- or 8-class scheme.

    Raises:
        ValueError: if ``num_classes`` is neither 8 nor 10.
    """
    if num_classes == 10:
        return DFC_CLASSES
    if num_classes == 8:
        return DFC_CLASSES_8
    raise ConfigError(f"num_classes must be 8 or 10, got {num_classes}")


def majority_value(values: np.ndarray, ignore: Iterable[int] = ()) -> int | None:
    """Most frequent non-negative integer value of an array, ignoring some values.

    Args:
        values: array of non-negative integers (any shape), e.g. a label mask.
        ignore: values that never win (no-data codes).

    Returns:
        The most frequent value (the lowest one on a tie), or ``None`` when every
        element is ignored (or the array is empty).
    """
    flat = np.asarray(values).reshape(-1).astype(np.int64)
    if flat.size == 0:
        return None
    if flat.min() < 0:
        raise ConfigError("majority_value expects non-negative integer values")
    counts = np.bincount(flat)
    for v in ignore:
        if 0 <= v < counts.size:
            counts[v] = 0
    if counts.max() == 0:
        return None
    return int(counts.argmax())


def igbp_to_dfc(igbp: np.ndarray) -> np.ndarray:
    """Map IGBP values to simplified dfc values ``0..10`` (values outside 0..17 -> 0)."""
    igbp = np.asarray(igbp).astype(np.int64)
    valid = (igbp >= 0) & (igbp < IGBP_TO_DFC.size)
    return np.where(valid, IGBP_TO_DFC[np.clip(igbp, 0, IGBP_TO_DFC.size - 1)], 0)


def igbp_scene_label(igbp: np.ndarray) -> int:
    """10-class scene label of an IGBP land-cover patch, ``-1`` if mostly no data.

    The pixels are first mapped to the simplified scheme (so the five forest types
    add up to one Forest count, as in the SEN12MS scene-classification labels of
    Yu et al.), then the majority is taken over the 11 values ``0..10`` *including*
    no data: a patch whose majority maps to no data (``0``) is unlabelled.
    """
    v = majority_value(igbp_to_dfc(igbp))
    return -1 if v is None or v == 0 else v - 1


def dfc_scene_class(mask: np.ndarray) -> int | None:
    """10-class id of the majority of a DFC2020 mask (``0`` and ``255`` ignored).

    Returns ``None`` when the mask holds no valid value (all ``0`` / ``255``).
    Values above 10 other than 255 are ignored as well.
    """
    mask = np.asarray(mask).astype(np.int64)
    v = majority_value(np.where((mask >= 1) & (mask <= 10), mask, 0), ignore=(0,))
    return None if v is None else v - 1


def to_scheme(class10: int, num_classes: int) -> int:
    """Convert a 10-class id to the ``num_classes`` scheme (``-1`` if it is dropped)."""
    class_names(num_classes)
    return int(class10) if num_classes == 10 else int(TEN_TO_EIGHT[class10])
