"""Chip labels from a vector file (points or polygons with a class column), a raster or
per-patch label files (:mod:`rsmm.stacks.label_files`).

- **Points**: a chip takes the majority class of the points inside it (ties go to
  the lowest class id); a chip without points is unlabelled (-1).
- **Polygons**: a chip takes the class covering the largest part of it, if that part
  is at least ``min_cover`` of the chip; otherwise it is unlabelled.
- **Label raster**: the same majority rule over the raster's pixels (nearest
  resampling at the raster's own GSD, nodata ignored); pixel values are class ids.

Multi-label chips (``LabelSpec.multilabel``; the manifest's ``labels`` column, a JSON
list of class ids per chip, and ``"multilabel": true`` in its metadata):

- **Polygons**: every class covering at least ``min_class_fraction`` of the chip (points
  are refused: they cover no area).
- **Label raster**: every class whose pixels cover at least ``min_class_fraction`` of
  the chip's pixels (nodata pixels count in the chip, not for a class).
- **Per-patch label files**: the classes of the patch(es) the chip is read from.

The ``label`` column then holds the class covering the largest part of the chip (label
files: the lowest class id), or -1 for a chip without any class.

Labels that label no chip are an error naming the file (an empty file, labels outside
the chips); labels of a single class are a warning (:func:`check_chip_labels`).

Vector labels are reprojected into the stack's CRS; a file without a CRS, or in one
that cannot be transformed (an engineering / local CRS), is an error naming the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rsmm.errors import DatasetFileError
from rsmm.stacks.label_files import class_names, patch_labels
from rsmm.stacks.spec import LabelSpec
from rsmm.stacks.vector_labels import (
    VectorLabels,
    class_fractions,
    is_points,
    load_vector_labels,
    present_classes,
    vector_chip_labels,
)

# the vector label functions live in rsmm.stacks.vector_labels and are re-exported
__all__ = [
    "VectorLabels",
    "check_chip_labels",
    "check_chip_multilabels",
    "chip_labels",
    "chip_multilabels",
    "class_fractions",
    "class_names",
    "is_points",
    "label_chips",
    "load_vector_labels",
    "multi_hot",
    "present_classes",
    "raster_labels",
    "raster_majority",
    "vector_chip_labels",
]


def raster_labels(values: np.ndarray, spec: LabelSpec) -> dict[str, Any]:
    """A chip's manifest entries from its label-raster window (NaN = nodata).

    Returns:
        ``{"label": majority class or -1}`` (:func:`raster_majority`); multi-label:
        ``{"label": largest class or -1, "labels": [every class covering at least
        min_class_fraction of the chip]}``.

    Raises:
        DatasetFileError: if the raster holds negative class values.
    """
    if not spec.multilabel:
        return {"label": raster_majority(values, spec.min_cover, spec.path)}
    v = values[np.isfinite(values)].astype(np.int64)
    if (v < 0).any():
        raise DatasetFileError(f"label raster {spec.path} holds negative class values ({v.min()})")
    frac = np.bincount(v).astype(np.float64)[None] / max(values.size, 1)
    lists, primary = present_classes(frac, spec.min_class_fraction)
    return {"label": int(primary[0]), "labels": lists[0]}


def raster_majority(values: np.ndarray, min_cover: float = 0.5, source: str = "") -> int:
    """Majority value of a label-raster window (NaN = nodata), or -1 below ``min_cover``.

    Raises:
        DatasetFileError: if the raster holds negative class values.
    """
    v = values[np.isfinite(values)].astype(np.int64)
    if v.size == 0:
        return -1
    if (v < 0).any():
        raise DatasetFileError(f"label raster {source} holds negative class values ({v.min()})")
    counts = np.bincount(v)
    best = int(counts.argmax())
    return best if counts[best] >= min_cover * values.size else -1


def read_labels(
    chips: Any, spec: LabelSpec, crs: str, labeller: VectorLabels | None
) -> tuple[VectorLabels, list[dict[str, Any]] | None]:
    """The vector labels of ``spec`` and, unless the reads labelled the chips with
    ``labeller`` already (their ``label`` columns), every chip's entries
    (:meth:`~rsmm.stacks.vector_labels.VectorLabels.chip_entries`)."""
    if labeller is not None:
        return labeller, None
    labeller = VectorLabels.load(spec, crs)
    return labeller, [labeller.chip_entries(c, spec) for c in np.asarray(chips.geometry.values)]


def chip_labels(
    chips: Any, spec: LabelSpec | None, crs: str, labeller: VectorLabels | None = None
) -> tuple[np.ndarray, list[str], dict[str, Any] | None]:
    """Label id of every chip, the class names and the label source recorded.

    Args:
        chips: GeoDataFrame of the chips in ``crs``; with a label raster, its ``label``
            column holds the majority class read per chip (:func:`raster_majority`).
        spec: the labels, or ``None`` (every chip unlabelled, -1).
        crs: the chips' CRS (vector labels are moved into it).
        labeller: the vector labels the chip reads labelled the chips with (their
            ``label`` column; :class:`~rsmm.stacks.chips.ChipReader`); ``None``: vector
            labels are loaded and applied here.

    Returns:
        int64 ids (-1: unlabelled), class names in id order, and the manifest's
        ``label_source`` (``None`` without labels).

    Raises:
        DatasetFileError: for bad labels, or a raster class without a given name.
    """
    if spec is None:
        return np.full(len(chips), -1, dtype=np.int64), [], None
    if not spec.is_raster:
        labeller, entries = read_labels(chips, spec, crs, labeller)
        if entries is None:
            ids = chips["label"].to_numpy(np.int64)
        else:
            ids = np.array([e["label"] for e in entries], dtype=np.int64)
        source = {"path": spec.path, "column": spec.column, "layer": spec.layer}
        return ids, labeller.classes, source
    found = chips["label"].to_numpy()
    top = int(found.max()) if (found >= 0).any() else -1
    classes = list(spec.classes) if spec.classes else [f"class_{v}" for v in range(top + 1)]
    if top >= len(classes):
        raise DatasetFileError(
            f"label raster {spec.path} holds class {top} but only {len(classes)} "
            "class names were given"
        )
    return found.astype(np.int64), classes, {"path": spec.path, "raster": True}


def check_chip_labels(ids: np.ndarray, classes: Sequence[str], spec: LabelSpec) -> list[str]:
    """Refuse labels that label no chip; warn when the chips hold a single class.

    A single class is not refused: the manifest still serves pre-training (which
    needs no label), and an area may hold one class on purpose; but fine-tuning a
    classifier needs at least two classes, which the warning says.

    Args:
        ids: the chips' label ids (-1: unlabelled).
        classes: the class names in id order.
        spec: the labels (named in the messages).

    Returns:
        The warnings (``[]`` or one).

    Raises:
        DatasetFileError: if no chip has a label, naming the file.
    """
    ids = np.asarray(ids)
    found = sorted(set(ids[ids >= 0].tolist()))
    what = "label raster" if spec.is_raster else "labels file"
    if not found:
        hint = (
            "its values are nodata or below min_cover over every chip"
            if spec.is_raster
            else "its features lie outside the chips or cover less than min_cover of each"
        )
        raise DatasetFileError(f"{what} {spec.path} labels none of the {len(ids)} chips ({hint})")
    if len(found) > 1:
        return []
    name = classes[found[0]] if found[0] < len(classes) else str(found[0])
    given = f" of the {len(classes)} classes given" if spec.classes else ""
    return [
        f"{what} {spec.path} gives a single class{given} ({name}, "
        f"{int((ids >= 0).sum())} of {len(ids)} chips): fine-tuning a classifier needs "
        "at least 2 classes"
    ]


def chip_multilabels(
    chips: Any,
    spec: LabelSpec,
    crs: str,
    reference_files: Sequence[Sequence[str]] = (),
    labeller: VectorLabels | None = None,
) -> tuple[list[list[int]], np.ndarray, list[str], dict[str, Any]]:
    """Class ids of every chip for multi-label ``spec`` (see the module docstring).

    Args:
        chips: GeoDataFrame of the chips in ``crs``; with a label raster, its ``labels``
            column holds the classes read per chip (:func:`raster_labels`) and its
            ``label`` column the largest one.
        spec: multi-label labels (``spec.multilabel``).
        crs: the chips' CRS (vector labels are moved into it).
        reference_files: per chip, the reference modality's files read for it (for
            per-patch label files).
        labeller: the vector labels the chip reads labelled the chips with (their
            ``labels`` and ``label`` columns); ``None``: loaded and applied here.

    Returns:
        Sorted class ids per chip, the single label per chip (the largest class, or
        the lowest id for label files; -1: none), the class names in id order and the
        manifest's ``label_source``.

    Raises:
        DatasetFileError: for bad labels (named).
    """
    source: dict[str, Any] = {"path": spec.path, "multilabel": True}
    if spec.per_patch:
        lists, classes, info = patch_labels(
            reference_files, spec.path, spec.nomenclature, spec.classes
        )
        primary = np.array([v[0] if v else -1 for v in lists], dtype=np.int64)
        return lists, primary, classes, {**source, **info}
    source["min_class_fraction"] = spec.min_class_fraction
    if spec.is_raster:
        lists = [list(v) for v in chips["labels"]]
        top = max((max(v) for v in lists if v), default=-1)
        classes = list(spec.classes) if spec.classes else [f"class_{v}" for v in range(top + 1)]
        if top >= len(classes):
            raise DatasetFileError(
                f"label raster {spec.path} holds class {top} but only {len(classes)} "
                "class names were given"
            )
        return lists, chips["label"].to_numpy(np.int64), classes, {**source, "raster": True}
    labeller, entries = read_labels(chips, spec, crs, labeller)
    if entries is None:
        lists, primary = [list(v) for v in chips["labels"]], chips["label"].to_numpy(np.int64)
    else:
        lists = [e["labels"] for e in entries]
        primary = np.array([e["label"] for e in entries], dtype=np.int64)
    source.update(column=spec.column, layer=spec.layer)
    return lists, primary, labeller.classes, source


def check_chip_multilabels(
    lists: Sequence[Sequence[int]], classes: Sequence[str], spec: LabelSpec
) -> list[str]:
    """Refuse multi-labels that label no chip; warn when the chips hold one class only.

    Returns:
        The warnings (``[]`` or one).

    Raises:
        DatasetFileError: if no chip has a class, naming the labels and why.
    """
    found = sorted({c for v in lists for c in v})
    if not found:
        if spec.per_patch:
            why = "the label files list no class"
            if spec.nomenclature == "19":
                why += " of the 19-class nomenclature"
        else:
            what = "label raster" if spec.is_raster else "labels file"
            why = (
                f"the {what} is empty, or no class covers --min-class-fraction "
                f"{spec.min_class_fraction:g} of any chip"
            )
        raise DatasetFileError(f"labels {spec.path} label none of the {len(lists)} chips ({why})")
    if len(found) > 1:
        return []
    labelled = sum(bool(v) for v in lists)
    return [
        f"labels {spec.path} give a single class ({classes[found[0]]}, {labelled} of "
        f"{len(lists)} chips): a multi-label classifier needs at least 2 classes"
    ]


def label_chips(
    chips: Any,
    spec: LabelSpec | None,
    crs: str,
    reference: str,
    check: bool = True,
    labeller: VectorLabels | None = None,
) -> tuple[list[str], dict[str, Any] | None, list[str]]:
    """Add the label columns to the chips: ``label`` and ``class_name``, and with
    multi-label ``spec`` the ``labels`` column (a JSON list of class ids per chip).

    Args:
        chips: GeoDataFrame of the chips in ``crs`` (changed in place).
        spec: the labels, or ``None`` (every chip unlabelled).
        crs: the chips' CRS.
        reference: the reference modality (its ``files_<reference>`` column locates
            per-patch label files).
        check: run :func:`label_warnings` (``False`` for chips labelled in parts, e.g.
            one UTM zone at a time, which are checked together afterwards).
        labeller: with vector labels, those the chip reads labelled the chips with
            (:class:`~rsmm.stacks.chips.ChipReader`, in the worker processes); ``None``:
            loaded and applied here.

    Returns:
        The class names in id order, the manifest's ``label_source`` and the warnings.

    Raises:
        DatasetFileError: for bad labels or labels that label no chip.
    """
    import json

    if spec is not None and spec.multilabel:
        files = [json.loads(v) for v in chips[f"files_{reference}"]]
        lists, primary, classes, source = chip_multilabels(chips, spec, crs, files, labeller)
        chips["label"] = primary
        chips["labels"] = [json.dumps(sorted(int(c) for c in v)) for v in lists]
    else:
        chips["label"], classes, source = chip_labels(chips, spec, crs, labeller)
    chips["class_name"] = [classes[v] if v >= 0 else None for v in chips["label"]]
    return classes, source, label_warnings(chips, classes, spec) if check else []


def label_warnings(chips: Any, classes: Sequence[str], spec: LabelSpec | None) -> list[str]:
    """The checks of :func:`label_chips` on labelled ``chips``: labels that label no chip
    are an error, a single class a warning (returned)."""
    import json

    if spec is None:
        return []
    if spec.multilabel:
        lists = [json.loads(v) for v in chips["labels"]]
        return check_chip_multilabels(lists, classes, spec)
    return check_chip_labels(chips["label"].to_numpy(), classes, spec)


def multi_hot(labels: Sequence[str], num_classes: int) -> np.ndarray:
    """``(N, num_classes)`` float32 multi-hot rows of a manifest's ``labels`` column
    (JSON lists of class ids); a chip without a class is a row of zeros."""
    import json

    out = np.zeros((len(labels), num_classes), dtype=np.float32)
    for i, v in enumerate(labels):
        out[i, json.loads(v)] = 1.0
    return out
