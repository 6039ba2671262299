#!/usr/bin/env python3
"""Generate a tiny fake BigEarthNet v2 (reBEN) in the real on-disk layout (TorchGeo's technique).

Run from anywhere: ``python tests/data/bigearthnet/data.py``. It rewrites ``v2/`` beside
this file::

    v2/metadata.parquet      patch_id, labels, split, country, s1_name, s2v1_name,
                             contains_seasonal_snow, contains_cloud_or_shadow
    v2/BigEarthNet-S2/<S2 product>/<S2 patch>/<S2 patch>_B??.tif   12 L2A bands, uint16
    v2/BigEarthNet-S1/<S1 product>/<S1 patch>/<S1 patch>_V?.tif    VV, VH, float32 dB

with the real band sizes (10 m bands 120 x 120, 20 m 60 x 60, 60 m 20 x 20 pixels over
the same 1.2 km), UTM CRSs and patch names. Pixel values are blocky (20 x 20 constant
blocks) so that the deflate-compressed files stay small. :data:`PATCHES` states each
patch's split (train, val, test), labels and kind; the tests check the dataset against it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from rasterio.transform import from_origin

from rsmm.io import write_geotiff

ROOT = Path(__file__).resolve().parent / "v2"
S2_BANDS = {
    "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20,
    "B07": 20, "B08": 10, "B8A": 20, "B09": 60, "B11": 20, "B12": 20,
}  # fmt: skip
S1_BANDS = ("VV", "VH")
EXTENT = 1200  # metres

#: ``(S2 patch, S1 patch, split, labels, country, kind)``; kind is ``"plain"``,
#: ``"snow"`` / ``"cloud"`` (flagged in the metadata) or ``"no_s1"`` (S1 files missing).
PATCHES: list[tuple[str, str, str, list[str], str, str]] = [
    (
        "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_26_57",
        "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_61_39",
        "train",
        ["Arable land", "Pastures"],
        "Austria",
        "plain",
    ),
    (
        "S2B_MSIL2A_20170615T102019_N9999_R122_T32TNS_45_23",
        "S1A_IW_GRDH_1SDV_20170615T170156_32TNS_77_12",
        "train",
        ["Coniferous forest", "Inland waters"],
        "Switzerland",
        "plain",
    ),
    (
        "S2A_MSIL2A_20170617T113321_N9999_R080_T29UPU_36_85",
        "S1A_IW_GRDH_1SDV_20170617T064724_29UPU_36_85",
        "train",
        ["Urban fabric", "Pastures", "Mixed forest"],
        "Ireland",
        "plain",
    ),
    (
        "S2B_MSIL2A_20180204T094161_N9999_R036_T35VPK_57_38",
        "S1A_IW_GRDH_1SDV_20180204T043253_35VPK_57_38",
        "train",
        ["Mixed forest"],
        "Finland",
        "snow",
    ),
    (
        "S2A_MSIL2A_20170704T112111_N9999_R037_T29SNC_12_40",
        "S1B_IW_GRDH_1SDV_20170704T183436_29SNC_12_40",
        "train",
        ["Permanent crops"],
        "Portugal",
        "no_s1",
    ),
    (
        "S2B_MSIL2A_20170905T100029_N9999_R122_T33UXP_70_11",
        "S1A_IW_GRDH_1SDV_20170906T164248_33UXP_70_11",
        "val",
        ["Arable land", "Coniferous forest"],
        "Austria",
        "plain",
    ),
    (
        "S2A_MSIL2A_20171221T112501_N9999_R037_T29SND_56_35",
        "S1A_IW_GRDH_1SDV_20171221T064238_29SND_56_35",
        "test",
        ["Marine waters", "Beaches, dunes, sands"],
        "Portugal",
        "plain",
    ),
    (
        "S2B_MSIL2A_20170924T093020_N9999_R136_T35VPK_69_24",
        "S1A_IW_GRDH_1SDV_20170925T043256_35VPK_69_24",
        "test",
        ["Broad-leaved forest", "Transitional woodland, shrub"],
        "Finland",
        "plain",
    ),
    (
        "S2A_MSIL2A_20170818T100031_N9999_R122_T33TWN_30_30",
        "S1A_IW_GRDH_1SDV_20170818T165105_33TWN_30_30",
        "test",
        ["Arable land"],
        "Austria",
        "cloud",
    ),
]


def blocky(rng: np.random.Generator, size: int, low: float, high: float) -> np.ndarray:
    """A ``size x size`` array of 20 x 20 constant blocks."""
    n = max(1, size // 20)
    return np.kron(rng.uniform(low, high, (size // n, size // n)), np.ones((n, n)))


def write_patch(n: int, s2: str, s1: str, kind: str) -> None:
    rng = np.random.default_rng(n)
    zone = int(s1.split("_")[-3][:2])
    crs = f"EPSG:326{zone:02d}"
    left, top = 400000 + 1200 * n, 5300000.0
    folder = ROOT / "BigEarthNet-S2" / s2.rsplit("_", 2)[0] / s2
    for band, gsd in S2_BANDS.items():
        size = EXTENT // gsd
        arr = blocky(rng, size, 0, 6000).astype(np.uint16)[None]
        write_geotiff(folder / f"{s2}_{band}.tif", arr, crs, from_origin(left, top, gsd, gsd))
    if kind == "no_s1":
        return
    folder = ROOT / "BigEarthNet-S1" / s1.rsplit("_", 3)[0] / s1
    for band in S1_BANDS:
        arr = blocky(rng, 120, -30, 0).astype(np.float32)[None]
        write_geotiff(folder / f"{s1}_{band}.tif", arr, crs, from_origin(left, top, 10, 10))


def main() -> None:
    if ROOT.exists():
        shutil.rmtree(ROOT)
    for n, (s2, s1, _, _, _, kind) in enumerate(PATCHES):
        write_patch(n, s2, s1, kind)
    rows = [
        {
            "patch_id": s2,
            "labels": labels,
            "split": {"val": "validation"}.get(split, split),  # reBEN's split names
            "country": country,
            "s1_name": s1,
            "s2v1_name": "_".join(s2.split("_")[:3] + s2.split("_")[-2:]),
            "contains_seasonal_snow": kind == "snow",
            "contains_cloud_or_shadow": kind == "cloud",
        }
        for s2, s1, split, labels, country, kind in PATCHES
    ]
    pd.DataFrame(rows).to_parquet(ROOT / "metadata.parquet", index=False)


if __name__ == "__main__":
    main()
