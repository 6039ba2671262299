"""Chip labels from a vector file (points or polygons with a class column) or a raster.

- **Points**: a chip takes the majority class of the points inside it (ties go to
  the lowest class id); a chip without points is unlabelled (-1).
- **Polygons**: a chip takes the class covering the largest part of it, if that part
  is at least ``min_cover`` of the chip; otherwise it is unlabelled.
- **Label raster**: the same majority rule over the raster's pixels (nearest
  resampling at the raster's own GSD, nodata ignored); pixel values are class ids.

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
from rsmm.stacks.spec import LabelSpec


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


def class_names(values: Sequence[str], given: Sequence[str] | None, source: str) -> list[str]:
    """Class names in id order: ``given``, or the sorted distinct ``values``.

    Raises:
        DatasetFileError: if a value is not among the given classes.
    """
    if given is None:
        return sorted(set(values))
    unknown = sorted(set(values) - set(given))
    if unknown:
        raise DatasetFileError(
            f"labels {source}: classes {unknown} are not in the given class list {list(given)}"
        )
    return list(given)


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
    ids = np.array([classes.index(c) for c in labels["class"]], dtype=np.int64)
    k = len(classes)
    out = np.full(len(chips), -1, dtype=np.int64)
    if len(labels) == 0 or len(chips) == 0:
        return out
    geoms = labels.geometry.values
    kinds = set(labels.geometry.geom_type)
    chip_idx, lab_idx = labels.sindex.query(chips.values, predicate="intersects")
    if kinds <= {"Point", "MultiPoint"}:
        votes = np.zeros((len(chips), k))
        inside = chips.values[chip_idx].contains(geoms[lab_idx])
        np.add.at(votes, (chip_idx[inside], ids[lab_idx[inside]]), 1)
        has = votes.sum(1) > 0
        out[has] = votes[has].argmax(1)
        return out
    area = np.zeros((len(chips), k))
    inter = chips.values[chip_idx].intersection(geoms[lab_idx]).area
    np.add.at(area, (chip_idx, ids[lab_idx]), inter)
    frac = area / chips.area.to_numpy()[:, None]
    best = frac.argmax(1)
    ok = frac[np.arange(len(chips)), best] >= min_cover
    out[ok] = best[ok]
    return out


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
