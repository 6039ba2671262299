"""Build the chip index of a stack (what ``rsmm manifest build`` runs), in named steps.

1. :func:`open_sources`: every modality's files are listed and checked
   (:class:`~rsmm.stacks.sources.ModalitySource`; all corrupt files are named in one
   error, skipped files are listed in the summary), with the cloud layer and label
   raster.
2. With ``--crs auto`` (the default) :func:`~rsmm.stacks.zone_build.build_zones` runs
   the steps below per UTM zone, every chip in the zone of its centre
   (:mod:`rsmm.stacks.zones`). With one ``--crs``, :func:`~rsmm.stacks.crs.choose_crs`
   checks it is a projected CRS in metres that does not distort distances over the
   area; :func:`build_manifest` runs the steps below in it.
3. :func:`~rsmm.stacks.build_steps.find_footprints`: the files indexed by torchgeo in
   that CRS; the common footprint is the intersection of the *required* modalities'
   footprints.
4. :func:`~rsmm.stacks.layout.chip_grid` and :func:`~rsmm.stacks.layout.lay_chips`: chips
   of ``chip_size`` metres on a grid with ``stride`` metres, anchored on the pixel grid
   of the reference modality (Sentinel-2 if required, else the first required one),
   kept where the footprint covers them. Chip size and stride must be whole numbers
   of pixels at every modality's target GSD; chip edges are whole reference pixels.
5. :class:`~rsmm.stacks.chips.ChipReader`: per chip, one acquisition per modality
   (with ``max_days``, Sentinel-1/-2 acquisitions at most that many days apart), read
   at each modality's GSD; nodata and cloud filters; the ``modalities`` covering it;
   its label from a label raster or vector labels
   (:class:`~rsmm.stacks.vector_labels.VectorLabels`); its band sums.
   With ``workers`` > 1 the chips are read in that many processes
   (:mod:`rsmm.stacks.parallel`, contiguous runs of chips per process), in the same
   order.
6. :func:`~rsmm.stacks.labels.label_chips` (one class per chip, or multi-label; labels
   that label no chip are an error, a single class a warning),
   :func:`~rsmm.stacks.build_steps.split_chips` (spatial blocks with a guard band; a
   split without a class or a guard band dropping over a third of the chips is
   reported with a suggested block size; too few blocks is an error saying how many
   chips each filter dropped) and :func:`~rsmm.stacks.stats.train_statistics` (per
   band over the train chips; of an optional modality: the train chips it covers; a
   band without valid pixels or with a standard deviation of 0 is an error).
7. :func:`~rsmm.stacks.build_steps.manifest_columns` and
   :func:`~rsmm.stacks.build_steps.manifest_meta`: everything above recorded in the
   :class:`~rsmm.stacks.manifest.ChipManifest` (written by
   :func:`~rsmm.stacks.manifest.write_manifest`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rsmm.errors import CorruptFilesError
from rsmm.stacks.build_steps import (
    GUARD_REASON,
    Footprints,
    add_bounds,
    find_footprints,
    manifest_columns,
    manifest_meta,
    split_chips,
)
from rsmm.stacks.chips import ChipReader
from rsmm.stacks.crs import choose_crs, common_crs
from rsmm.stacks.files import check_geotiffs, list_files
from rsmm.stacks.labels import label_chips
from rsmm.stacks.layout import chip_grid, grid_anchor, lay_chips, whole_pixels
from rsmm.stacks.manifest import ChipManifest
from rsmm.stacks.products import cloud_layer_files
from rsmm.stacks.sources import ModalitySource
from rsmm.stacks.spec import StackSpec
from rsmm.stacks.zone_build import build_zones
from rsmm.stacks.zones import is_auto

# the steps moved to rsmm.stacks.build_steps and build_zones to rsmm.stacks.zone_build
# are re-exported, as are common_crs and whole_pixels, for callers of earlier versions
__all__ = [
    "GUARD_REASON",
    "Footprints",
    "add_bounds",
    "build_manifest",
    "build_zones",
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
        chips, spec.labels, crs.to_string(), grid.reference, labeller=reader.labeller
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
