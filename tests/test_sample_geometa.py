"""Numeric location and date metadata in samples (meta["lonlat"], meta["date"]), and that
they survive collation into the tasks' SampleInfo."""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from bigearthnet_examples import arrange_v1
from pyproj import Transformer
from rasterio.warp import transform as warp_transform
from torch.utils.data import default_collate

from rsmm.datasets import SEN12MS, BigEarthNet, CoRegisteredStack, MeterML
from rsmm.datasets.geometa import date_tensor, days_since_epoch, to_lonlat
from rsmm.datasets.meterml import folder_lonlat
from rsmm.tasks import PretrainTask

TESTS = Path(__file__).parent
SCENE = TESTS / "data" / "stacks" / "scene"


def test_days_since_epoch() -> None:
    assert days_since_epoch("1970-01-02") == 1.0
    assert days_since_epoch("20230605") == (dt.date(2023, 6, 5) - dt.date(1970, 1, 1)).days
    assert np.isnan(days_since_epoch("")) and np.isnan(days_since_epoch(None))
    assert date_tensor("2023-06-05").dtype == torch.float32


def test_to_lonlat_matches_pyproj() -> None:
    got = to_lonlat("EPSG:32618", [350000.0, 360000.0], [4300000.0, 4310000.0])
    lon, lat = Transformer.from_crs(32618, 4326, always_xy=True).transform(
        [350000.0, 360000.0], [4300000.0, 4310000.0]
    )
    np.testing.assert_allclose(got, np.column_stack([lon, lat]), rtol=0, atol=1e-12)


@pytest.fixture(scope="module")
def stack() -> CoRegisteredStack:
    return CoRegisteredStack({m: SCENE / m for m in ("s2", "s1")}, chip_size="160m")


def test_stack_chips_carry_their_centre_and_date(stack: CoRegisteredStack) -> None:
    # --crs auto: every chip of the scene is in its UTM zone, EPSG:32618
    assert (stack.chips["crs"] == "EPSG:32618").all()
    to_ll = Transformer.from_crs("EPSG:32618", 4326, always_xy=True)
    for i in (0, len(stack) - 1):
        meta = stack[i]["meta"]
        xmin, ymin, xmax, ymax = stack.chips[["xmin", "ymin", "xmax", "ymax"]].iloc[i]
        lon, lat = to_ll.transform((xmin + xmax) / 2, (ymin + ymax) / 2)
        assert meta["lonlat"].dtype == torch.float32
        np.testing.assert_allclose(meta["lonlat"].numpy(), [lon, lat], atol=1e-5)
        # S2 first among the modalities: its date (2023-06-05), not S1's (06-03)
        assert stack.chips["date_s2"][i] == "2023-06-05"
        assert meta["date"].item() == (dt.date(2023, 6, 5) - dt.date(1970, 1, 1)).days
    # 160 m chips next to each other: centres 160 m apart on the ground
    ll = torch.stack([stack[i]["meta"]["lonlat"] for i in range(len(stack))])
    from rsmm.losses.kernels import haversine_km

    d = haversine_km(ll.double(), ll.double())
    nearest = (d + 1e9 * torch.eye(len(ll))).min(1).values
    torch.testing.assert_close(nearest, torch.full_like(nearest, 0.160), atol=2e-3, rtol=0)


def test_stack_date_follows_the_modality_order() -> None:
    s1_first = CoRegisteredStack({m: SCENE / m for m in ("s1", "s2")}, chip_size="160m")
    assert s1_first[0]["meta"]["date"].item() == days_since_epoch("2023-06-03")


def test_stack_meta_collates_and_reaches_the_objectives(stack: CoRegisteredStack) -> None:
    batch = default_collate([stack[i] for i in range(3)])
    assert batch["meta"]["lonlat"].shape == (3, 2) and batch["meta"]["date"].shape == (3,)
    info = PretrainTask(backbone="tiny_cnn").sample_info(batch)
    assert set(info.meta) == {"lonlat", "date"}
    assert info.meta["lonlat"] is batch["meta"]["lonlat"]
    # string and nested metadata stay out; no numeric metadata at all is None
    assert PretrainTask(backbone="tiny_cnn").sample_info({"meta": {"id": ["a"]}}).meta is None


def test_meterml_location_from_the_folder_name() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = MeterML(TESTS / "data" / "meterml", split="test", modalities=["s1"])
    sample = ds[0]
    lat, lon = (float(v) for v in Path(sample["meta"]["id"]).name.split("_"))
    np.testing.assert_allclose(sample["meta"]["lonlat"].numpy(), [lon, lat], rtol=1e-6)
    assert folder_lonlat("train_images/train_images_2/42.3314_-83.0458").tolist() == pytest.approx(
        [-83.0458, 42.3314]
    )
    assert folder_lonlat("not_a_place").isnan().all()
    assert folder_lonlat("95.0_10.0").isnan().all()  # no latitude of 95 degrees
    assert default_collate([ds[0], ds[1]])["meta"]["lonlat"].shape == (2, 2)


def test_bigearthnet_real_patch_location_and_date(tmp_path: Path) -> None:
    root = arrange_v1(tmp_path / "v1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = BigEarthNet(root, split="test")
    meta = ds[0]["meta"]
    assert meta["id"] == "S2A_MSIL2A_20171221T112501_56_35"
    assert meta["date"].item() == (dt.date(2017, 12, 21) - dt.date(1970, 1, 1)).days
    band = ds.band_files(0, ds.modalities[0])[0]
    with rasterio.open(band) as src:  # the centre pixel corner of the 120 x 120 grid
        h, w = src.height, src.width
        x, y = src.transform @ (w / 2, h / 2)
        (lon,), (lat,) = warp_transform(src.crs, "EPSG:4326", [x], [y])
    np.testing.assert_allclose(meta["lonlat"].numpy(), [lon, lat], atol=1e-5)
    assert -25 < lon < 45 and 35 < lat < 72  # Europe


def test_sen12ms_location_from_the_geotiff(torchgeo_fixtures: Path) -> None:
    ds = SEN12MS(torchgeo_fixtures / "sen12ms")
    meta = ds[0]["meta"]
    with rasterio.open(ds.path(0, "s2")) as src:
        x, y = src.transform @ (src.width / 2, src.height / 2)
        (lon,), (lat,) = warp_transform(src.crs, "EPSG:4326", [x], [y])
    np.testing.assert_allclose(meta["lonlat"].numpy(), [lon, lat], atol=1e-5)
    assert "date" not in meta  # SEN12MS names only the season
