"""Real Sentinel-2 products as stack sources: per-band JPEG2000 files, SAFE products
(L2A, L1C; folders and zips), GDAL dataset names, radiometric offsets.

The pixels are a real BigEarthNet example patch (bigearthnet-common: code Apache-2.0,
data CDLA-Permissive-1.0) re-encoded losslessly in the layouts real products have
(:mod:`safe_examples`); every chip read is compared with rasterio reads of the
patch's original GeoTIFFs.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import rasterio
from rasterio.windows import from_bounds
from safe_examples import (
    BANDS,
    jp2_folder,
    patch_bands,
    product_name,
    safe_product,
    to_jp2,
)

from rsmm.cli import main
from rsmm.datasets import CoRegisteredStack
from rsmm.errors import DatasetFileError
from rsmm.stacks import build_manifest, read_manifest, write_manifest
from rsmm.stacks.files import absolute_path, relative_path
from rsmm.stacks.products import offset_shifts, read_product
from rsmm.stacks.spec import ModalitySpec, StackSpec, spec_from_dirs

pytest.importorskip("bigearthnet_common")

#: 240 m chips: 24, 12 and 4 pixels of the 10, 20 and 60 m bands; 5 x 5 in the patch
CHIP = ["--chip-size", "240m", "--split", "1,0,0"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The patch's GeoTIFFs and the layouts built from them (built once)."""
    tmp = tmp_path_factory.mktemp("products")
    bands = patch_bands(tmp)
    out: dict[str, Path] = {f"tif_{b}": p for b, p in bands.items()}
    out["jp2"] = jp2_folder(tmp, bands)
    for key, kw in {
        "l2a": {},
        "l2a_zip": {"zipped": True},
        "l1c": {"level": "L1C", "baseline": "0205"},
    }.items():
        (tmp / key).mkdir()
        out[key] = safe_product(tmp / key, bands, **kw)
    return out


def run(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str, str]:
    rc = main(args)
    out, err = capsys.readouterr()
    return rc, out, err


def chip_bounds(chips, i: int) -> tuple[float, ...]:
    """Chip ``i``'s square in its own CRS (the patch's UTM zone)."""
    return tuple(float(chips[c].iloc[i]) for c in ("xmin", "ymin", "xmax", "ymax"))


def expected(data: dict[str, Path], band: str, bounds: tuple[float, ...]) -> np.ndarray:
    """The patch's GeoTIFF pixels of ``band`` inside ``bounds``."""
    with rasterio.open(data[f"tif_{band}"]) as src:
        return src.read(1, window=from_bounds(*bounds, transform=src.transform))


