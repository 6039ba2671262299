"""Build the chip index of a stack (what ``rsmm manifest build`` runs).

1. Every modality's files are listed and checked (:class:`~rsmm.stacks.sources.ModalitySource`;
   all corrupt files are named in one error, skipped files are listed in the summary)
   and indexed by torchgeo in one common projected CRS in metres (:func:`choose_crs`):
   the spec's, else the CRS of the Sentinel-2 files, else of the first modality, else
   (geographic or distorting CRSs such as Web Mercator) the area's UTM zone.
2. The common footprint is the intersection of the *required* modalities' footprints;
   chips of ``chip_size`` metres are laid on a grid with ``stride`` metres, anchored on
   the pixel grid of the reference modality (Sentinel-2 if required, else the first
   required one), and kept where the footprint covers them. Chip size and stride must
   be whole numbers of pixels at every modality's target GSD (the block size, of
   reference pixels); chip edges are whole reference pixels.
3. For every chip, one acquisition per modality is chosen (the best covering one; with
   ``max_days``, Sentinel-1/-2 acquisitions at most that many days apart), the chip
   is read at each modality's GSD, and the chip is dropped if a required modality
   misses more than ``max_nodata`` of its pixels or the cloud fraction exceeds
   ``max_cloud`` (chips outside the cloud layer keep a NaN cloud fraction and are
   kept). An optional modality covers the chip when it misses at most ``max_nodata``;
   the ``modalities`` column lists the modalities covering each chip.
4. Labels, spatial block splits with a guard band, and per-band statistics of the
   train chips (of an optional modality: the train chips it covers) complete the
   :class:`~rsmm.stacks.manifest.ChipManifest`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from rsmm.errors import ConfigError, DatasetFileError
from rsmm.stacks.labels import class_names, load_vector_labels, raster_majority, vector_chip_labels
from rsmm.stacks.manifest import FORMAT_VERSION, ChipManifest
from rsmm.stacks.sources import (
    CorruptFilesError,
    ModalitySource,
    check_geotiffs,
    gsd_in_crs,
    list_files,
    make_raster_dataset,
    parse_date,
    read_window,
    union_bounds,
)
from rsmm.stacks.spec import SCL_CLOUD_VALUES, StackSpec
from rsmm.stacks.splits import SPLITS, assign_blocks, block_ids, guard_band

#: Largest scale error of the common CRS over the area (1 %): beyond it, chip metres
#: are not metres on the ground (Web Mercator at 45 degrees N is off by 41 %).
MAX_SCALE_ERROR = 0.01


def common_crs(spec: StackSpec, sources: dict[str, ModalitySource]):
    """The stack's CRS (see :func:`choose_crs`)."""
    return choose_crs(spec, sources)[0]


def choose_crs(spec: StackSpec, sources: dict[str, ModalitySource]) -> tuple[Any, str]:
    """The stack's common CRS and a note saying where it comes from.

    Chips are laid out in metres of this CRS, so it must be projected in metres and
    keep distances within :data:`MAX_SCALE_ERROR` over the area. A CRS given with
    ``--crs`` that does not is refused. Otherwise the CRS of the Sentinel-2 files is
    used, else the first modality's whose CRS fits, else the area's UTM zone (e.g. for
    Sentinel-1 exported in Web Mercator or files in EPSG:4326).

    Raises:
        ValueError: for an unknown CRS, or a given CRS that is geographic, not in
            metres, or distorts distances over the area.
    """
    from pyproj import CRS as ProjCRS
    from pyproj.exceptions import CRSError as ProjCRSError
    from rasterio.crs import CRS

    area = _lonlat_area(sources)
    if spec.crs is not None:
        try:  # pyproj first: rasterio lets GDAL print "ERROR 1: PROJ: ..." on stderr
            given = ProjCRS.from_user_input(spec.crs)
        except ProjCRSError as err:
            raise ConfigError(f"crs: {spec.crs!r} is not a known CRS ({err})") from err
        crs = CRS.from_wkt(given.to_wkt())
        problem = _crs_problem(crs, area)
        if problem is not None:
            raise ConfigError(
                f"crs: {spec.crs} {problem}, so chip metres would not be metres on the "
                "ground; give a local projected CRS in metres such as "
                f"the area's UTM zone {_utm_crs(area).to_string()}, or leave --crs out"
            )
        return crs, f"given with --crs ({spec.crs})"
    order = sorted(sources, key=lambda k: sources[k].spec.sensor != "s2")
    rejected = []
    for k in order:
        problem = _crs_problem(sources[k].crs, area)
        if problem is None:
            note = f"the {k} files' CRS"
            if rejected:
                note += " (" + "; ".join(rejected) + ")"
            return sources[k].crs, note
        rejected.append(f"the {k} files' {_crs_name(sources[k].crs)} {problem}")
    utm = _utm_crs(area)
    return utm, "the area's UTM zone (" + "; ".join(rejected) + ")"


