"""Chip labels from a vector file, one chip at a time (the rules: :mod:`rsmm.stacks.labels`).

:func:`load_vector_labels` reads the file into the chips' CRS. :class:`VectorLabels`
holds it with its class ids and a spatial index and labels one chip polygon
(:meth:`VectorLabels.chip_entries`), so that the chip reads label the chips they keep,
in the worker processes of ``rsmm manifest build --workers N``
(:mod:`rsmm.stacks.parallel`), instead of the parent labelling every chip after the
reads. A chip's label depends on that chip alone and its sums run over the label
features in file order, so any number of workers gives the same labels, bit for bit.

:func:`class_fractions` and :func:`vector_chip_labels` label many chips with the same
per-chip functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rsmm.errors import ConfigError, DatasetFileError
from rsmm.stacks.label_files import class_names
from rsmm.stacks.spec import LabelSpec

__all__ = [
    "VectorLabels",
    "class_fractions",
    "is_points",
    "load_vector_labels",
    "present_classes",
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


def is_points(labels) -> bool:
    """Whether vector labels are points (else polygons)."""
    return set(labels.geometry.geom_type) <= {"Point", "MultiPoint"}


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


class VectorLabels:
    """Vector labels in the chips' CRS, labelling one chip polygon at a time.

    Args:
        labels: a GeoDataFrame from :func:`load_vector_labels` (points or polygons).
        classes: the class names in id order; every ``labels["class"]`` is one of them.

    The spatial index is built on first use, in the process that labels (it is not
    pickled).
    """

    def __init__(self, labels: Any, classes: Sequence[str]) -> None:
        self.classes = list(classes)
        self.geoms = np.asarray(labels.geometry.values)
        index = {c: i for i, c in enumerate(self.classes)}
        self.ids = np.array([index[c] for c in labels["class"]], dtype=np.int64)
        self.points = is_points(labels)
        self._tree: Any = None

    @classmethod
    def load(cls, spec: LabelSpec, crs: str) -> VectorLabels:
        """The labels file of ``spec`` in ``crs`` with its classes
        (:func:`~rsmm.stacks.label_files.class_names`).

        Raises:
            DatasetFileError: for bad labels (:func:`load_vector_labels`), a file
                without a labelled feature (single-label; multi-label chips are then
                refused by :func:`~rsmm.stacks.labels.check_chip_multilabels`), or
                points for multi-label chips.
        """
        labels = load_vector_labels(spec, crs)
        if len(labels) == 0 and not spec.multilabel:
            layer = f" (layer {spec.layer})" if spec.layer else ""
            raise DatasetFileError(
                f"labels file {spec.path}{layer} holds no feature with a {spec.column!r} "
                "value: every chip would be unlabelled"
            )
        if spec.multilabel and len(labels) and is_points(labels):
            raise DatasetFileError(
                f"labels file {spec.path}: multi-label chips need polygons (the area each "
                "class covers), not points"
            )
        return cls(labels, class_names(labels["class"].tolist(), spec.classes, spec.path))

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_tree": None}

    def hits(self, chip: Any) -> np.ndarray:
        """Indexes of the label features intersecting the polygon ``chip``, in file order."""
        import shapely

        if self._tree is None:
            self._tree = shapely.STRtree(self.geoms)
        return np.sort(self._tree.query(chip, predicate="intersects"))

    def fractions(self, chip: Any) -> np.ndarray:
        """``(classes,)`` fraction of the polygon ``chip`` each class's polygons cover."""
        import shapely

        out = np.zeros(len(self.classes))
        hits = self.hits(chip)
        if len(hits):
            np.add.at(
                out, self.ids[hits], shapely.area(shapely.intersection(chip, self.geoms[hits]))
            )
        return out / chip.area

    def votes(self, chip: Any) -> np.ndarray:
        """``(classes,)`` number of label points inside the polygon ``chip`` per class."""
        import shapely

        out = np.zeros(len(self.classes))
        hits = self.hits(chip)
        inside = hits[shapely.contains(chip, self.geoms[hits])]
        np.add.at(out, self.ids[inside], 1)
        return out

    def chip_label(self, chip: Any, min_cover: float = 0.5) -> int:
        """The class id of the polygon ``chip`` (-1: unlabelled): the majority of its
        points (ties: the lowest id), or the class covering the largest part of it if
        that part is at least ``min_cover``."""
        if not len(self.geoms):
            return -1
        if self.points:
            v = self.votes(chip)
            return int(v.argmax()) if v.sum() > 0 else -1
        f = self.fractions(chip)
        best = int(f.argmax())
        return best if f[best] >= min_cover else -1

    def chip_entries(self, chip: Any, spec: LabelSpec) -> dict[str, Any]:
        """The manifest entries of the polygon ``chip``, as
        :func:`~rsmm.stacks.labels.raster_labels` gives them for a label raster:
        ``{"label": id}``, and with multi-label ``spec`` ``{"label": the largest class,
        "labels": [every class covering at least min_class_fraction]}``."""
        if not spec.multilabel:
            return {"label": self.chip_label(chip, spec.min_cover)}
        lists, primary = present_classes(self.fractions(chip)[None], spec.min_class_fraction)
        return {"label": int(primary[0]), "labels": lists[0]}


def class_fractions(chips, labels, classes: Sequence[str]) -> np.ndarray:
    """``(chips, classes)`` fraction of each chip covered by each class's polygons.

    Args:
        chips: GeoSeries of chip polygons.
        labels: GeoDataFrame of polygons from :func:`load_vector_labels` (same CRS).
        classes: class names; ``labels["class"]`` values are looked up in it.
    """
    vl = VectorLabels(labels, classes)
    out = np.zeros((len(chips), len(classes)))
    for i, chip in enumerate(np.asarray(chips.values)):
        out[i] = vl.fractions(chip)
    return out


def vector_chip_labels(chips, labels, classes: Sequence[str], min_cover: float = 0.5) -> np.ndarray:
    """Label of each chip from point or polygon labels (see :mod:`rsmm.stacks.labels`).

    Args:
        chips: GeoSeries of chip polygons.
        labels: GeoDataFrame from :func:`load_vector_labels` (same CRS).
        classes: class names; ``labels["class"]`` values are looked up in it.
        min_cover: polygons: least covered fraction of the chip for a label.

    Returns:
        int64 array, -1 for unlabelled chips.
    """
    vl = VectorLabels(labels, classes)
    return np.array(
        [vl.chip_label(chip, min_cover) for chip in np.asarray(chips.values)], dtype=np.int64
    )
