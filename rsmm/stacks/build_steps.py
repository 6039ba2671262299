"""The steps both manifest builds share (:mod:`rsmm.stacks.build`, one CRS, and
:mod:`rsmm.stacks.zone_build`, every chip in its own UTM zone).

:func:`find_footprints` indexes the modalities' files in one CRS; :func:`split_chips`
adds the spatial blocks and splits with the guard band and measures what they kept;
:func:`add_bounds`, :func:`manifest_columns` and :func:`manifest_meta` give the
manifest's columns and metadata.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.crs import CRS

import rsmm
from rsmm.errors import ConfigError
from rsmm.stacks.acquisitions import footprint_index
from rsmm.stacks.chips import ChipReads
from rsmm.stacks.labels import multi_hot
from rsmm.stacks.layout import ChipGrid, format_bounds, resampled_bands
from rsmm.stacks.manifest import FORMAT_VERSION
from rsmm.stacks.sources import ModalitySource
from rsmm.stacks.spec import StackSpec
from rsmm.stacks.splits import (
    GUARD_WARN_FRACTION,
    GUARDS,
    SPLITS,
    SplitReport,
    block_ids,
    count_blocks,
    spatial_split,
    split_report,
    suggest_block_size,
)
from rsmm.stacks.stats import train_statistics

__all__ = [
    "GUARD_REASON",
    "Footprints",
    "add_bounds",
    "find_footprints",
    "manifest_columns",
    "manifest_meta",
    "split_chips",
]


@dataclass
class Footprints:
    """Where the modalities' files lie, in the stack's CRS.

    Attributes:
        index: ``{modality: footprint index}``
            (:func:`~rsmm.stacks.acquisitions.footprint_index`).
        polygons: ``{modality: union of its files' footprints}``.
        common: the intersection of the required modalities' footprints.
        required: the required modalities, in spec order.
        optional: the optional ones.
    """

    index: dict[str, Any]
    polygons: dict[str, Any]
    common: Any
    required: list[str]
    optional: list[str]


def find_footprints(spec: StackSpec, sources: Mapping[str, ModalitySource], crs: CRS) -> Footprints:
    """Index every modality's files in ``crs`` and intersect the required footprints.

    Raises:
        ConfigError: if two required modalities do not overlap, or an optional one does
            not overlap the required ones (naming the folders and the footprints).
    """
    import shapely

    crs_name = crs.to_string()
    index = {k: footprint_index(s, crs) for k, s in sources.items()}
    foot = {k: shapely.union_all(ix.geometry.values) for k, ix in index.items()}
    required = [k for k in sources if spec.modalities[k].required]
    optional = [k for k in sources if k not in required]
    for i, a in enumerate(required):
        for b in required[i + 1 :]:
            if not _overlaps(foot[a], foot[b]):
                raise ConfigError(
                    f"the {a} files ({spec.modalities[a].root}) and the {b} files "
                    f"({spec.modalities[b].root}) do not overlap (footprints in {crs_name}: "
                    f"{format_bounds(foot[a].bounds)} and {format_bounds(foot[b].bounds)})"
                )
    common = shapely.intersection_all([foot[k] for k in required])
    for k in optional:
        if not _overlaps(foot[k], common):
            raise ConfigError(
                f"the optional {k} files ({spec.modalities[k].root}) do not overlap the "
                f"required modalities ({', '.join(required)}) (footprints in {crs_name}: "
                f"{format_bounds(foot[k].bounds)} and {format_bounds(common.bounds)})"
            )
    return Footprints(index, foot, common, required, optional)


def _overlaps(a: Any, b: Any) -> bool:
    """Whether two footprints share some area (not only an edge)."""
    return bool(a.intersects(b)) and a.intersection(b).area > 0


def add_bounds(chips: Any, geoms: Any) -> Any:
    """``chips`` with ``xmin``, ``ymin``, ``xmax``, ``ymax`` of ``geoms`` (in the chip's CRS)."""
    import shapely

    b = shapely.bounds(np.asarray(geoms))
    for i, c in enumerate(("xmin", "ymin", "xmax", "ymax")):
        chips[c] = b[:, i]
    return chips


def split_chips(
    chips: Any,
    reads: ChipReads,
    spec: StackSpec,
    grid: ChipGrid,
    origin: tuple[float, float],
    classes: Sequence[str] = (),
    geoms: Any = None,
    tolerance: float | None = None,
) -> Any:
    """Add the ``block`` and ``split`` columns; drop the chips in the guard band.

    Blocks and the guard band are computed on ``geoms`` (default: the chips'
    geometries; per-zone chips pass them in one equal-area CRS) with ``origin`` the
    block grid's corner and ``tolerance`` (default a millionth of the chip size) the
    distance under which chips count as touching.

    The dropped chips are counted in ``reads.dropped`` and their band sums removed
    from ``reads.sums``, which stays aligned with the returned chips. What the split
    kept is measured in ``reads.split`` (:func:`~rsmm.stacks.splits.split_report`),
    with a suggested block size when a split lost a class or the guard band took more
    than a third of the chips, and the warnings in ``reads.warnings``.

    Raises:
        ConfigError: if the chips left give fewer blocks than splits, saying how many
            chips each filter dropped and which block size would do.
    """
    labels = chips["label"].to_numpy() if "label" in chips else None
    if "labels" in chips:  # multi-label: a split lacks the classes no chip of it holds
        labels = multi_hot(chips["labels"], len(classes)) > 0
    geoms = chips.geometry.values if geoms is None else np.asarray(geoms)
    tol = 1e-6 * grid.chip_m if tolerance is None else tolerance
    try:
        chips["block"], chips["split"], drop = spatial_split(
            geoms, origin, grid.block_m, spec.split, spec.seed, tol, spec.guard
        )
    except ConfigError as err:
        raise ConfigError(_too_few_blocks(err, geoms, reads, spec, grid, origin)) from None
    report = split_report(
        chips["split"].to_numpy(), drop, labels, spec.split, grid.block_m, spec.guard
    )
    reads.split = _describe_split(report, spec, grid, origin, geoms, labels, classes, reads, tol)
    if drop.any():
        reads.dropped[GUARD_REASON] += int(drop.sum())
        chips = chips[~drop].reset_index(drop=True)
        reads.sums = [s for s, d in zip(reads.sums, drop) if not d]
    return chips


#: The ``dropped`` reason of the guard band.
GUARD_REASON = "in the guard band between splits"


def _drop_summary(reads: ChipReads, kept: int) -> str:
    """``"1530 of 1600 chips dropped: 1490 more than 10% nodata in s1, 40 ..."``."""
    total = kept + sum(reads.dropped.values())
    if not reads.dropped:
        return f"{total} chips, none dropped"
    parts = ", ".join(f"{n} {r}" for r, n in reads.dropped.most_common())
    return f"{total - kept} of {total} chips dropped: {parts}"


def _metres(v: float) -> str:
    return f"{v:.6g}m"


def _too_few_blocks(
    err: ConfigError,
    geoms: Any,
    reads: ChipReads,
    spec: StackSpec,
    grid: ChipGrid,
    origin: tuple[float, float],
) -> str:
    """The message for chips that give fewer blocks than splits: what dropped how many
    chips, and the largest smaller block size that gives enough blocks."""
    import shapely

    centres = shapely.centroid(geoms)
    xy = np.column_stack([shapely.get_x(centres), shapely.get_y(centres)])
    n_blocks, wanted = count_blocks(block_ids(xy, origin, grid.block_m), spec.split)
    if n_blocks >= wanted:  # not the block count: another configuration error
        return str(err)
    step = grid.stride_m if grid.stride_m < grid.chip_m else grid.chip_m
    sizes = [k * step for k in range(round(grid.block_m / step) - 1, 0, -1)]
    fit = next(
        (s for s in sizes if count_blocks(block_ids(xy, origin, s), spec.split)[0] >= wanted),
        None,
    )
    advice = (
        f"lower --block-size to {_metres(fit)} or less"
        if fit is not None
        else "too few chips for a spatial split at any block size"
    )
    return (
        f"{_drop_summary(reads, len(geoms))}; the {len(geoms)} left give only {n_blocks} "
        f"spatial block(s) of {_metres(grid.block_m)} for {wanted} splits; {advice}"
        + ("" if not reads.dropped else " (or relax the filters that dropped them)")
    )


def _describe_split(
    report: SplitReport,
    spec: StackSpec,
    grid: ChipGrid,
    origin: tuple[float, float],
    geoms: Any,
    labels: np.ndarray | None,
    classes: Sequence[str],
    reads: ChipReads,
    tol: float,
) -> dict[str, Any]:
    """The manifest's ``split_report`` entry; warnings go to ``reads.warnings``."""
    out: dict[str, Any] = {
        "guard": report.guard,
        "block_size_m": report.block_m,
        "chips": report.chips,
        "guard_dropped": report.guard_dropped,
        "guard_fraction": round(report.guard_fraction, 4),
        "per_split": report.per_split,
        "missing_classes": {
            s: [classes[i] if i < len(classes) else str(i) for i in ids]
            for s, ids in report.missing_classes.items()
        },
        "suggested_block_size_m": None,
    }
    if report.ok:
        return out
    bigger = [grid.block_m * k for k in (2, 3, 4, 6, 8)]
    better = suggest_block_size(
        geoms, origin, bigger, spec.split, labels, spec.seed, tol, spec.guard
    )
    other = next(g for g in GUARDS if g != spec.guard)
    _, s2, d2 = spatial_split(geoms, origin, grid.block_m, spec.split, spec.seed, tol, other)
    alt = split_report(s2, d2, labels, spec.split, grid.block_m, other)
    hints = []
    if better is not None:
        out["suggested_block_size_m"] = better.block_m
        hints.append(
            f"--block-size {_metres(better.block_m)} keeps {better.chips - better.guard_dropped} "
            f"chips with every class in every split"
        )
    if report.chips - alt.guard_dropped > report.chips - report.guard_dropped:
        hints.append(f"--guard {other} keeps {alt.chips - alt.guard_dropped}")
    kept = report.chips - report.guard_dropped
    found = []
    if report.guard_fraction > GUARD_WARN_FRACTION:
        found.append(
            f"the guard band between splits dropped {report.guard_dropped} of {report.chips} "
            f"chips ({report.guard_fraction:.0%}; {kept} kept) with blocks of "
            f"{_metres(grid.block_m)}"
        )
    for s, names in out["missing_classes"].items():
        found.append(
            f"split {s} ({report.per_split[s]} chips) has no chip of class {', '.join(names)}"
        )
    hint = "; ".join(hints) if hints else "try a larger --block-size or another --seed"
    found[-1] += f" ({hint})"
    reads.warnings.extend(found)
    return out


def manifest_columns(chips: Any, keys: list[str]) -> list[str]:
    """The manifest's column order: ids, split and label first, the geometry last."""
    columns = ["chip_id", "split", "block", "label", "class_name", "modalities"]
    columns += [c for c in ("labels",) if c in chips.columns]  # multi-label stacks
    columns += ["crs", "xmin", "ymin", "xmax", "ymax"]
    columns += [c for c in chips.columns if c.startswith(("nodata_", "date_"))]
    columns += [c for c in ("cloud_fraction",) if c in chips.columns]
    return columns + [f"files_{k}" for k in keys] + ["geometry"]


def manifest_meta(
    spec: StackSpec,
    sources: Mapping[str, ModalitySource],
    crs: CRS,
    crs_note: str,
    grid: ChipGrid,
    origin: tuple[float, float],
    feet: Footprints,
    chips: Any,
    reads: ChipReads,
    classes: list[str] | None = None,
    label_source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest's metadata: how it was built, what it holds, per-band statistics.

    Args:
        spec: the stack description.
        sources: the checked files of every modality.
        crs: the stack's CRS; ``crs_note`` says where it comes from.
        grid: chip sizes and the reference modality; ``origin`` its first chip's corner.
        feet: the footprints (which modalities are required).
        chips: the final chips (with ``split``), in the order of ``reads.sums``.
        reads: the band sums and drop counts of the kept chips.
        classes: the class names in id order (``[]``: unlabelled).
        label_source: where the labels come from (:func:`~rsmm.stacks.labels.label_chips`).
    """
    train = np.flatnonzero(chips["split"].to_numpy() == "train")
    bands = {k: s.bands for k, s in sources.items()}
    files = {k: chips[f"files_{k}"].tolist() for k in sources}
    stats, stats_chips = train_statistics(reads.sums, train, bands, files)
    return {
        "format_version": FORMAT_VERSION,
        "rsmm_version": rsmm.__version__,
        "created": datetime.now().isoformat(timespec="seconds"),
        "crs": crs.to_string(),
        "crs_source": crs_note,
        "reference": grid.reference,
        "chip_size_m": grid.chip_m,
        "stride_m": grid.stride_m,
        "block_size_m": grid.block_m,
        "grid_origin": [float(origin[0]), float(origin[1])],
        "split_fractions": list(spec.split),
        "guard": spec.guard,
        "seed": spec.seed,
        "max_days": spec.max_days,
        "max_nodata": spec.max_nodata,
        "max_cloud": spec.max_cloud,
        "cloud_layer": None
        if spec.cloud is None
        else {"root": spec.cloud.root, "kind": spec.cloud.kind},
        "modalities": {
            k: {
                "root": str(Path(s.spec.root).resolve()),
                "glob": s.spec.glob,
                "sensor": s.spec.sensor,
                "bands": list(s.bands),
                "band_indexes": None if s.band_indexes is None else list(s.band_indexes),
                "separate_files": s.separate_files,
                "required": k in feet.required,
                "units": s.spec.units,
                "offset": s.spec.offset,
                "gsd": s.gsd,
                "chip_pixels": grid.pixels[k],
                "nodata": s.spec.nodata,
                "resampling": s.spec.resampling,
                "resampled_bands": resampled_bands(s, grid.chip_m),
                "files": len(s.items),
                **s.product_meta(),
            }
            for k, s in sources.items()
        },
        "classes": list(classes or []),
        "multilabel": "labels" in chips.columns,
        "label_source": label_source,
        "stats": stats,
        "stats_source": f"{len(train)} train chips of this manifest" if stats else None,
        "stats_chips": stats_chips,
        "dropped": dict(reads.dropped),
        "split_report": reads.split,
        "warnings": list(reads.warnings),
        "ignored": {
            k: [{"path": p, "reason": r} for p, r in s.ignored]
            for k, s in sources.items()
            if s.ignored
        },
        "splits": {s: int((chips["split"] == s).sum()) for s in SPLITS},
    }