def _crs_name(crs) -> str:
    return crs.to_string() if crs.to_epsg() is not None else (crs.to_dict().get("proj") or "?")


def _lonlat_area(sources: dict[str, ModalitySource]) -> tuple[float, float, float, float]:
    """``(west, south, east, north)`` in degrees of all the files of ``sources`` (read
    when the files were checked)."""
    return union_bounds([s.lonlat_bounds for s in sources.values()])


def _crs_problem(crs, area: tuple[float, float, float, float]) -> str | None:
    """Why ``crs`` cannot hold chips measured in metres over ``area``, or ``None``."""
    from pyproj import Proj

    if not crs.is_projected:
        kind = "geographic, in degrees" if crs.is_geographic else "not projected"
        return f"is not a projected CRS in metres (it is {kind})"
    if (crs.linear_units or "").lower() not in ("metre", "meter", "m"):
        return f"is not a projected CRS in metres (its unit is {crs.linear_units})"
    w, s, e, n = area
    lon = np.array([w, e, w, e, (w + e) / 2])
    lat = np.array([s, s, n, n, (s + n) / 2])
    try:
        f = Proj(crs.to_wkt()).get_factors(lon, lat)
        scale = np.concatenate([np.ravel(f.meridional_scale), np.ravel(f.parallel_scale)])
    except Exception:  # projections pyproj cannot differentiate are accepted
        return None
    err = float(np.nanmax(np.abs(scale - 1))) if np.isfinite(scale).any() else 0.0
    if err <= MAX_SCALE_ERROR:
        return None
    k = float(scale[np.nanargmax(np.abs(scale - 1))])
    return f"distorts distances by {err:.0%} over the area (scale factor {k:.3f})"


def _utm_crs(area: tuple[float, float, float, float]):
    """The WGS 84 UTM zone holding the centre of ``area`` (a rasterio CRS)."""
    from pyproj.aoi import AreaOfInterest
    from pyproj.database import query_utm_crs_info
    from rasterio.crs import CRS

    lon, lat = (area[0] + area[2]) / 2, (area[1] + area[3]) / 2
    info = query_utm_crs_info(
        datum_name="WGS 84",
        area_of_interest=AreaOfInterest(lon, lat, lon, lat),
    )
    if info:
        return CRS.from_epsg(int(info[0].code))
    zone = int(np.clip(np.floor((lon + 180) / 6) + 1, 1, 60))
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def _footprints(source: ModalitySource, crs) -> Any:
    """GeoDataFrame of the source's items (path, date, geometry) in ``crs`` (via torchgeo)."""
    import geopandas as gpd

    ds = make_raster_dataset(source, crs)
    first = source.bands[0] if source.separate_files else ""
    by_path = {item.band_path(first): item for item in source.items}
    items = [by_path[p] for p in ds.index["filepath"]]
    for p in sorted(set(by_path) - set(ds.index["filepath"])):
        source.ignored.append((p, "not indexed by torchgeo"))
    return gpd.GeoDataFrame(
        {"path": [i.path for i in items], "date": [i.date for i in items]},
        geometry=ds.index.geometry.values,
        crs=ds.index.crs,
    )


def _length_m(value: tuple[float, str], gsd: float) -> float:
    v, unit = value
    return v * gsd if unit == "px" else v


