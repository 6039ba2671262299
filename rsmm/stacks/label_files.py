"""Multi-labels of chips from per-patch label files next to the imagery (BigEarthNet).

A dataset of patches (BigEarthNet: 1.2 x 1.2 km Sentinel-2 patches, one folder per
patch) labels each patch with a JSON file in the patch's folder,
``<patch>_labels_metadata.json`` = ``{"labels": [class names], ...}``. A chip takes the
labels of the patch(es) it is read from: the label file in the folder of each of the
reference modality's files the chip's pixels come from (the manifest's
``files_<reference>`` column); a chip read from several patches takes the union.

Class ids:

- labels that are all CORINE Land Cover level-3 names (BigEarthNet v1) get the ids of
  the 43 CORINE classes in their official order (stable across builds), or, with
  ``nomenclature="19"``, of BigEarthNet's 19-class nomenclature (Sumbul et al., IEEE
  TNNLS 2020; the mapping of :mod:`rsmm.data_manifests` ``bigearthnet.json``, the one
  :class:`rsmm.datasets.BigEarthNet` uses; CORINE classes outside it are dropped);
- labels that are all 19-class names keep those ids;
- other names: the ``classes`` given, else the sorted distinct names found.

A chip's ``label`` (single-label column) is its lowest class id: a patch label file
gives no area fractions.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rsmm.errors import DatasetFileError


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


def bigearthnet_nomenclatures() -> tuple[list[str], list[str], dict[str, str | None]]:
    """The 43 CORINE class names, the 19 class names and the 43 -> 19 mapping
    (``None``: a class the 19-class nomenclature drops), from ``bigearthnet.json``."""
    from rsmm.manifests import load_manifest

    man = load_manifest("bigearthnet")
    files = man.extra["files"]
    return list(files["classes_43"]), list(man.classes), dict(files["clc43_to_19"])


def find_label_file(data_file: str, pattern: str) -> Path | None:
    """The label file matching ``pattern`` in ``data_file``'s folder (``None``: none).

    Raises:
        DatasetFileError: if the folder holds several, naming them.
    """
    folder = Path(data_file).parent
    found = sorted(folder.glob(pattern))
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise DatasetFileError(
            f"{folder} holds {len(found)} label files matching {pattern!r} ({names}); "
            "keep one per patch folder"
        )
    return found[0] if found else None


def read_label_file(path: str | Path) -> list[str]:
    """The class names of a label file (its ``"labels"`` list).

    Raises:
        DatasetFileError: unreadable JSON, or no ``"labels"`` list of names (naming the file).
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DatasetFileError(f"cannot read label file {path}: {err}") from None
    labels = data.get("labels") if isinstance(data, dict) else None
    if not isinstance(labels, list) or not all(isinstance(v, str) for v in labels):
        raise DatasetFileError(f"label file {path} has no 'labels' list of class names")
    return labels


def label_classes(
    names: set[str], nomenclature: str | None, given: Sequence[str] | None, source: str
) -> tuple[list[str], dict[str, str | None]]:
    """The class names in id order and the map of stored names to them (see the
    module docstring).

    Raises:
        DatasetFileError: names outside the given classes or the nomenclature.
    """
    clc43, ben19, to_19 = bigearthnet_nomenclatures()
    if nomenclature == "19":
        if names <= set(ben19):
            return ben19, {n: n for n in names}
        outside = sorted(names - set(clc43))
        if outside:
            raise DatasetFileError(
                f"label files {source}: {outside} are not CORINE Land Cover classes; "
                "the 19-class nomenclature maps the 43 CORINE classes (drop --label-nomenclature)"
            )
        return ben19, {n: to_19[n] for n in names}
    if given is None:
        for known in (clc43, ben19):
            if names and names <= set(known):
                return known, {n: n for n in names}
    if nomenclature == "43" and not names <= set(clc43):
        raise DatasetFileError(
            f"label files {source}: {sorted(names - set(clc43))} are not CORINE Land Cover classes"
        )
    classes = class_names(sorted(names), given, f"files {source}")
    return classes, {n: n for n in names}


def patch_labels(
    reference_files: Sequence[Sequence[str]],
    pattern: str,
    nomenclature: str | None = None,
    given: Sequence[str] | None = None,
) -> tuple[list[list[int]], list[str], dict[str, Any]]:
    """Class ids of every chip from the label files next to its reference files.

    Args:
        reference_files: per chip, the reference modality's files read for it.
        pattern: the label files' name pattern (``*_labels_metadata.json``).
        nomenclature: ``"43"``, ``"19"`` or ``None`` (see the module docstring).
        given: class names in id order for labels of other names.

    Returns:
        Sorted class ids per chip, the class names in id order and the manifest's
        ``label_source``.

    Raises:
        DatasetFileError: no label file next to any chip's files, a bad label file.
    """
    chip_files: list[list[Path]] = []
    cache: dict[Path, Path | None] = {}
    for files in reference_files:
        found = []
        for f in files:
            folder = Path(f).parent
            if folder not in cache:
                cache[folder] = find_label_file(f, pattern)
            if cache[folder] is not None and cache[folder] not in found:
                found.append(cache[folder])
        chip_files.append(found)
    folders = sorted({str(p) for p in cache})
    if not any(chip_files):
        where = folders[0] if len(folders) == 1 else f"{len(folders)} folders such as {folders[0]}"
        raise DatasetFileError(
            f"no label file matching {pattern!r} next to the chips' files ({where}): "
            "every chip would be unlabelled"
        )
    stored = {p: read_label_file(p) for p in {p for fs in chip_files for p in fs}}
    source = f"{pattern!r} ({len(stored)} files)"
    names = {n for labels in stored.values() for n in labels}
    classes, to_class = label_classes(names, nomenclature, given, source)
    index = {c: i for i, c in enumerate(classes)}
    ids = []
    for fs in chip_files:
        mapped = {to_class[n] for p in fs for n in stored[p]} - {None}
        ids.append(sorted(index[c] for c in mapped))
    info = {
        "per_patch": pattern,
        "files": len(stored),
        "nomenclature": nomenclature,
        "unlabelled_chips": sum(not fs for fs in chip_files),
    }
    return ids, classes, info

