"""Real Sentinel-2 bands in the layouts real products have: per-band JPEG2000 files and
SAFE trees (L2A, L1C; folders and zips).

The pixels are those of a real BigEarthNet example patch
(``S2A_MSIL2A_20170613T101031_87_48``, tile T33UUP, 1.2 x 1.2 km, one GeoTIFF per band
at native GSD) from the ``bigearthnet-common`` wheel (code licence Apache-2.0; the
BigEarthNet data licence is CDLA-Permissive-1.0). :func:`patch_bands` unpacks its band
GeoTIFFs; the builders re-encode them as lossless JPEG2000 (``QUALITY=100``,
``REVERSIBLE=YES``: they read back bit-exactly) under the names real products use:

- :func:`jp2_folder`: ``T33UUP_20170613T101031_B02.jp2`` ... plus a true-colour image
  (``_TCI.jp2``) that carries no band name;
- :func:`safe_product`: ``S2A_MSIL<level>_<date>_N<baseline>_R022_T33UUP_<date>.SAFE``
  with ``MTD_MSIL2A.xml`` / ``MTD_MSIL1C.xml`` (``BOA_ADD_OFFSET`` / ``RADIO_ADD_OFFSET``
  of -1000 from baseline 04.00 on) and the granule's ``MTD_TL.xml``, complete enough
  for GDAL's SENTINEL2 driver to open the product and list its 10m / 20m / 60m
  subdatasets (:mod:`safe_metadata`), ``GRANULE/<granule>/IMG_DATA``: L2A with
  ``R10m``/``R20m``/``R60m`` folders where, as in real L2A products, the coarser folders
  hold the finer bands again, resampled (2 x 2 / 6 x 6 block means, so a reader that
  takes a band at the wrong GSD gets other values), plus TCI, AOT, WVP and SCL (B04's values modulo
  12, so some pixels are cloud classes); L1C
  with every band once, B10 (which L2A patches lack) a copy of B09. A ``QI_DATA`` mask
  named after a band is not a raster at all: reading it would fail. ``zipped=True``
  zips the product (``<name>.zip``) and removes the folder.
"""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from importlib import resources
from pathlib import Path

import numpy as np
import rasterio
from rasterio.shutil import copy as rio_copy
from safe_metadata import product_metadata, tile_metadata

PATCH = "S2A_MSIL2A_20170613T101031_87_48"
TILE, SENSING = "T33UUP", "20170613T101031"
#: the patch's bands (L2A: no B10) and their native GSD in metres
BANDS = {
    "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
    "B08": 10, "B8A": 20, "B09": 60, "B11": 20, "B12": 20,
}  # fmt: skip
L2A_FOLDERS = {
    10: ("B02", "B03", "B04", "B08", "TCI", "AOT", "WVP"),
    20: ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B11", "B12", "SCL", "TCI"),
    60: ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B09", "B11", "B12", "SCL"),
}


def patch_bands(tmp: Path) -> dict[str, Path]:
    """Unpack the patch's band GeoTIFFs into ``tmp/geotiff`` (``{band: path}``)."""
    out = tmp / "geotiff"
    out.mkdir(parents=True, exist_ok=True)
    archive = Path(str(resources.files("bigearthnet_common"))) / "BigEarthNet-S2-Example.tar.bz2"
    wanted = {f"BigEarthNet-S2-Example/{PATCH}/{PATCH}_{b}.tif": b for b in BANDS}
    paths = {}
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if member.name in wanted:
                member.name = Path(member.name).name
                tar.extract(member, out, filter="data")
                paths[wanted[f"BigEarthNet-S2-Example/{PATCH}/{member.name}"]] = out / member.name
    assert len(paths) == len(BANDS), sorted(paths)
    return paths