def whole_pixels(name: str, value: tuple[float, str], metres: float, gsds: dict[str, float]) -> int:
    """``metres`` in pixels of the first modality of ``gsds``, checked whole for every one.

    Args:
        name: the parameter, as the message names it (``"--stride"``).
        value: the length as given, ``(value, "m" | "px")``.
        metres: the length in metres.
        gsds: ``{modality: GSD in metres}``; the first one counts the pixels.

    Returns:
        The length in pixels of the first modality.

    Raises:
        ValueError: naming the parameter, the modality and the nearest lengths that are
            whole numbers of pixels of every modality in ``gsds``.
    """
    from fractions import Fraction
    from math import gcd, lcm

    for k, g in gsds.items():
        n = metres / g
        if abs(n - round(n)) <= 1e-6 and round(n) > 0:
            continue
        steps = [Fraction(v).limit_denominator(10_000) for v in gsds.values()]
        step = Fraction(lcm(*(f.numerator for f in steps)), gcd(*(f.denominator for f in steps)))
        lo = int(Fraction(metres).limit_denominator(10_000) // step) * step
        options = [f"{float(v):g}m" for v in (lo, lo + step) if v > 0]
        hint = " or ".join(options)
        if len(gsds) > 1:
            hint += f" (multiples of {float(step):g} m fit every modality)"
        raise ConfigError(
            f"{name} {value[0]:g}{value[1]} is not a whole number of {k} pixels "
            f"({g:g} m): use {hint}"
        )
    return round(metres / next(iter(gsds.values())))


def _acquisitions(index, chip) -> list[tuple[datetime | None, list[str], float]]:
    """``[(date, paths, covered fraction)]`` of the items of ``index`` over ``chip``."""
    import shapely

    hits = index.sindex.query(chip, predicate="intersects")
    groups: dict[Any, list[int]] = {}
    for h in hits:
        groups.setdefault(index["date"].iat[h], []).append(int(h))
    out = []
    for date, rows in groups.items():
        cover = shapely.union_all(index.geometry.values[rows]).intersection(chip).area / chip.area
        out.append((date, [index["path"].iat[r] for r in rows], float(cover)))
    out.sort(key=lambda a: (-round(a[2], 6), -(a[0].timestamp() if a[0] else 0)))
    return out


def _nearest(options: list[tuple], date: datetime, max_days: float) -> tuple | None:
    """The best covering acquisition of ``options`` at most ``max_days`` from ``date``."""
    near = [a for a in options if abs((a[0] - date).days) <= max_days]
    if not near:
        return None
    return min(near, key=lambda a: (-round(a[2], 6), abs((a[0] - date).days)))


def _choose(
    options: dict[str, list],
    timed: list[str],
    max_days: float | None,
    required: list[str] | None = None,
) -> dict[str, tuple] | None:
    """One acquisition per modality; ``None`` when no time-compatible choice exists.

    Args:
        options: ``{modality: acquisitions}`` from :func:`_acquisitions`, best first.
        timed: the modalities ``max_days`` applies to (the reference first).
        max_days: tolerance between timed acquisitions, or ``None``.
        required: modalities that must be chosen (default: all); an optional one
            without a (time-compatible) acquisition is left out of the result.
    """
    required = list(options) if required is None else required
    chosen = {k: options[k][0] for k in required if options[k]}
    if len(chosen) < len(required):
        return None
    timed_req = [k for k in timed if k in required]
    anchor = None
    if max_days is not None and len(timed_req) >= 2:
        ref, others = timed_req[0], timed_req[1:]
        for acq in options[ref]:
            picks = {ref: acq}
            for k in others:
                pick = _nearest(options[k], acq[0], max_days)
                if pick is None:
                    break
                picks[k] = pick
            else:
                chosen.update(picks)
                anchor = acq[0]
                break
        else:
            return None
    elif max_days is not None and timed_req:
        anchor = chosen[timed_req[0]][0]
    for k in options:
        if k in required or not options[k]:
            continue
        if anchor is not None and k in timed:
            pick = _nearest(options[k], anchor, max_days)  # type: ignore[arg-type]
            if pick is not None:
                chosen[k] = pick
        else:
            chosen[k] = options[k][0]
    return chosen


def _read_paths(source: ModalitySource, paths: list[str]) -> list[list[str]] | list[str]:
    if source.separate_files:
        return [[p.replace("{band}", b) for b in source.bands] for p in paths]
    return paths


class _CloudLayer:
    """The cloud layer's (checked) files: footprints in the stack CRS, dates, GSD there."""

    def __init__(self, spec, files: list[str], crs) -> None:
        import geopandas as gpd
        import rasterio
        import shapely
        from rasterio.warp import transform_bounds

        geoms = []
        for f in files:
            with rasterio.open(f) as src:
                geoms.append(shapely.box(*transform_bounds(src.crs, crs, *src.bounds)))
        # in metres of the stack CRS, also for a layer in degrees (EPSG:4326)
        self.res = gsd_in_crs(files[0], crs)
        self.kind = spec.kind
        self.index = gpd.GeoDataFrame(
            {"path": files, "date": [parse_date(Path(f).name) for f in files]},
            geometry=geoms,
            crs=crs,
        )

    def fraction(self, chip, chip_m: float, crs, date: datetime | None) -> float:
        acqs = _acquisitions(self.index, chip)
        if date is not None:
            acqs.sort(key=lambda a: abs((a[0] - date).days) if a[0] else 1e9)
        if not acqs:
            return float("nan")
        n = max(1, round(chip_m / self.res))
        v = read_window(acqs[0][1], chip.bounds, n, crs, resampling="nearest")[0]
        valid = np.isfinite(v)
        if self.kind == "scl":
            valid &= v != 0
            cloudy = np.isin(v, SCL_CLOUD_VALUES)
        elif self.kind == "qa60":
            cloudy = (np.nan_to_num(v).astype(np.int64) & (1 << 10 | 1 << 11)) != 0
        else:
            cloudy = np.nan_to_num(v) != 0
        return float((cloudy & valid).sum() / valid.sum()) if valid.any() else float("nan")


def build_manifest(
    spec: StackSpec, progress: Callable[[int, int], None] | None = None
) -> ChipManifest:
    """Build the chip index described by ``spec`` (see the module docstring).

    Args:
        spec: the stack description.
        progress: optional ``callback(done, total)`` over candidate chips.

    Returns:
        The :class:`~rsmm.stacks.manifest.ChipManifest` (not yet written); its
        ``extra["footprints"]`` holds ``{modality: polygon, "common": polygon}``.

    Raises:
        DatasetNotFoundError: a missing folder or a modality with no files.
        DatasetFileError: a corrupt GeoTIFF or bad labels file (named).
        ValueError: folders that do not overlap, a chip larger than the overlap, a chip
            size that is no whole number of pixels, no chip left.
    """
    import geopandas as gpd
    import shapely

    import rsmm

    # -- every file checked; all corrupt ones named in one error --------------------------------
    sources, corrupt = {}, []
    for k, m in spec.modalities.items():
        try:
            sources[k] = ModalitySource(m)
        except CorruptFilesError as err:
            corrupt += err.messages
    cloud_files = []
    if spec.cloud is not None:
        cloud_files = list_files(spec.cloud.root, spec.cloud.glob, "cloud layer")
    if spec.labels is not None and spec.labels.is_raster:
        if not Path(spec.labels.path).is_file():
            raise FileNotFoundError(f"label raster not found: {spec.labels.path}")
        extra_files = [*cloud_files, spec.labels.path]
    else:
        extra_files = cloud_files
    try:
        check_geotiffs(extra_files)
    except CorruptFilesError as err:
        corrupt += err.messages
    if corrupt:
        raise CorruptFilesError(corrupt)
    crs, crs_note = choose_crs(spec, sources)
    crs_name = crs.to_string()
    index = {k: _footprints(s, crs) for k, s in sources.items()}
    foot = {k: shapely.union_all(ix.geometry.values) for k, ix in index.items()}
    keys = list(sources)
    required = [k for k in keys if spec.modalities[k].required]
    optional = [k for k in keys if k not in required]
    for i, a in enumerate(required):
        for b in required[i + 1 :]:
            if not _overlaps(foot[a], foot[b]):
                raise ConfigError(
                    f"the {a} files ({spec.modalities[a].root}) and the {b} files "
                    f"({spec.modalities[b].root}) do not overlap (footprints in {crs_name}: "
                    f"{_fmt(foot[a].bounds)} and {_fmt(foot[b].bounds)})"
                )
    common = shapely.intersection_all([foot[k] for k in required])
    for k in optional:
        if not _overlaps(foot[k], common):
            raise ConfigError(
                f"the optional {k} files ({spec.modalities[k].root}) do not overlap the "
                f"required modalities ({', '.join(required)}) (footprints in {crs_name}: "
                f"{_fmt(foot[k].bounds)} and {_fmt(common.bounds)})"
            )
    ref = next((k for k in required if sources[k].spec.sensor == "s2"), required[0])
    g = sources[ref].gsd
    # the reference modality first: chip, stride and block are counted in its pixels
    gsds = {ref: g, **{k: s.gsd for k, s in sources.items() if k != ref}}
    chip_m = _length_m(spec.chip_size, g)
    chip_px = whole_pixels("--chip-size", spec.chip_size, chip_m, gsds)
    pixels = {k: round(chip_m / s.gsd) for k, s in sources.items()}
    stride = spec.stride or spec.chip_size
    stride_px = whole_pixels("--stride", stride, _length_m(stride, g), gsds)
    if spec.block_size is not None:
        block_px = whole_pixels(
            "--block-size", spec.block_size, _length_m(spec.block_size, g), {ref: g}
        )
    else:
        block_px = 4 * chip_px
    # lengths in metres from whole reference pixels: equal edges are equal floats
    chip_m, stride_m, block_m = chip_px * g, stride_px * g, block_px * g

    # -- chip grid on the reference pixel grid ----------------------------------------------
    xmin, ymin, xmax, ymax = common.bounds
    if chip_m > xmax - xmin or chip_m > ymax - ymin:
        raise ConfigError(
            f"chip size {chip_m:g} m is larger than the overlap of the required modalities "
            f"({xmax - xmin:.0f} m x {ymax - ymin:.0f} m in {crs_name})"
        )
    ax, ay = (0.0, 0.0)
    if sources[ref].crs == crs:
        import rasterio

        first = sources[ref].items[0].band_path(sources[ref].bands[0])
        with rasterio.open(first) as src:
            ax, ay = src.transform.c, src.transform.f
    # chip edges are whole reference pixels (i0 + i, j0 + j) from the anchor (ax, ay)
    i0 = int(np.ceil((xmin - ax) / g - 1e-9))
    j0 = int(np.ceil((ay - ymax) / g - 1e-9))
    x0, y0 = ax + i0 * g, ay - j0 * g
    ncol = int(np.floor(((xmax - x0) / g - chip_px) / stride_px + 1e-9)) + 1
    nrow = int(np.floor(((y0 - ymin) / g - chip_px) / stride_px + 1e-9)) + 1
    cols, rows = np.meshgrid(np.arange(max(ncol, 0)), np.arange(max(nrow, 0)))
    cols, rows = cols.ravel(), rows.ravel()
    i, j = i0 + cols * stride_px, j0 + rows * stride_px
    boxes = shapely.box(ax + i * g, ay - (j + chip_px) * g, ax + (i + chip_px) * g, ay - j * g)
    inside = shapely.covers(common.buffer(1e-6 * chip_m), boxes)
    if not inside.any():
        raise ConfigError(
            f"no chip of {chip_m:g} m fits inside the overlap of the required modalities "
            f"({_fmt(common.bounds)} in {crs_name}); use a smaller --chip-size"
        )
    cols, rows, boxes = cols[inside], rows[inside], boxes[inside]

    # -- per chip: acquisitions, reads, nodata, clouds -------------------------------------
    timed = [k for k in keys if spec.modalities[k].use_time]
    if spec.max_days is not None:
        timed.sort(key=lambda k: k != ref)
        for k in timed:
            if not sources[k].dated:
                raise ConfigError(
                    f"max_days: the {k} file names under {spec.modalities[k].root} carry no "
                    "YYYYMMDD date; drop --max-days or rename the files"
                )
    cloud = _CloudLayer(spec.cloud, cloud_files, crs) if spec.cloud is not None else None
    label_raster = None
    if spec.labels is not None and spec.labels.is_raster:
        # its GSD in metres of the stack CRS, also for a raster in degrees (WorldCover)
        lgsd = gsd_in_crs(spec.labels.path, crs)
        label_raster = (spec.labels.path, max(1, round(chip_m / lgsd)))
    dropped: Counter[str] = Counter()
    rows_out: list[dict[str, Any]] = []
    sums: list[dict[str, np.ndarray]] = []
    for n_done, (c, r, chip) in enumerate(zip(cols, rows, boxes)):
        if progress is not None:
            progress(n_done, len(boxes))
        options = {k: _acquisitions(index[k], chip) for k in keys}
        for k in optional:  # files that only touch the chip do not cover it
            options[k] = [a for a in options[k] if a[2] > 0]
        chosen = _choose(options, timed, spec.max_days, required)
        if chosen is None:
            timed_req = "/".join(k for k in timed if k in required)
            dropped[f"no {timed_req} acquisitions within {spec.max_days:g} days"] += 1
            continue
        row: dict[str, Any] = {"chip_id": f"x{c:04d}_y{r:04d}", "geometry": chip}
        chip_sums, reason, covered = {}, None, []
        for k in keys:
            s = sources[k]
            row[f"nodata_{k}"], row[f"files_{k}"] = float("nan"), "[]"
            if s.dated:
                row[f"date_{k}"] = None
            if k not in chosen:  # an optional modality with no file over the chip
                continue
            date, paths, _ = chosen[k]
            arr = read_window(
                _read_paths(s, paths),
                chip.bounds,
                pixels[k],
                crs,
                s.spec.nodata,
                s.spec.resampling,
                indexes=s.band_indexes,
            )
            bad = np.isnan(arr)
            frac = float(bad.any(0).mean())
            row[f"nodata_{k}"] = frac
            if frac > spec.max_nodata:
                if k in required and reason is None:
                    reason = f"more than {spec.max_nodata:.0%} nodata in {k}"
                continue
            covered.append(k)
            row[f"files_{k}"] = json.dumps(paths)
            if s.dated:
                row[f"date_{k}"] = date.date().isoformat()
            flat = np.where(bad, 0.0, arr).reshape(len(arr), -1).astype(np.float64)
            chip_sums[k] = np.stack(
                [(~bad).reshape(len(arr), -1).sum(1), flat.sum(1), (flat**2).sum(1)]
            )
        if reason is not None:
            dropped[reason] += 1
            continue
        if cloud is not None:
            ref_date = chosen[ref][0]
            row["cloud_fraction"] = cloud.fraction(chip, chip_m, crs, ref_date)
            # NaN: outside the cloud layer; kept (and counted in the summary)
            if spec.max_cloud is not None and row["cloud_fraction"] > spec.max_cloud:
                dropped[f"more than {spec.max_cloud:.0%} cloud"] += 1
                continue
        if label_raster is not None:
            v = read_window([label_raster[0]], chip.bounds, label_raster[1], crs)[0]
            row["label"] = raster_majority(v, spec.labels.min_cover, label_raster[0])
        row["modalities"] = ",".join(covered)
        rows_out.append(row)
        sums.append(chip_sums)
    if not rows_out:
        raise ConfigError(
            "no chip left after filtering: " + "; ".join(f"{n} {r}" for r, n in dropped.items())
        )
    chips = gpd.GeoDataFrame(rows_out, geometry="geometry", crs=crs_name)

    # -- labels -------------------------------------------------------------------------------
    classes: list[str] = []
    label_source = None
    if spec.labels is not None and label_raster is None:
        labels = load_vector_labels(spec.labels, crs_name)
        classes = class_names(labels["class"].tolist(), spec.labels.classes, spec.labels.path)
        chips["label"] = vector_chip_labels(chips.geometry, labels, classes, spec.labels.min_cover)
        label_source = {
            "path": spec.labels.path,
            "column": spec.labels.column,
            "layer": spec.labels.layer,
        }
    elif label_raster is not None:
        found = chips["label"].to_numpy()
        top = int(found.max()) if (found >= 0).any() else -1
        classes = (
            list(spec.labels.classes)
            if spec.labels.classes
            else [f"class_{v}" for v in range(top + 1)]
        )
        if top >= len(classes):
            raise DatasetFileError(
                f"label raster {spec.labels.path} holds class {top} but only {len(classes)} "
                "class names were given"
            )
        label_source = {"path": spec.labels.path, "raster": True}
    else:
        chips["label"] = -1
    chips["label"] = chips["label"].astype(np.int64)
    chips["class_name"] = [classes[v] if v >= 0 else None for v in chips["label"]]

    # -- spatial splits with a guard band ------------------------------------------------------
    centres = np.column_stack([chips.geometry.centroid.x, chips.geometry.centroid.y])
    chips["block"] = block_ids(centres, (x0, y0), block_m)
    chips["split"] = assign_blocks(chips["block"].to_numpy(), spec.split, spec.seed)
    drop = guard_band(
        chips.geometry.values, chips["split"].to_numpy(), spec.split, tolerance=1e-6 * chip_m
    )
    if drop.any():
        dropped["in the guard band between splits"] += int(drop.sum())
        chips = chips[~drop].reset_index(drop=True)
        sums = [s for s, d in zip(sums, drop) if not d]

    # -- statistics of the train chips --------------------------------------------------------
    train = np.flatnonzero(chips["split"].to_numpy() == "train")
    stats: dict[str, dict[str, list[float]]] | None = None
    stats_chips: dict[str, int] = {}
    if len(train):
        stats = {}
        for k in keys:
            parts = [sums[i][k] for i in train if k in sums[i]]
            stats_chips[k] = len(parts)
            if not parts:  # an optional modality covering no train chip
                continue
            n, s1, s2 = np.sum(parts, axis=0)
            mean = s1 / np.maximum(n, 1)
            std = np.sqrt(np.maximum(s2 / np.maximum(n, 1) - mean**2, 0))
            stats[k] = {
                b: [float(m), float(max(sd, 1e-6))] for b, m, sd in zip(sources[k].bands, mean, std)
            }
    columns = ["chip_id", "split", "block", "label", "class_name", "modalities"]
    columns += [c for c in chips.columns if c.startswith(("nodata_", "date_"))]
    columns += [c for c in ("cloud_fraction",) if c in chips.columns]
    columns += [f"files_{k}" for k in keys] + ["geometry"]
    chips = chips[columns]
    meta = {
        "format_version": FORMAT_VERSION,
        "rsmm_version": rsmm.__version__,
        "created": datetime.now().isoformat(timespec="seconds"),
        "crs": crs_name,
        "crs_source": crs_note,
        "reference": ref,
        "chip_size_m": chip_m,
        "stride_m": stride_m,
        "block_size_m": block_m,
        "grid_origin": [float(x0), float(y0)],
        "split_fractions": list(spec.split),
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
                "required": k in required,
                "units": s.spec.units,
                "offset": s.spec.offset,
                "gsd": s.gsd,
                "chip_pixels": pixels[k],
                "nodata": s.spec.nodata,
                "resampling": s.spec.resampling,
                "files": len(s.items),
            }
            for k, s in sources.items()
        },
        "classes": classes,
        "label_source": label_source,
        "stats": stats,
        "stats_source": f"{len(train)} train chips of this manifest" if stats else None,
        "stats_chips": stats_chips,
        "dropped": dict(dropped),
        "ignored": {
            k: [{"path": p, "reason": r} for p, r in s.ignored]
            for k, s in sources.items()
            if s.ignored
        },
        "splits": {s: int((chips["split"] == s).sum()) for s in SPLITS},
    }
    foot["common"] = common
    return ChipManifest(chips=chips, meta=meta, extra={"footprints": foot})


def _overlaps(a, b) -> bool:
    """Whether two footprints share some area (not only an edge)."""
    return bool(a.intersects(b)) and a.intersection(b).area > 0


def _fmt(bounds: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.0f}" for v in bounds) + ")"
