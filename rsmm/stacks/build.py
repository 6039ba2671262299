"""Build the chip index of a stack (what ``rsmm manifest build`` runs), in named steps.

1. :func:`open_sources`: every modality's files are listed and checked
   (:class:`~rsmm.stacks.sources.ModalitySource`; all corrupt files are named in one
   error, skipped files are listed in the summary), with the cloud layer and label
   raster.
2. With ``--crs auto`` (the default) :func:`build_zones` runs the steps below per UTM
   zone, every chip in the zone of its centre (:mod:`rsmm.stacks.zones`). With one
   ``--crs``, :func:`~rsmm.stacks.crs.choose_crs` checks it is a projected CRS in
   metres that does not distort distances over the area.
3. :func:`find_footprints`: the files indexed by torchgeo in that CRS; the common
   footprint is the intersection of the *required* modalities' footprints.
4. :func:`~rsmm.stacks.layout.chip_grid` and :func:`~rsmm.stacks.layout.lay_chips`: chips
   of ``chip_size`` metres on a grid with ``stride`` metres, anchored on the pixel grid
   of the reference modality (Sentinel-2 if required, else the first required one),
   kept where the footprint covers them. Chip size and stride must be whole numbers
   of pixels at every modality's target GSD; chip edges are whole reference pixels.
5. :class:`~rsmm.stacks.chips.ChipReader`: per chip, one acquisition per modality
   (with ``max_days``, Sentinel-1/-2 acquisitions at most that many days apart), read
   at each modality's GSD; nodata and cloud filters; the ``modalities`` covering it.
   With ``workers`` > 1 the chips are read in that many processes
   (:mod:`rsmm.stacks.parallel`), in the same order.
6. :func:`~rsmm.stacks.labels.label_chips` (one class per chip, or multi-label; labels
   that label no chip are an error, a single class a warning), :func:`split_chips`
   (spatial blocks with a guard band; a split without a class or a guard band dropping
   over a third of the chips is reported with a suggested block size; too few blocks is
   an error saying how many chips each filter dropped) and :func:`~rsmm.stacks.stats.train_statistics` (per
   band over the train chips; of an optional modality: the train chips it covers; a
   band without valid pixels or with a standard deviation of 0 is an error).
7. :func:`manifest_columns` and :func:`manifest_meta`: everything above recorded in the
   :class:`~rsmm.stacks.manifest.ChipManifest` (written by
   :func:`~rsmm.stacks.manifest.write_manifest`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.crs import CRS

import rsmm
from rsmm.errors import ConfigError, CorruptFilesError
from rsmm.stacks.acquisitions import footprint_index
from rsmm.stacks.chips import ChipReader, ChipReads, no_chip_left
from rsmm.stacks.crs import choose_crs, common_crs
from rsmm.stacks.files import check_geotiffs, list_files
from rsmm.stacks.labels import label_chips, label_warnings, multi_hot
from rsmm.stacks.layout import (
    ChipGrid,
    ChipLayout,
    chip_grid,
    format_bounds,
    grid_anchor,
    grid_chips,
    lay_chips,
    resampled_bands,
    whole_pixels,
)
from rsmm.stacks.manifest import FORMAT_VERSION, ChipManifest
from rsmm.stacks.products import cloud_layer_files
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
from rsmm.stacks.zones import (
    BLOCK_CRS,
    GEOMETRY_CRS,
    dedupe,
    equal_area,
    grid_key,
    home_mask,
    is_auto,
    to_crs,
    utm_zone_of,
    zone_plan,
)

# common_crs and whole_pixels are imported from here by callers of earlier versions
__all__ = [
    "Footprints",
    "build_manifest",
    "common_crs",
    "find_footprints",
    "manifest_columns",
    "manifest_meta",
    "open_sources",
    "split_chips",
    "whole_pixels",
]


def build_manifest(
    spec: StackSpec, progress: Callable[[int, int], None] | None = None, workers: int = 1
) -> ChipManifest:
    """Build the chip index described by ``spec`` (the steps of the module docstring).

    Args:
        spec: the stack description.
        progress: optional ``callback(done, total)`` over candidate chips.
        workers: processes reading chips (:mod:`rsmm.stacks.parallel`); the manifest
            is the same, row for row, for any number.

    Returns:
        The :class:`~rsmm.stacks.manifest.ChipManifest` (not yet written); its
        ``extra["footprints"]`` holds ``{modality: polygon, "common": polygon}``.

    Raises:
        DatasetNotFoundError: a missing folder or a modality with no files.
        DatasetFileError: a corrupt GeoTIFF or bad labels file (named).
        ConfigError: folders that do not overlap, a chip larger than the overlap, a chip
            size that is no whole number of pixels, no chip left.
    """
    import geopandas as gpd

    sources, cloud_files = open_sources(spec)
    if is_auto(spec.crs):
        return build_zones(spec, sources, cloud_files, progress, workers)
    crs, crs_note = choose_crs(spec, sources)
    feet = find_footprints(spec, sources, crs)
    grid = chip_grid(spec, sources, feet.required)
    anchor = grid_anchor(sources[grid.reference], crs)
    layout = lay_chips(grid, feet.common, anchor, crs.to_string())
    reader = ChipReader(spec, sources, feet.index, crs, grid, feet.required, cloud_files)
    reads = reader.read_all(layout, progress, workers=workers)
    chips = gpd.GeoDataFrame(reads.rows, geometry="geometry", crs=crs.to_string())
    classes, label_source, label_warnings = label_chips(
        chips, spec.labels, crs.to_string(), grid.reference
    )
    reads.warnings += label_warnings
    chips = split_chips(chips, reads, spec, grid, layout.origin, classes)
    chips["crs"] = crs.to_string()
    chips = add_bounds(chips, chips.geometry.values)
    chips = chips[manifest_columns(chips, list(sources))]
    meta = manifest_meta(
        spec, sources, crs, crs_note, grid, layout.origin, feet, chips, reads, classes, label_source
    )
    meta.update(chip_crs=crs.to_string(), block_crs=crs.to_string(), zones=None)
    return ChipManifest(
        chips=chips, meta=meta, extra={"footprints": {**feet.polygons, "common": feet.common}}
    )


def build_zones(
    spec: StackSpec,
    sources: Mapping[str, ModalitySource],
    cloud_files: Sequence[str],
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
) -> ChipManifest:
    """The ``--crs auto`` build: every chip in the UTM zone of its centre.

    Chips are laid on every reference file's own pixel grid and deduplicated
    (:mod:`rsmm.stacks.zones`), read per zone in the zone's CRS, labelled, and split on
    one equal-area block grid (:data:`~rsmm.stacks.zones.BLOCK_CRS`) with a guard band
    that works across zone borders. The manifest's geometry is in EPSG:4326; every
    chip's ``crs`` and ``xmin``/``ymin``/``xmax``/``ymax`` give its square in its zone.
    """
    import geopandas as gpd
    import pandas as pd
    import shapely

    required = [k for k in sources if spec.modalities[k].required]
    grid = chip_grid(spec, sources, required)
    ref = sources[grid.reference]
    first = ref.bands[0] if ref.separate_files else ""
    anchors = zone_plan([item.band_path(first) for item in ref.items])
    feet = {z: find_footprints(spec, sources, CRS.from_string(z)) for z in {a.crs for a in anchors}}
    cand_zone, cand_box, cand_rank, cand_grid = [], [], [], []
    for n, (item, a) in enumerate(zip(ref.items, anchors)):
        f = feet[a.crs]
        index = f.index[grid.reference]
        mine = index.geometry.values[(index["path"] == item.path).to_numpy()]
        if not len(mine):
            continue
        laid = grid_chips(grid, shapely.intersection(f.common, shapely.union_all(mine)), a.origin)
        keep, home = home_mask(laid.boxes, a, anchors)
        cand_zone += [a.crs] * int(keep.sum())
        cand_box += list(laid.boxes[keep])
        cand_rank += [(0 if h else 1) * len(anchors) + n for h in home[keep]]
        cand_grid += [grid_key(a, grid.stride_m, grid.gsd)] * int(keep.sum())
    if not cand_box:
        z = anchors[0].crs
        lay_chips(grid, feet[z].common, anchors[0].origin, z)  # the usual errors
        raise ConfigError(
            f"no chip of {grid.chip_m:g} m fits inside a {grid.reference} file within the "
            "overlap of the required modalities; use a smaller --chip-size"
        )
    zone_of, boxes = np.array(cand_zone, dtype=object), np.array(cand_box, dtype=object)
    lonlat = np.empty(len(boxes), dtype=object)
    for z in np.unique(zone_of):
        lonlat[zone_of == z] = to_crs(boxes[zone_of == z], z, GEOMETRY_CRS, grid.chip_m)
    kept = dedupe(lonlat, np.array(cand_rank), cand_grid)
    reads, parts, classes, label_source = ChipReads(), [], [], None
    lab = spec.labels
    by_zone = lab is not None and not lab.is_raster and not lab.per_patch
    zones = sorted({str(z) for z in zone_of[kept]}, key=_zone_order)
    total, done = int(kept.sum()), 0
    for z in zones:
        crs = CRS.from_string(z)
        sel = kept & (zone_of == z)
        zb = boxes[sel]
        order = np.lexsort((shapely.bounds(zb)[:, 0], -shapely.bounds(zb)[:, 3]))
        zb = zb[order]
        code = z.split(":")[-1]
        ids = tuple(f"{code}_{b.bounds[0]:.0f}_{b.bounds[3]:.0f}" for b in zb)
        layout = ChipLayout(np.zeros(len(zb), int), np.zeros(len(zb), int), zb, (0.0, 0.0), ids)
        f = feet[z]
        reader = ChipReader(spec, sources, f.index, crs, grid, f.required, cloud_files)
        step = None if progress is None else (lambda i, _n, d=done: progress(d + i, total))
        part = reader.read_all(layout, step, require=False, workers=workers)
        done += len(zb)
        reads.dropped.update(part.dropped)
        reads.sums += part.sums
        if not part.rows:
            parts.append([])
            continue
        chips_z = gpd.GeoDataFrame(part.rows, geometry="geometry", crs=z)
        if by_zone:  # vector labels: class areas are measured in the chip's own zone
            classes, label_source, _ = label_chips(
                chips_z, spec.labels, z, grid.reference, check=False
            )
        chips_z["crs"] = z
        chips_z = add_bounds(chips_z, chips_z.geometry.values)
        chips_z = chips_z.set_geometry(
            to_crs(chips_z.geometry.values, z, GEOMETRY_CRS, grid.chip_m), crs=GEOMETRY_CRS
        )
        parts.append(chips_z)
    frames = [p for p in parts if len(p)]
    if not frames:
        raise ConfigError(no_chip_left(reads.dropped, spec))
    chips = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=GEOMETRY_CRS)
    if by_zone:
        reads.warnings += label_warnings(chips, classes, spec.labels)
    else:  # no labels, a label raster (read per chip) or per-patch label files
        classes, label_source, warned = label_chips(
            chips, spec.labels, GEOMETRY_CRS, grid.reference
        )
        reads.warnings += warned
    # blocks on one equal-area grid; chips laid on different grids (across a border)
    # that come within a thousandth of the chip size count as touching
    tol = 1e-3 * grid.chip_m
    area = equal_area(chips.geometry.values)
    chips = split_chips(chips, reads, spec, grid, (0.0, 0.0), classes, area, tol)
    chips = chips[manifest_columns(chips, list(sources))]
    z0 = feet[zones[0]]
    polygons = {
        k: to_crs([g], zones[0], GEOMETRY_CRS, grid.chip_m)[0]
        for k, g in {**z0.polygons, "common": z0.common}.items()
    }
    note = "auto: each chip in the UTM zone of its centre (" + ", ".join(zones) + ")"
    meta = manifest_meta(
        spec, sources, CRS.from_string(GEOMETRY_CRS), note, grid, (0.0, 0.0), z0, chips, reads,
        classes, label_source,
    )  # fmt: skip
    meta.update(
        chip_crs="auto",
        block_crs=BLOCK_CRS,
        zones=zones,
        zone_chips={z: int((chips["crs"] == z).sum()) for z in zones},
    )
    return ChipManifest(chips=chips, meta=meta, extra={"footprints": polygons})


def _zone_order(crs: str) -> tuple[int, str]:
    """Zones west to east, then by name (``"EPSG:32617"`` before ``"EPSG:32618"``)."""
    code = utm_zone_of(CRS.from_string(crs))
    return (code % 100 if code is not None else 99), crs


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


def open_sources(spec: StackSpec) -> tuple[dict[str, ModalitySource], list[str]]:
    """Every modality's files, and the cloud layer's, listed and checked.

    Returns:
        ``{modality: source}`` and the cloud layer's files (``[]`` without one).

    Raises:
        DatasetNotFoundError: a missing folder or a modality with no files.
        FileNotFoundError: a label raster that does not exist.
        CorruptFilesError: naming every corrupt file of every modality, the cloud layer
            and the label raster at once.
    """
    sources, corrupt = {}, []
    for k, m in spec.modalities.items():
        try:
            sources[k] = ModalitySource(m)
        except CorruptFilesError as err:
            corrupt += err.messages
    cloud_files = []
    if spec.cloud is not None:
        c = spec.cloud
        cloud_files = cloud_layer_files(c.root, c.glob, c.kind) or list_files(
            c.root, c.glob, "cloud layer"
        )
    extra_files = list(cloud_files)
    if spec.labels is not None and spec.labels.is_raster:
        if not Path(spec.labels.path).is_file():
            raise FileNotFoundError(f"label raster not found: {spec.labels.path}")
        extra_files.append(spec.labels.path)
    try:
        check_geotiffs(extra_files)
    except CorruptFilesError as err:
        corrupt += err.messages
    if corrupt:
        raise CorruptFilesError(corrupt)
    return sources, cloud_files


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
