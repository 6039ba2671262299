"""A synthetic but realistic co-registered scene: S1, S2 and NAIP GeoTIFFs plus labels.

:func:`generate_scene` lays land-cover fields (water, forest, cropland, urban, bare)
out as strips of rectangular parcels on the ground, then renders every modality from
that one ground truth, each in its own CRS, resolution and tiling, the way real
downloads arrive:

- ``s2/``: Sentinel-2 reflectance x 1e4 (uint16, nodata 0) in UTM (EPSG:32618 by
  default), two overlapping tiles (with ``west_crs``, the western tile and its SCL are
  in that CRS, e.g. the neighbouring UTM zone when the scene straddles a zone border), either one multi-band file per tile or one file
  per band (``T18SUJ_<date>T155819_B04.tif``, bands at their native 10/20/60 m);
  class spectra after typical surface reflectances, clouds bright;
- ``s1/``: Sentinel-1 VV and VH backscatter in dB (float32) as separate files like
  RTC products, in Web Mercator (EPSG:3857) at 10 m on the ground, with multiplicative
  speckle (gamma, 4 looks) and a NaN border strip on its left edge;
- ``naip/``: NAIP R, G, B, NIR (uint8) at ``naip_gsd`` metres in the Maryland state
  plane (EPSG:26985), with a texture per class (crop rows, tree crowns, building blocks);
- ``s2_scl/``: a Sentinel-2 scene-classification layer at 20 m (clouds = 8/9);
- ``labels.gpkg`` (layers ``fields``: polygons, ``points``: one point per field, both
  with a ``landcover`` column, in EPSG:4326) and ``labels.tif`` (class ids, 10 m).

The extents overlap but differ: S1 stops short of the S2 right edge, NAIP covers only
the upper part. Deterministic for a seed; a 1.3 km scene takes well under a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
from affine import Affine

from rsmm.errors import ConfigError
from rsmm.io import write_geotiff
from rsmm.sensors import get_sensor
from rsmm.stacks.ground import (
    DEFAULT_CLASSES,
    NAIP_SIGNATURES,
    S1_SIGNATURES,
    S2_SIGNATURES,
    SCL_VALUES,
    field_index,
    layout_fields,
)


@dataclass
class Scene:
    """What :func:`generate_scene` wrote, and the ground truth it drew from.

    Attributes:
        root: the scene folder.
        classes: class names (id = index).
        crs: ``{"s2"|"s1"|"naip"|"scl"|"s2_west": CRS string}`` (``s2_west``: the western
            S2 tile's and its SCL's; the ground truth is in ``s2``).
        bounds: ``{layer: (xmin, ymin, xmax, ymax)}`` of each layer's rasters in its own
            CRS (S1: including the NaN strip; ``s2``: union of both tiles).
        s1_nan_bounds: the S1 NaN strip, in the S1 CRS.
        fields: ``N x 5`` array ``xmin, ymin, xmax, ymax, class id`` in the S2 CRS.
        clouds: ``[(x, y, radius)]`` cloud discs in the S2 CRS.
        dates: ``{layer: "YYYYMMDD"}``.
    """

    root: Path
    classes: tuple[str, ...]
    crs: dict[str, str]
    bounds: dict[str, tuple[float, float, float, float]]
    s1_nan_bounds: tuple[float, float, float, float]
    fields: np.ndarray
    clouds: list[tuple[float, float, float]]
    dates: dict[str, str]
    files: dict[str, list[Path]] = field(default_factory=dict)

    def class_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Class id at ground points ``(x, y)`` of the S2 CRS (-1 outside every field)."""
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        out = np.full(np.broadcast(x, y).shape, -1, dtype=np.int64)
        for x0, y0, x1, y1, c in self.fields:
            out[(x >= x0) & (x < x1) & (y >= y0) & (y < y1)] = int(c)
        return out

    def cloud_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Whether ground points ``(x, y)`` of the S2 CRS are under a cloud."""
        out = np.zeros(np.broadcast(np.asarray(x), np.asarray(y)).shape, dtype=bool)
        for cx, cy, r in self.clouds:
            out |= (np.asarray(x) - cx) ** 2 + (np.asarray(y) - cy) ** 2 < r * r
        return out


def from_origin(x: float, y: float, xres: float, yres: float) -> Affine:
    """North-up transform with top-left corner ``(x, y)``."""
    return Affine(xres, 0.0, x, 0.0, -yres, y)


def _grid(transform, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    xs = transform.c + cols * transform.a
    ys = transform.f + rows * transform.e
    return xs, ys


class _Area(NamedTuple):
    """The Sentinel-2 area in its CRS, with its sides as given (not recomputed)."""

    x0: float
    y0: float
    x1: float
    y1: float
    width: float
    height: float


def generate_scene(
    root: str | Path,
    *,
    extent_m: tuple[float, float] | float = (1280.0, 960.0),
    seed: int = 0,
    classes: Sequence[str] = DEFAULT_CLASSES,
    s2_layout: str = "multiband",
    s2_bands: Sequence[str] | None = None,
    crs: str = "EPSG:32618",
    s1_crs: str = "EPSG:3857",
    naip_crs: str = "EPSG:26985",
    west_crs: str | None = None,
    origin: tuple[float, float] = (370000.0, 4306000.0),
    naip_gsd: float = 1.0,
    field_size: tuple[float, float] = (60.0, 220.0),
    dates: dict[str, str] | None = None,
    clouds: bool = True,
) -> Scene:
    """Write a synthetic S1 / S2 / NAIP scene with labels under ``root`` (see module doc).

    The land-cover map is drawn first (:func:`~rsmm.stacks.ground.layout_fields`, one
    brightness gain per field), then every layer is rendered from it and written in its own CRS:
    :func:`_write_s2` (with the SCL layer), :func:`_write_s1`, :func:`_write_naip`,
    :func:`_write_labels`.

    Args:
        root: output folder (created).
        extent_m: ``(width, height)`` of the Sentinel-2 area in metres (multiples of 20).
        seed: random seed (the same seed writes the same files).
        classes: land-cover classes, a subset of :data:`DEFAULT_CLASSES`.
        s2_layout: ``"multiband"`` (one file per tile) or ``"per_band"``.
        s2_bands: Sentinel-2 bands to write (default all 13, registry order).
        crs: CRS of S2 (and of the label raster); a projected CRS in metres.
        s1_crs: CRS of the S1 files.
        naip_crs: CRS of the NAIP file.
        west_crs: CRS of the western S2 tile and its SCL (default ``crs``); the tile
            is rendered on its own 60 m-aligned pixel grid in that CRS.
        origin: top-left corner of the S2 area in ``crs``.
        naip_gsd: NAIP pixel size in metres.
        field_size: range of parcel sides in metres.
        dates: ``{"s1"|"s2"|"naip": "YYYYMMDD"}`` acquisition dates in the file names.
        clouds: draw a cloud over part of the S2 scene (bright S2, SCL 9).

    Returns:
        A :class:`Scene` with the file list and the ground truth.

    Raises:
        ConfigError: for an unknown layout or class, a bad extent or unknown bands.
    """
    if s2_layout not in ("multiband", "per_band"):
        raise ConfigError(f"s2_layout must be 'multiband' or 'per_band', got {s2_layout!r}")
    unknown = [c for c in classes if c not in DEFAULT_CLASSES]
    if unknown:
        raise ConfigError(f"classes: unknown {unknown}; choose from {', '.join(DEFAULT_CLASSES)}")
    if isinstance(extent_m, int | float):
        extent_m = (float(extent_m), float(extent_m))
    width, height = (float(v) for v in extent_m)
    if width % 20 or height % 20 or width < 200 or height < 200:
        raise ConfigError(f"extent_m must be multiples of 20 m, at least 200 m, got {extent_m}")
    s2 = get_sensor("s2")
    bands = tuple(s2_bands) if s2_bands is not None else s2.band_names
    s2.check_bands(bands)
    dates = {"s2": "20230605", "s1": "20230603", "naip": "20220815", **(dates or {})}
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = tuple(classes)
    x0, y1 = origin
    x1, y0 = x0 + width, y1 - height
    margin = 400.0
    fields = layout_fields(
        rng, (x0 - margin, y0 - margin, x1 + margin, y1 + margin), field_size, len(names)
    )
    cloud_discs = [(x0 + 0.7 * width, y1 - 0.25 * height, 0.12 * min(width, height))]
    scene = Scene(
        root=root,
        classes=names,
        crs={"s2": crs, "s1": s1_crs, "naip": naip_crs, "scl": crs, "s2_west": west_crs or crs},
        bounds={"s2": (x0, y0, x1, y1), "scl": (x0, y0, x1, y1)},
        s1_nan_bounds=(0, 0, 0, 0),
        fields=fields,
        clouds=cloud_discs if clouds else [],
        dates=dict(dates),
    )
    gain = rng.normal(1.0, 0.04, len(fields))
    area = _Area(x0, y0, x1, y1, width, height)
    files: dict[str, list[Path]] = {"s2": [], "s1": [], "naip": [], "scl": []}
    files["s2"], files["scl"] = _write_s2(scene, area, gain, rng, bands, s2_layout)
    files["s1"] = _write_s1(scene, area, gain, rng)
    files["naip"] = _write_naip(scene, area, gain, rng, naip_gsd)
    files["labels"] = _write_labels(scene, area)
    scene.files = files
    return scene


def _tile_grid(
    box: tuple[float, float, float, float], crs: str, tile_crs: str, res: float
) -> tuple[Affine, np.ndarray, np.ndarray]:
    """A tile's pixel grid over ``box`` (in ``crs``) in ``tile_crs`` at ``res`` metres, and
    its pixel centres in ``crs`` (the ground truth's CRS).

    In the ground truth's own CRS the tile starts at the box's corner; in another CRS,
    the box's bounds there, widened to whole 60 m from that CRS's origin.
    """
    x0, y0, x1, y1 = box
    if tile_crs != crs:
        from pyproj import Transformer
        from rasterio.warp import transform_bounds

        w, s, e, n = transform_bounds(crs, tile_crs, *box, densify_pts=21)
        x0, x1 = np.floor(w / 60) * 60, np.ceil(e / 60) * 60
        y0, y1 = np.floor(s / 60) * 60, np.ceil(n / 60) * 60
    tr = from_origin(x0, y1, res, res)
    xs, ys = _grid(tr, int(np.ceil((y1 - y0) / res)), int(np.ceil((x1 - x0) / res)))
    if tile_crs != crs:
        xs, ys = Transformer.from_crs(tile_crs, crs, always_xy=True).transform(xs, ys)
    return tr, np.asarray(xs), np.asarray(ys)


def _write_s2(
    scene: Scene,
    area: _Area,
    gain: np.ndarray,
    rng: np.random.Generator,
    bands: Sequence[str],
    layout: str,
) -> tuple[list[Path], list[Path]]:
    """Sentinel-2 and its SCL layer as two overlapping tiles (see the module docstring).

    Returns:
        The S2 files and the SCL files.
    """
    s2 = get_sensor("s2")
    x0, _, x1, y1, width, height = area
    crs, root, fields = scene.crs["s2"], scene.root, scene.fields
    sig = np.array(
        [[S2_SIGNATURES[c][s2.band_names.index(b)] for b in bands] for c in scene.classes]
    )
    half = round(width / 2 / 60) * 60
    tiles = {"T18SUJ": (x0, min(x1, x0 + half + 80)), "T18SUK": (x0 + half - 80, x1)}
    out: list[Path] = []
    scl_files: list[Path] = []
    west = scene.crs.get("s2_west", crs)
    for n, (t, (tx0, tx1)) in enumerate(tiles.items()):
        tcrs = west if n == 0 else crs
        if tcrs != crs:
            t = f"T{tcrs[-2:]}" + t[3:]  # the tile of the other zone
        box = (tx0, y1 - height, tx1, y1)
        per_band_res = (
            {b: s2.band(b).gsd for b in bands}
            if layout == "per_band"
            else dict.fromkeys(bands, 10.0)
        )
        layers = {}
        for res in sorted(set(per_band_res.values())):
            tr, xs, ys = _tile_grid(box, crs, tcrs, res)
            fi = field_index(fields, xs, ys)
            cls = fields[fi, 4].astype(np.int64)
            sel = [i for i, b in enumerate(bands) if per_band_res[b] == res]
            img = sig[cls][..., sel].transpose(2, 0, 1) * gain[fi][None]
            img = img * rng.normal(1.0, 0.015, img.shape)
            if scene.clouds:
                cloud = scene.cloud_at(xs, ys)
                img[:, cloud] = rng.normal(7000, 300, (len(sel), int(cloud.sum())))
            layers[res] = (np.clip(np.round(img), 1, 10000).astype(np.uint16), tr, sel)
        scene_id = f"{t}_{scene.dates['s2']}T155819"
        if layout == "multiband":
            img, tr, _ = layers[10.0]
            out.append(write_geotiff(root / "s2" / f"{scene_id}_L2A.tif", img, tcrs, tr, 0))
        else:
            for img, tr, sel in layers.values():
                for j, i in enumerate(sel):
                    path = root / "s2" / f"{scene_id}_{bands[i]}.tif"
                    out.append(write_geotiff(path, img[j : j + 1], tcrs, tr, 0))
        tr, xs, ys = _tile_grid(box, crs, tcrs, 20.0)
        scl_of = np.array([SCL_VALUES[c] for c in scene.classes], dtype=np.uint8)
        scl = scl_of[scene.class_at(xs, ys)]
        if scene.clouds:
            scl[scene.cloud_at(xs, ys)] = 9
        path = root / "s2_scl" / f"{scene_id}_SCL.tif"
        scl_files.append(write_geotiff(path, scl[None], tcrs, tr, 0))
    return out, scl_files


def _write_s1(scene: Scene, area: _Area, gain: np.ndarray, rng: np.random.Generator) -> list[Path]:
    """Sentinel-1 VV and VH in dB in ``scene.crs["s1"]``: wider than S2 on three sides,
    short on the right, with a NaN strip on its left edge (recorded in ``scene``)."""
    from pyproj import Transformer

    x0, y0, x1, y1, width, height = area
    crs, s1_crs = scene.crs["s2"], scene.crs["s1"]
    to_s1 = Transformer.from_crs(crs, s1_crs, always_xy=True)
    to_ground = Transformer.from_crs(s1_crs, crs, always_xy=True)
    cx, _ = to_s1.transform(x0 + width / 2, y0 + height / 2)
    # map units per ground metre at the centre (Web Mercator: 1 / cos(latitude))
    ex, _ = to_s1.transform(x0 + width / 2 + 100, y0 + height / 2)
    k = abs(ex - cx) / 100
    res1 = 10.0 * k
    sx0, sy1 = to_s1.transform(x0 - 195, y1 + 195)  # half a pixel off the S2 grid
    sx1, sy0 = to_s1.transform(x1 - 80, y0 - 200)
    ncol, nrow = int((sx1 - sx0) / res1), int((sy1 - sy0) / res1)
    tr1 = from_origin(sx0, sy1, res1, res1)
    xs, ys = _grid(tr1, nrow, ncol)
    gx, gy = to_ground.transform(xs, ys)
    fi = field_index(scene.fields, np.asarray(gx), np.asarray(gy))
    cls = scene.fields[fi, 4].astype(np.int64)
    level = np.array([S1_SIGNATURES[c] for c in scene.classes])[cls].transpose(2, 0, 1)
    level = level + 10 * np.log10(gain[fi])[None]
    speckle = rng.gamma(4.0, 1 / 4.0, level.shape)
    db = (level + 10 * np.log10(speckle)).astype(np.float32)
    nan_cols = 25
    db[:, :, :nan_cols] = np.nan
    scene.s1_nan_bounds = (sx0, sy1 - nrow * res1, sx0 + nan_cols * res1, sy1)
    scene.bounds["s1"] = (sx0, sy1 - nrow * res1, sx0 + ncol * res1, sy1)
    out = []
    for i, pol in enumerate(("VV", "VH")):
        name = f"S1A_IW_{scene.dates['s1']}T232510_DV_RTC10_G_gpuned_5A2B_{pol}.tif"
        out.append(write_geotiff(scene.root / "s1" / name, db[i : i + 1], s1_crs, tr1, np.nan))
    return out


def _write_naip(
    scene: Scene, area: _Area, gain: np.ndarray, rng: np.random.Generator, naip_gsd: float
) -> list[Path]:
    """NAIP R, G, B, NIR over the upper part of the scene in ``scene.crs["naip"]``, with
    a texture per class (crop rows, tree crowns, building blocks)."""
    from pyproj import Transformer

    x0, _, _, y1, width, height = area
    crs, naip_crs, fields, names = scene.crs["s2"], scene.crs["naip"], scene.fields, scene.classes
    to_naip = Transformer.from_crs(crs, naip_crs, always_xy=True)
    from_naip = Transformer.from_crs(naip_crs, crs, always_xy=True)
    nx0, ny1 = to_naip.transform(x0 - 60, y1 + 60)
    nx1, ny0 = to_naip.transform(x0 + 0.8125 * width, y1 - 0.5833 * height)
    ncol, nrow = int((nx1 - nx0) / naip_gsd), int((ny1 - ny0) / naip_gsd)
    trn = from_origin(nx0, ny1, naip_gsd, naip_gsd)
    xs, ys = _grid(trn, nrow, ncol)
    gx, gy = (np.asarray(v) for v in from_naip.transform(xs, ys))
    fi = field_index(fields, gx, gy)
    cls = fields[fi, 4].astype(np.int64)
    img = np.array([NAIP_SIGNATURES[c] for c in names], dtype=np.float64)[cls].transpose(2, 0, 1)
    texture = np.zeros(gx.shape)
    angle = rng.uniform(0, np.pi, len(fields))[fi]
    name_of = np.array(names)[cls]
    rows = np.sin(2 * np.pi * (gx * np.cos(angle) + gy * np.sin(angle)) / 6.0)
    crowns = np.sin(2 * np.pi * gx / 7.0) * np.sin(2 * np.pi * gy / 7.0)
    blocks = ((np.floor(gx / 25) + np.floor(gy / 25)) % 2) * 2 - 1
    texture = np.where(name_of == "cropland", 18 * rows, texture)
    texture = np.where(name_of == "forest", 22 * crowns, texture)
    texture = np.where(name_of == "urban", 25 * blocks, texture)
    img = img * gain[fi][None] + texture[None] + rng.normal(0, 4, img.shape)
    naip = np.clip(np.round(img), 0, 255).astype(np.uint8)
    name = f"m_3807661_ne_18_{int(naip_gsd * 100):03d}_{scene.dates['naip']}.tif"
    path = write_geotiff(scene.root / "naip" / name, naip, naip_crs, trn)
    scene.bounds["naip"] = (nx0, ny1 - nrow * naip_gsd, nx0 + ncol * naip_gsd, ny1)
    return [path]


def _write_labels(scene: Scene, area: _Area) -> list[Path]:
    """``labels.gpkg`` (layers ``fields`` and ``points``, EPSG:4326) and ``labels.tif``
    (class ids at 10 m, nodata 255, 100 m wider than the S2 area on every side)."""
    import geopandas as gpd
    import shapely

    x0, y0, x1, y1, width, height = area
    crs, fields, root = scene.crs["s2"], scene.fields, scene.root
    inside = (fields[:, 2] > x0 - 200) & (fields[:, 0] < x1 + 200)
    inside &= (fields[:, 3] > y0 - 200) & (fields[:, 1] < y1 + 200)
    kept = fields[inside]
    polys = [shapely.box(*f[:4]).segmentize(50.0) for f in kept]
    cls_names = [scene.classes[int(c)] for c in kept[:, 4]]
    gdf = gpd.GeoDataFrame({"landcover": cls_names}, geometry=polys, crs=crs).to_crs("EPSG:4326")
    gpkg = root / "labels.gpkg"
    if gpkg.exists():
        gpkg.unlink()
    gdf.to_file(gpkg, layer="fields", driver="GPKG")
    centres = shapely.points((kept[:, 0] + kept[:, 2]) / 2, (kept[:, 1] + kept[:, 3]) / 2)
    pts = gpd.GeoDataFrame({"landcover": cls_names}, geometry=centres, crs=crs)
    pts.to_crs("EPSG:4326").to_file(gpkg, layer="points", driver="GPKG")
    tr = from_origin(x0 - 100, y1 + 100, 10.0, 10.0)
    w, h = int((width + 200) / 10), int((height + 200) / 10)
    xs, ys = _grid(tr, h, w)
    lab = scene.class_at(xs, ys).astype(np.uint8)[None]
    return [gpkg, write_geotiff(root / "labels.tif", lab, crs, tr, 255)]