def to_jp2(src: Path, dst: Path) -> Path:
    """Lossless JPEG2000 copy of ``src``."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    rio_copy(str(src), str(dst), driver="JP2OpenJPEG", QUALITY=100, REVERSIBLE="YES")
    return dst


def _resampled(
    src: Path, dst: Path, gsd: int, native: int, count: int = 1, classes: bool = False
) -> None:
    """``dst`` (JPEG2000): ``src`` at ``gsd`` metres (block means, or repeated pixels),
    ``count`` bands; ``classes``: values modulo 12 (SCL classes 0-11)."""
    with rasterio.open(src) as s:
        a, profile = s.read(1).astype(np.float64), s.profile
    if gsd > native:
        k = gsd // native
        a = a.reshape(a.shape[0] // k, k, a.shape[1] // k, k).mean(axis=(1, 3))
    elif gsd < native:
        a = np.kron(a, np.ones((native // gsd,) * 2))
    if classes:
        a = np.round(a) % 12
    t = profile["transform"]
    profile.update(
        driver="GTiff",
        width=a.shape[1],
        height=a.shape[0],
        count=count,
        dtype="uint16",
        transform=rasterio.Affine(gsd, 0, t.c, 0, -gsd, t.f),
    )
    tmp = dst.with_suffix(".tmp.tif")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(tmp, "w", **profile) as d:
        for i in range(1, count + 1):
            d.write(np.round(a).astype(np.uint16), i)
    to_jp2(tmp, dst)
    tmp.unlink()


def jp2_folder(tmp: Path, bands: dict[str, Path]) -> Path:
    """A folder of real-layout per-band JPEG2000 files (and a TCI image)."""
    out = tmp / "s2_jp2"
    for b, path in bands.items():
        to_jp2(path, out / f"{TILE}_{SENSING}_{b}.jp2")
    _resampled(bands["B04"], out / f"{TILE}_{SENSING}_TCI.jp2", 10, 10, count=3)
    return out


def _write_metadata(
    safe: Path, granule: Path, level: str, baseline: str, sensing: str, b02: Path
) -> None:
    """The product's ``MTD_MSI<level>.xml`` and its granule's ``MTD_TL.xml``
    (:mod:`safe_metadata`: complete enough for GDAL's SENTINEL2 driver), the tile's
    grid that of the patch's B02 file ``b02``."""
    images = sorted(
        f.relative_to(safe).with_suffix("").as_posix()
        for f in (granule / "IMG_DATA").rglob("*.jp2")
    )
    s = sensing
    start = f"{s[:4]}-{s[4:6]}-{s[6:8]}T{s[9:11]}:{s[11:13]}:{s[13:15]}.024Z"
    text = product_metadata(level, baseline, safe.stem, start, granule.name, images)
    (safe / f"MTD_MSI{level}.xml").write_text(text)
    with rasterio.open(b02) as src:
        epsg, ulx, uly, size = src.crs.to_epsg(), src.transform.c, src.transform.f, src.width
    tile = f"S2A_OPER_MSI_{level}_TL_{TILE}_N{baseline[:2]}.{baseline[2:]}"
    (granule / "MTD_TL.xml").write_text(tile_metadata(level, tile, epsg, ulx, uly, size))


def product_name(level: str = "L2A", baseline: str = "0400", sensing: str = SENSING) -> str:
    """The product's name (without ``.SAFE``)."""
    return f"S2A_MSI{level}_{sensing}_N{baseline}_R022_{TILE}_{sensing[:8]}T101032"


def safe_product(
    tmp: Path,
    bands: dict[str, Path],
    level: str = "L2A",
    baseline: str = "0400",
    zipped: bool = False,
    sensing: str = SENSING,
) -> Path:
    """A SAFE product of the patch under ``tmp`` (see the module docstring), sensed at
    ``sensing`` (``YYYYMMDDTHHMMSS``; the pixels stay the patch's)."""
    name = product_name(level, baseline, sensing)
    safe = tmp / f"{name}.SAFE"
    safe.mkdir(parents=True)
    granule = safe / "GRANULE" / f"{level}_{TILE}_A010379_{sensing[:8]}T101032"
    img = granule / "IMG_DATA"
    qi = granule / "QI_DATA"
    qi.mkdir(parents=True)
    (qi / "MSK_DETFOO_B02.jp2").write_bytes(b"not a raster")
    if level == "L2A":
        for gsd, names in L2A_FOLDERS.items():
            for b in names:
                dst = img / f"R{gsd}m" / f"{TILE}_{sensing}_{b}_{gsd}m.jp2"
                if BANDS.get(b) == gsd:
                    to_jp2(bands[b], dst)
                else:  # a band at another GSD, or TCI/AOT/WVP/SCL made of B04's values
                    src = bands.get(b, bands["B04"])
                    native = BANDS.get(b, 10)
                    count = 3 if b == "TCI" else 1
                    _resampled(src, dst, gsd, native, count, classes=b == "SCL")
    else:
        for b, path in {**bands, "B10": bands["B09"]}.items():
            to_jp2(path, img / f"{TILE}_{sensing}_{b}.jp2")
    _write_metadata(safe, granule, level, baseline, sensing, bands["B02"])
    if not zipped:
        return safe
    archive = tmp / f"{name}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as z:
        for f in sorted(safe.rglob("*")):
            if f.is_file():
                z.write(f, f.relative_to(tmp).as_posix())
    shutil.rmtree(safe)
    return archive
