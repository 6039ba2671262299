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

from rsmm.errors import ConfigError, DatasetFileError
from rsmm.stacks.label_files import class_names, patch_labels
from rsmm.stacks.spec import LabelSpec

__all__ = [
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


def load_vector_labels(spec: LabelSpec, crs: str):
    """Read a labels vector file, check its class column and move it into ``crs``.

    Returns:
        A GeoDataFrame in ``crs`` with a string ``class`` column.

    Raises:
        FileNotFoundError: if the file does not exist.
        DatasetFileError: unreadable file, missing class column, no CRS or a CRS that
            cannot be transformed (the message names the file).
    """
    from pathlib import Path

    import geopandas as gpd
    from pyproj.exceptions import ProjError

    path = Path(spec.path)
    if not path.is_file():
        raise FileNotFoundError(f"labels file not found: {path}")
    if not spec.column:
        raise ConfigError(f"labels file {path}: give the class column (--label-column)")
    try:
        gdf = gpd.read_file(path, layer=spec.layer)
    except Exception as err:  # pyogrio raises its own DataSourceError / DataLayerError
        raise DatasetFileError(f"cannot read labels file {path}: {err}") from err
    if spec.column not in gdf.columns:
        cols = [c for c in gdf.columns if c != gdf.geometry.name]
        raise DatasetFileError(
            f"labels file {path} has no column {spec.column!r}; columns: {', '.join(cols)}"
        )
    if gdf.crs is None:
        raise DatasetFileError(f"labels file {path} has no CRS; set one (e.g. EPSG:4326)")
    try:
        out = gdf.to_crs(crs)
    except (ProjError, ValueError) as err:
        raise DatasetFileError(
            f"labels file {path}: its CRS ({gdf.crs.name}) cannot be transformed to {crs}: {err}"
        ) from err
    bounds = out.total_bounds
    if len(out) and not np.isfinite(bounds).all():
        raise DatasetFileError(
            f"labels file {path}: its CRS ({gdf.crs.name}) cannot be transformed to {crs}"
        )
    out = out[out.geometry.notna() & ~out.geometry.is_empty & out[spec.column].notna()]
    return gpd.GeoDataFrame(
        {"class": out[spec.column].astype(str).to_numpy()}, geometry=out.geometry.values, crs=crs
    )


def vector_chip_labels(chips, labels, classes: Sequence[str], min_cover: float = 0.5) -> np.ndarray:
    """Label of each chip from point or polygon labels (see the module docstring).

    Args:
        chips: GeoSeries of chip polygons.
        labels: GeoDataFrame from :func:`load_vector_labels` (same CRS).
        classes: class names; ``labels["class"]`` values are looked up in it.
        min_cover: polygons: least covered fraction of the chip for a label.

    Returns:
        int64 array, -1 for unlabelled chips.
    """
    out = np.full(len(chips), -1, dtype=np.int64)
    if len(labels) == 0 or len(chips) == 0:
        return out
    if is_points(labels):
        ids = np.array([classes.index(c) for c in labels["class"]], dtype=np.int64)
        geoms = labels.geometry.values
        chip_idx, lab_idx = labels.sindex.query(chips.values, predicate="intersects")
        votes = np.zeros((len(chips), len(classes)))
        inside = chips.values[chip_idx].contains(geoms[lab_idx])
        np.add.at(votes, (chip_idx[inside], ids[lab_idx[inside]]), 1)
        has = votes.sum(1) > 0
        out[has] = votes[has].argmax(1)
        return out
    frac = class_fractions(chips, labels, classes)
    best = frac.argmax(1)
    ok = frac[np.arange(len(chips)), best] >= min_cover
    out[ok] = best[ok]
    return out


def is_points(labels) -> bool:
    """Whether vector labels are points (else polygons)."""
    return set(labels.geometry.geom_type) <= {"Point", "MultiPoint"}


def class_fractions(chips, labels, classes: Sequence[str]) -> np.ndarray:
    """``(chips, classes)`` fraction of each chip covered by each class's polygons.

    Args:
        chips: GeoSeries of chip polygons.
        labels: GeoDataFrame of polygons from :func:`load_vector_labels` (same CRS).
        classes: class names; ``labels["class"]`` values are looked up in it.
    """
    out = np.zeros((len(chips), len(classes)))
    if len(labels) == 0 or len(chips) == 0:
        return out
    ids = np.array([classes.index(c) for c in labels["class"]], dtype=np.int64)
    chip_idx, lab_idx = labels.sindex.query(chips.values, predicate="intersects")
    inter = chips.values[chip_idx].intersection(labels.geometry.values[lab_idx]).area
    np.add.at(out, (chip_idx, ids[lab_idx]), inter)
    return out / chips.area.to_numpy()[:, None]


def present_classes(frac: np.ndarray, min_fraction: float) -> tuple[list[list[int]], np.ndarray]:
    """Multi-labels from ``(chips, classes)`` cover fractions.

    Returns:
        Per chip the sorted ids of the classes covering at least ``min_fraction`` of
        it, and its single label: the class covering the largest part, or -1 when no
        class covers ``min_fraction``.
    """
    keep = (frac >= min_fraction) & (frac > 0)
    lists = [np.flatnonzero(row).tolist() for row in keep]
    primary = np.where(keep.any(1), frac.argmax(1) if frac.size else -1, -1)
    return lists, primary.astype(np.int64)


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


def chip_labels(
    chips: Any, spec: LabelSpec | None, crs: str
) -> tuple[np.ndarray, list[str], dict[str, Any] | None]:
    """Label id of every chip, the class names and the label source recorded.

    Args:
        chips: GeoDataFrame of the chips in ``crs``; with a label raster, its ``label``
            column holds the majority class read per chip (:func:`raster_majority`).
        spec: the labels, or ``None`` (every chip unlabelled, -1).
        crs: the chips' CRS (vector labels are moved into it).

    Returns:
        int64 ids (-1: unlabelled), class names in id order, and the manifest's
        ``label_source`` (``None`` without labels).

    Raises:
        DatasetFileError: for bad labels, or a raster class without a given name.
    """
    if spec is None:
        return np.full(len(chips), -1, dtype=np.int64), [], None
    if not spec.is_raster:
        labels = load_vector_labels(spec, crs)
        if len(labels) == 0:
            layer = f" (layer {spec.layer})" if spec.layer else ""
            raise DatasetFileError(
                f"labels file {spec.path}{layer} holds no feature with a {spec.column!r} "
                "value: every chip would be unlabelled"
            )
        classes = class_names(labels["class"].tolist(), spec.classes, spec.path)
        ids = vector_chip_labels(chips.geometry, labels, classes, spec.min_cover)
        return ids, classes, {"path": spec.path, "column": spec.column, "layer": spec.layer}
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
    chips: Any, spec: LabelSpec, crs: str, reference_files: Sequence[Sequence[str]] = ()
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
    labels = load_vector_labels(spec, crs)
    if len(labels) and is_points(labels):
        raise DatasetFileError(
            f"labels file {spec.path}: multi-label chips need polygons (the area each class "
            "covers), not points"
        )
    classes = class_names(labels["class"].tolist(), spec.classes, spec.path)
    lists, primary = present_classes(
        class_fractions(chips.geometry, labels, classes), spec.min_class_fraction
    )
    return lists, primary, classes, {**source, "column": spec.column, "layer": spec.layer}


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
    chips: Any, spec: LabelSpec | None, crs: str, reference: str, check: bool = True
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

    Returns:
        The class names in id order, the manifest's ``label_source`` and the warnings.

    Raises:
        DatasetFileError: for bad labels or labels that label no chip.
    """
    import json

    if spec is not None and spec.multilabel:
        files = [json.loads(v) for v in chips[f"files_{reference}"]]
        lists, primary, classes, source = chip_multilabels(chips, spec, crs, files)
        chips["label"] = primary
        chips["labels"] = [json.dumps(sorted(int(c) for c in v)) for v in lists]
    else:
        chips["label"], classes, source = chip_labels(chips, spec, crs)
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
