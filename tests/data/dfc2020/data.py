#!/usr/bin/env python3
"""Generate a tiny fake DFC2020 in the real on-disk layout (TorchGeo's technique).

Run from anywhere: ``python tests/data/dfc2020/data.py``. It rewrites
``ROIs0000_validation`` and ``ROIs0000_test`` beside this file::

    ROIs0000_<release>/{s1_0,s2_0,lc_0,dfc_0}/ROIs0000_<release>_<src>_0_p<n>.tif

with the real dtypes and band counts: S1 float32 dB (VV, VH), S2 uint16 13 bands
(B01..B08, B8A, B09..B12), lc uint8 4 bands (IGBP first), dfc uint8 1 band with
values 1..10 and 255 (0 also appears as no data). 256 x 256 pixels, UTM zone 31N,
10 m pixels. Content is blocky (constant 16- or 32-pixel blocks) so that the
deflate-compressed files stay small.

:data:`PATCHES` states the majority dfc value of every patch; the tests check the
dataset's labels against it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

from rsmm.io import write_geotiff

SIZE = 256
CRS_UTM = CRS.from_epsg(32631)
ROOT = Path(__file__).resolve().parent

#: ``{release: [(patch number, majority dfc value or None, kind)]}``; kind is
#: ``"plain"``, ``"nan_s1"`` (NaN planted in S1), ``"many_invalid"`` (255 is the most
#: frequent value but must be ignored) or ``"all_invalid"`` (only 0 / 255).
PATCHES: dict[str, list[tuple[int, int | None, str]]] = {
    "validation": [
        (1, 1, "plain"),
        (2, 1, "plain"),
        (9, 1, "plain"),
        (10, 1, "plain"),
        (100, 1, "plain"),
        (11, 4, "plain"),
        (12, 4, "nan_s1"),
        (13, 4, "plain"),
        (14, 4, "plain"),
        (15, 4, "plain"),
        (20, 10, "plain"),
        (21, 10, "many_invalid"),
        (22, 10, "plain"),
        (23, 10, "plain"),
        (24, 10, "plain"),
        (30, 3, "plain"),  # Savanna: dropped with num_classes=8
        (31, 8, "plain"),  # Snow/Ice: dropped with num_classes=8
        (32, None, "all_invalid"),
    ],
    "test": [
        (1, 2, "plain"),
        (2, 5, "plain"),
        (3, 6, "plain"),
        (4, 7, "plain"),
        (5, 9, "plain"),
    ],
}

#: NaN pixels planted in the ``nan_s1`` patch: VV rows 0-1 x cols 0-9, VH row 0 x cols 0-4.
NAN_PIXELS = 2 * 10 + 1 * 5


def blocky(rng: np.random.Generator, bands: int, cells: int, low: float, high: float) -> np.ndarray:
    """``bands x SIZE x SIZE`` float64 image of constant ``SIZE/cells`` blocks."""
    coarse = rng.uniform(low, high, size=(bands, cells, cells))
    k = SIZE // cells
    return np.kron(coarse, np.ones((1, k, k)))


def dfc_mask(rng: np.random.Generator, majority: int | None, kind: str) -> np.ndarray:
    """A ``SIZE x SIZE`` uint8 mask of 16-pixel blocks whose valid majority is ``majority``."""
    cells = 16
    n = cells * cells
    if kind == "all_invalid":
        values = rng.choice(np.array([0, 255]), size=n)
    else:
        others = np.array([v for v in range(1, 11) if v != majority] + [0, 255])
        if kind == "many_invalid":
            n_major, n_invalid = 70, 140
        else:
            n_major, n_invalid = 100, 0
        rest = rng.choice(others[:-2], size=n - n_major - n_invalid)
        values = np.concatenate([np.full(n_major, majority), np.full(n_invalid, 255), rest])
        values = rng.permutation(values)
    grid = values.reshape(cells, cells).astype(np.uint8)
    return np.kron(grid, np.ones((SIZE // cells, SIZE // cells), dtype=np.uint8))


def write(path: Path, array: np.ndarray, transform: rasterio.Affine) -> None:
    """Write a ``C x H x W`` array as a deflate-compressed, single-tile GeoTIFF."""
    write_geotiff(path, array, CRS_UTM, transform, tiled=True, blockxsize=SIZE, blockysize=SIZE)


def make_patch(release: str, number: int, majority: int | None, kind: str) -> None:
    """Write the four files of one patch."""
    rng = np.random.default_rng((number, list(PATCHES).index(release)))
    base = ROOT / f"ROIs0000_{release}"
    transform = from_origin(400000 + 2560 * number, 5500000, 10, 10)

    s1 = blocky(rng, 2, 8, -20, -5)
    s1[1] -= 7  # VH is weaker than VV
    s1 = np.clip(s1, -30, 5).astype(np.float32)
    if kind == "nan_s1":
        s1[0, 0:2, 0:10] = np.nan
        s1[1, 0, 0:5] = np.nan
    s2 = np.round(blocky(rng, 13, 8, 0, 10000)).astype(np.uint16)
    lc = np.concatenate(
        [
            np.round(blocky(rng, 1, 8, 1, 17)),  # IGBP
            np.round(blocky(rng, 3, 8, 1, 40)),  # LCCS land cover / land use / hydrology
        ]
    ).astype(np.uint8)
    dfc = dfc_mask(rng, majority, kind)[None]

    for src, array in (("s1", s1), ("s2", s2), ("lc", lc), ("dfc", dfc)):
        name = f"ROIs0000_{release}_{src}_0_p{number}.tif"
        write(base / f"{src}_0" / name, array, transform)


def main() -> None:
    for release, patches in PATCHES.items():
        shutil.rmtree(ROOT / f"ROIs0000_{release}", ignore_errors=True)
        for number, majority, kind in patches:
            make_patch(release, number, majority, kind)


if __name__ == "__main__":
    main()
