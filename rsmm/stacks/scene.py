"""A synthetic but realistic co-registered scene: S1, S2 and NAIP GeoTIFFs plus labels.

:func:`generate_scene` lays land-cover fields (water, forest, cropland, urban, bare)
out as strips of rectangular parcels on the ground, then renders every modality from
that one ground truth, each in its own CRS, resolution and tiling, the way real
downloads arrive:

- ``s2/``: Sentinel-2 reflectance x 1e4 (uint16, nodata 0) in UTM (EPSG:32618 by
  default), two overlapping tiles, either one multi-band file per tile or one file
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

import numpy as np
from affine import Affine

from rsmm.errors import ConfigError
from rsmm.io import write_geotiff
from rsmm.sensors import get_sensor

DEFAULT_CLASSES = ("water", "forest", "cropland", "urban", "bare")

#: Surface reflectance x 1e4 per class, Sentinel-2 bands in registry order
#: (B01, B02, B03, B04, B05, B06, B07, B08, B8A, B09, B10, B11, B12).
S2_SIGNATURES = {
    "water": (1100, 950, 800, 550, 450, 350, 300, 250, 230, 90, 10, 120, 80),
    "forest": (900, 700, 650, 380, 900, 2400, 2900, 3100, 3250, 1000, 15, 1600, 700),
    "cropland": (1000, 850, 1050, 750, 1450, 2700, 3300, 3600, 3700, 1150, 15, 2300, 1250),
    "urban": (1400, 1300, 1300, 1400, 1500, 1650, 1800, 1900, 2000, 700, 20, 2600, 2350),
    "bare": (1500, 1600, 1950, 2450, 2650, 2800, 2950, 3050, 3150, 950, 20, 3550, 3050),
}
#: Mean backscatter (VV, VH) in dB per class.
S1_SIGNATURES = {
    "water": (-22.0, -28.0),
    "forest": (-8.0, -14.0),
    "cropland": (-11.0, -18.0),
    "urban": (-3.0, -10.0),
    "bare": (-15.0, -23.0),
}
#: NAIP R, G, B, NIR digital numbers per class.
NAIP_SIGNATURES = {
    "water": (40, 60, 80, 20),
    "forest": (50, 85, 55, 170),
    "cropland": (130, 150, 85, 185),
    "urban": (155, 150, 150, 95),
    "bare": (185, 165, 130, 150),
}
#: SCL value per class (4 vegetation, 5 not vegetated, 6 water).
SCL_VALUES = {"water": 6, "forest": 4, "cropland": 4, "urban": 5, "bare": 5}


@dataclass
class Scene:
    """What :func:`generate_scene` wrote, and the ground truth it drew from.

    Attributes:
        root: the scene folder.
        classes: class names (id = index).
        crs: ``{"s2"|"s1"|"naip"|"scl": CRS string}``.
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


def _layout_fields(
    rng: np.random.Generator,
    bbox: tuple[float, float, float, float],
    sizes: tuple[float, float],
    k: int,
) -> np.ndarray:
    """Strips of parcels: columns of random widths, each cut in rows of random heights."""
    xmin, ymin, xmax, ymax = bbox
    fields = []
    x = xmin
    while x < xmax:
        w = float(rng.uniform(*sizes))
        y = ymin
        while y < ymax:
            h = float(rng.uniform(*sizes))
            fields.append((x, y, x + w, y + h, int(rng.integers(k))))
            y += h
        x += w
    return np.array(fields, dtype=np.float64)


def from_origin(x: float, y: float, xres: float, yres: float) -> Affine:
    """North-up transform with top-left corner ``(x, y)``."""
    return Affine(xres, 0.0, x, 0.0, -yres, y)