def check_pixels(stack: CoRegisteredStack, data: dict[str, Path], shift: float = 0.0) -> None:
    """Every band of every chip equals the GeoTIFF's pixels (+ ``shift``); the modality
    is read at 10 m, so a 20 m (60 m) pixel fills 2 x 2 (6 x 6) pixels."""
    bands = stack.chip_manifest.meta["modalities"]["s2"]["bands"]
    assert len(stack) == 25
    for i in range(len(stack)):
        arr, _ = stack.read_raw(i)["s2"]
        assert arr.shape == (len(bands), 24, 24)
        bounds = chip_bounds(stack.chips, i)
        for c, band in enumerate(bands):
            want = expected(data, "B09" if band == "B10" else band, bounds)
            k = BANDS.get(band, 60) // 10
            assert want.shape == (24 // k, 24 // k)
            want = np.kron(want, np.ones((k, k))).astype(np.float32) + shift
            np.testing.assert_array_equal(arr[c], want, err_msg=band)


def test_jp2_folder_indexes_without_renaming(
    data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "c.parquet"
    rc, _, err = run(
        capsys, ["manifest", "build", *CHIP, "--s2", str(data["jp2"]), "--out", str(out)]
    )
    assert rc == 0, err
    m = read_manifest(out)
    info = m.meta["modalities"]["s2"]
    assert info["bands"] == [
        "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"
    ]  # fmt: skip
    assert info["separate_files"] and info["offset"] == 0.0 and info["glob"] is None
    assert m.chips["date_s2"].iat[0] == "2017-06-13"
    assert [i["path"] for i in m.meta["ignored"]["s2"]] == [
        str(data["jp2"] / "T33UUP_20170613T101031_TCI.jp2")
    ]  # the true-colour image has no band name: reported, not read
    check_pixels(CoRegisteredStack(out), data)


def test_an_explicit_glob_still_selects_the_files(
    data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "c.parquet"
    glob = ["--s2-glob", "*_B0[234].jp2"]
    rc, _, err = run(
        capsys, ["manifest", "build", *CHIP, "--s2", str(data["jp2"]), *glob, "--out", str(out)]
    )
    assert rc == 0, err
    info = read_manifest(out).meta["modalities"]["s2"]
    assert info["bands"] == ["B02", "B03", "B04"] and info["glob"] == "*_B0[234].jp2"
    rc, _, err = run(
        capsys,
        ["manifest", "build", *CHIP, "--s2", str(data["jp2"]), "--s2-glob", "*.tif",
         "--out", str(tmp_path / "d.parquet")],
    )  # fmt: skip
    assert rc == 2 and "s2: no files matching '*.tif'" in err


@pytest.mark.parametrize("key", ["l2a", "l2a_zip"])
def test_an_l2a_safe_product_is_read_as_delivered(
    data: dict[str, Path], tmp_path: Path, key: str
) -> None:
    product = read_product(data[key])
    assert (product.level, product.tile, product.baseline) == ("L2A", "T33UUP", "04.00")
    assert product.offset == -1000.0 and product.scl is not None and "_SCL_20m" in product.scl
    # each band at its native GSD, not the resampled copies of R20m / R60m
    assert "/R10m/" in product.band_files["B02"] and "/R20m/" in product.band_files["B05"]
    assert "/R60m/" in product.band_files["B01"] and "TCI" not in product.band_files
    # given as the product itself, or as the folder holding it
    for root in (data[key], data[key].parent):
        m = build_manifest(spec_from_dirs({"s2": root}, chip_size="240m", split=(1, 0, 0)))
        info = m.meta["modalities"]["s2"]
        assert info["offset"] == -1000.0 and info["units"] == "reflectance_x1e4"
        assert info["levels"] == ["L2A"] and info["file_offsets"] is None
        assert info["nodata"] == 0.0 and len(info["bands"]) == 12
    out = write_manifest(m, tmp_path / "c.parquet")
    stored = json.loads(pq.read_table(out).column("files_s2")[0].as_py())[0]
    assert not stored.removeprefix("/vsizip/").startswith("/")  # relative to the manifest
    assert stored.startswith("/vsizip/") == (key == "l2a_zip")
    check_pixels(CoRegisteredStack(out), data)


def test_an_l1c_safe_product_has_no_offset_before_baseline_04(data: dict[str, Path]) -> None:
    m = build_manifest(spec_from_dirs({"s2": data["l1c"]}, chip_size="240m", split=(1, 0, 0)))
    info = m.meta["modalities"]["s2"]
    assert info["levels"] == ["L1C"] and info["offset"] == 0.0 and "B10" in info["bands"]
    check_pixels(CoRegisteredStack(m), data)


def test_l1c_and_l2a_products_never_mix_silently(
    data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copytree(data["l1c"], mixed / data["l1c"].name)
    shutil.copy(data["l2a_zip"], mixed)
    args = ["manifest", "build", *CHIP, "--s2", str(mixed), "--out", str(tmp_path / "c.parquet")]
    rc, _, err = run(capsys, args)
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert "L1C (top-of-atmosphere) and L2A (surface reflectance) products are mixed" in err
    assert str(mixed / data["l1c"].name) in err and str(mixed / data["l2a_zip"].name) in err
    # an explicit offset of every product mixes them knowingly
    spec = ModalitySpec(
        "s2",
        str(mixed),
        offsets={product_name("L1C", "0205"): -1000, product_name("L2A", "0400"): -1000},
    )
    m = build_manifest(
        StackSpec(modalities={"s2": spec}, chip_size=(240.0, "m"), split=(1.0, 0.0, 0.0))
    )
    assert m.meta["modalities"]["s2"]["levels"] == ["L1C", "L2A"]
    assert m.meta["modalities"]["s2"]["offset"] == -1000.0


def test_offsets_of_different_baselines_are_harmonised_at_read_time(
    data: dict[str, Path], tmp_path: Path
) -> None:
    """Two L2A products of the patch: baseline 04.00 (offset -1000) and 03.00 (none).
    The modality keeps -1000; the 03.00 product's values are read + 1000."""
    folder = tmp_path / "s2"
    folder.mkdir()
    shutil.copy(data["l2a_zip"], folder)
    bands = {b: data[f"tif_{b}"] for b in BANDS}
    old = safe_product(folder, bands, baseline="0300", zipped=True, sensing="20170623T101031")
    m = build_manifest(spec_from_dirs({"s2": folder}, chip_size="240m", split=(1, 0, 0)))
    info = m.meta["modalities"]["s2"]
    name = old.name[: -len(".zip")]
    assert info["offset"] == -1000.0 and info["file_offsets"] == {name: 0.0}
    # every chip reads the later (03.00) acquisition
    assert set(m.chips["date_s2"]) == {"2017-06-23"}
    out = write_manifest(m, tmp_path / "c.parquet")
    check_pixels(CoRegisteredStack(out), data, shift=1000.0)


def test_offset_shifts_name_the_product_of_each_file() -> None:
    a = "/vsizip//d/A.zip/A.SAFE/GRANULE/g/IMG_DATA/R{gsd:s2}m/T_{band}_{gsd:s2}m.jp2"
    b = "/d/B.SAFE/GRANULE/g/IMG_DATA/T_{band}.jp2"
    assert offset_shifts([a, [b, b]], -1000.0, {"B": 0.0}) == [0.0, 1000.0]
    assert offset_shifts([a], -1000.0, None) is None


@pytest.mark.parametrize(
    "name",
    [
        "/vsizip//data/s2/p.zip/P.SAFE/GRANULE/g/IMG_DATA/R{gsd:s2}m/T_{band}_{gsd:s2}m.jp2",
        "GTIFF_DIR:1:/data/s2/stack.tif",
        "SENTINEL2_L2A:/data/s2/P.SAFE/MTD_MSIL2A.xml:10m:EPSG_32633",
        "/data/s2/T33UUP_20170613T101031_{band}.jp2",
    ],
)
def test_gdal_names_are_stored_relative_to_the_manifest(name: str) -> None:
    rel = relative_path(name, "/data/out")
    assert "/data/s2" not in rel and "../s2/" in rel
    back = absolute_path(rel, "/data/out")  # a plain path keeps its "..", as before
    assert back == name or os.path.normpath(back) == name


def test_a_gdal_subdataset_string_is_a_source(data: dict[str, Path], tmp_path: Path) -> None:
    """A multi-band GeoTIFF with band descriptions (as GDAL's SENTINEL2 driver writes
    them), given as a subdataset string."""
    path = tmp_path / "stack.tif"
    with rasterio.open(data["tif_B02"]) as src:
        profile = src.profile
    profile.update(count=3, driver="GTiff")
    with rasterio.open(path, "w", **profile) as dst:
        for i, band in enumerate(("B04", "B03", "B02"), 1):
            with rasterio.open(data[f"tif_{band}"]) as src:
                dst.write(src.read(1), i)
            dst.set_band_description(i, f"B{band[2]}, central wavelength 665 nm")
    m = build_manifest(
        spec_from_dirs({"s2": f"GTIFF_DIR:1:{path}"}, chip_size="240m", split=(1, 0, 0))
    )
    assert m.meta["modalities"]["s2"]["bands"] == ["B04", "B03", "B02"] and len(m.chips) == 25
    stack = CoRegisteredStack(m)
    arr, _ = stack.read_raw(7)["s2"]
    bounds = chip_bounds(stack.chips, 7)
    np.testing.assert_array_equal(arr[2], expected(data, "B02", bounds))


def test_a_product_with_an_unreadable_name_is_named(tmp_path: Path, data: dict[str, Path]) -> None:
    bad = tmp_path / "S2A_MSIL2A_garbage.SAFE"
    shutil.copytree(data["l2a"], bad)
    with pytest.raises(DatasetFileError, match=r"S2A_MSIL2A_garbage\.SAFE"):
        read_product(bad)


def test_the_jpeg2000_copies_are_lossless(tmp_path: Path, data: dict[str, Path]) -> None:
    to_jp2(data["tif_B02"], tmp_path / "x.jp2")
    with rasterio.open(tmp_path / "x.jp2") as a, rasterio.open(data["tif_B02"]) as b:
        np.testing.assert_array_equal(a.read(), b.read())


def test_the_scl_of_l2a_products_is_a_cloud_layer(data: dict[str, Path]) -> None:
    from rsmm.stacks.spec import CloudSpec

    root = data["l2a_zip"].parent
    spec = spec_from_dirs(
        {"s2": root}, chip_size="240m", split=(1, 0, 0), cloud=CloudSpec(str(root)), max_cloud=1.0
    )
    m = build_manifest(spec)
    scl = read_product(data["l2a_zip"]).scl
    fractions = m.chips["cloud_fraction"].to_numpy()
    assert 0 < fractions.min() < fractions.max() < 1  # the chips differ: a real test
    with rasterio.open(scl) as src:
        for i, got in enumerate(m.chips["cloud_fraction"]):
            v = src.read(1, window=from_bounds(*chip_bounds(m.chips, i), transform=src.transform))
            valid = v != 0
            want = (np.isin(v, (3, 8, 9, 10)) & valid).sum() / valid.sum()
            assert got == pytest.approx(want)
    with pytest.raises(DatasetFileError, match="carry none"):
        build_manifest(
            spec_from_dirs(
                {"s2": root}, chip_size="240m", split=(1, 0, 0), cloud=CloudSpec(str(data["l1c"]))
            )
        )
