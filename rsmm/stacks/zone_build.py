"""The ``--crs auto`` build (the default): every chip in the UTM zone of its centre.

:func:`build_zones` lays chips on every reference file's own pixel grid, keeps one
chip per piece of ground (:mod:`rsmm.stacks.zones`), reads them zone by zone in the
zone's CRS, labels them and splits them on one equal-area block grid, with the steps
:mod:`rsmm.stacks.build_steps` shares with the one-CRS build.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from rasterio.crs import CRS

from rsmm.errors import ConfigError
from rsmm.stacks.build_steps import (
    add_bounds,
    find_footprints,
    manifest_columns,
    manifest_meta,
    split_chips,
)
from rsmm.stacks.chips import ChipReader, ChipReads, no_chip_left
from rsmm.stacks.labels import label_chips, label_warnings
from rsmm.stacks.layout import ChipLayout, chip_grid, grid_chips, lay_chips
from rsmm.stacks.manifest import ChipManifest
from rsmm.stacks.sources import ModalitySource
from rsmm.stacks.spec import StackSpec
from rsmm.stacks.zones import (
    BLOCK_CRS,
    GEOMETRY_CRS,
    dedupe,
    equal_area,
    grid_key,
    home_mask,
    to_crs,
    utm_zone_of,
    zone_plan,
)

__all__ = ["build_zones"]


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
                chips_z, spec.labels, z, grid.reference, check=False, labeller=reader.labeller
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