def _grid(transform, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    xs = transform.c + cols * transform.a
    ys = transform.f + rows * transform.e
    return xs, ys


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
    origin: tuple[float, float] = (370000.0, 4306000.0),
    naip_gsd: float = 1.0,
    field_size: tuple[float, float] = (60.0, 220.0),
    dates: dict[str, str] | None = None,
    clouds: bool = True,
) -> Scene:
    """Write a synthetic S1 / S2 / NAIP scene with labels under ``root`` (see module doc).

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
        origin: top-left corner of the S2 area in ``crs``.
        naip_gsd: NAIP pixel size in metres.
        field_size: range of parcel sides in metres.
        dates: ``{"s1"|"s2"|"naip": "YYYYMMDD"}`` acquisition dates in the file names.
        clouds: draw a cloud over part of the S2 scene (bright S2, SCL 9).

    Returns:
        A :class:`Scene` with the file list and the ground truth.
    """
    import geopandas as gpd
    import shapely
    from pyproj import Transformer

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
    fields = _layout_fields(
        rng, (x0 - margin, y0 - margin, x1 + margin, y1 + margin), field_size, len(names)
    )
    cloud_discs = [(x0 + 0.7 * width, y1 - 0.25 * height, 0.12 * min(width, height))]
    scene = Scene(
        root=root,
        classes=names,
        crs={"s2": crs, "s1": s1_crs, "naip": naip_crs, "scl": crs},
        bounds={},
        s1_nan_bounds=(0, 0, 0, 0),
        fields=fields,
        clouds=cloud_discs if clouds else [],
        dates=dict(dates),
    )
    files: dict[str, list[Path]] = {"s2": [], "s1": [], "naip": [], "scl": []}
    field_gain = rng.normal(1.0, 0.04, len(fields))

    def field_index(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        idx = np.full(x.shape, -1, dtype=np.int64)
        for i, (fx0, fy0, fx1, fy1, _) in enumerate(fields):
            idx[(x >= fx0) & (x < fx1) & (y >= fy0) & (y < fy1)] = i
        return idx

    # -- Sentinel-2: two overlapping tiles ------------------------------------------------
    s2_sig = np.array([[S2_SIGNATURES[c][s2.band_names.index(b)] for b in bands] for c in names])
    half = round(width / 2 / 60) * 60
    tiles = {"T18SUJ": (x0, min(x1, x0 + half + 80)), "T18SUK": (x0 + half - 80, x1)}
    for t, (tx0, tx1) in tiles.items():
        per_band_res = (
            {b: s2.band(b).gsd for b in bands}
            if s2_layout == "per_band"
            else dict.fromkeys(bands, 10.0)
        )
        layers = {}
        for res in sorted(set(per_band_res.values())):
            w, h = int(np.ceil((tx1 - tx0) / res)), int(np.ceil(height / res))
            tr = from_origin(tx0, y1, res, res)
            xs, ys = _grid(tr, h, w)
            fi = field_index(xs, ys)
            cls = fields[fi, 4].astype(np.int64)
            gain = field_gain[fi]
            sel = [i for i, b in enumerate(bands) if per_band_res[b] == res]
            img = s2_sig[cls][..., sel].transpose(2, 0, 1) * gain[None]
            img = img * rng.normal(1.0, 0.015, img.shape)
            if clouds:
                cloud = scene.cloud_at(xs, ys)
                img[:, cloud] = rng.normal(7000, 300, (len(sel), int(cloud.sum())))
            layers[res] = (np.clip(np.round(img), 1, 10000).astype(np.uint16), tr, sel)
        scene_id = f"{t}_{dates['s2']}T155819"
        if s2_layout == "multiband":
            img, tr, _ = layers[10.0]
            files["s2"].append(write_geotiff(root / "s2" / f"{scene_id}_L2A.tif", img, crs, tr, 0))
        else:
            for img, tr, sel in layers.values():
                for j, i in enumerate(sel):
                    path = root / "s2" / f"{scene_id}_{bands[i]}.tif"
                    files["s2"].append(write_geotiff(path, img[j : j + 1], crs, tr, 0))
        tr = from_origin(tx0, y1, 20.0, 20.0)
        w, h = int(np.ceil((tx1 - tx0) / 20)), int(np.ceil(height / 20))
        xs, ys = _grid(tr, h, w)
        scl = np.array([SCL_VALUES[c] for c in names], dtype=np.uint8)[scene.class_at(xs, ys)]
        if clouds:
            scl[scene.cloud_at(xs, ys)] = 9
        path = root / "s2_scl" / f"{scene_id}_SCL.tif"
        files["scl"].append(write_geotiff(path, scl[None], crs, tr, 0))
    scene.bounds["s2"] = (x0, y0, x1, y1)
    scene.bounds["scl"] = (x0, y0, x1, y1)

    # -- Sentinel-1 in another CRS: wider on three sides, short on the right, NaN strip ---
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
    fi = field_index(np.asarray(gx), np.asarray(gy))
    cls = fields[fi, 4].astype(np.int64)
    level = np.array([S1_SIGNATURES[c] for c in names])[cls].transpose(2, 0, 1)
    level = level + 10 * np.log10(field_gain[fi])[None]
    speckle = rng.gamma(4.0, 1 / 4.0, level.shape)
    db = (level + 10 * np.log10(speckle)).astype(np.float32)
    nan_cols = 25
    db[:, :, :nan_cols] = np.nan
    scene.s1_nan_bounds = (sx0, sy1 - nrow * res1, sx0 + nan_cols * res1, sy1)
    scene.bounds["s1"] = (sx0, sy1 - nrow * res1, sx0 + ncol * res1, sy1)
    for i, pol in enumerate(("VV", "VH")):
        path = root / "s1" / f"S1A_IW_{dates['s1']}T232510_DV_RTC10_G_gpuned_5A2B_{pol}.tif"
        files["s1"].append(write_geotiff(path, db[i : i + 1], s1_crs, tr1, float("nan")))

    # -- NAIP in a state plane, upper part of the scene ------------------------------------
    to_naip = Transformer.from_crs(crs, naip_crs, always_xy=True)
    from_naip = Transformer.from_crs(naip_crs, crs, always_xy=True)
    nx0, ny1 = to_naip.transform(x0 - 60, y1 + 60)
    nx1, ny0 = to_naip.transform(x0 + 0.8125 * width, y1 - 0.5833 * height)
    ncol, nrow = int((nx1 - nx0) / naip_gsd), int((ny1 - ny0) / naip_gsd)
    trn = from_origin(nx0, ny1, naip_gsd, naip_gsd)
    xs, ys = _grid(trn, nrow, ncol)
    gx, gy = (np.asarray(v) for v in from_naip.transform(xs, ys))
    fi = field_index(gx, gy)
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
    img = img * field_gain[fi][None] + texture[None] + rng.normal(0, 4, img.shape)
    naip = np.clip(np.round(img), 0, 255).astype(np.uint8)
    path = root / "naip" / f"m_3807661_ne_18_{int(naip_gsd * 100):03d}_{dates['naip']}.tif"
    files["naip"].append(write_geotiff(path, naip, naip_crs, trn))
    scene.bounds["naip"] = (nx0, ny1 - nrow * naip_gsd, nx0 + ncol * naip_gsd, ny1)

    # -- labels: polygons, points (EPSG:4326) and a raster ----------------------------------
    inside = (fields[:, 2] > x0 - 200) & (fields[:, 0] < x1 + 200)
    inside &= (fields[:, 3] > y0 - 200) & (fields[:, 1] < y1 + 200)
    kept = fields[inside]
    polys = [shapely.box(*f[:4]).segmentize(50.0) for f in kept]
    cls_names = [names[int(c)] for c in kept[:, 4]]
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
    files["labels"] = [gpkg, write_geotiff(root / "labels.tif", lab, crs, tr, 255)]
    scene.files = files
    return scene
