"""A subdataset of GDAL's SENTINEL2 driver as a stack source, and per-product / per-file
radiometric offsets from the command line.

The product is a real BigEarthNet example patch (bigearthnet-common: code Apache-2.0,
data CDLA-Permissive-1.0) re-encoded losslessly in a SAFE tree whose metadata GDAL's
SENTINEL2 driver opens (:mod:`safe_examples`, :mod:`safe_metadata`); every chip read
is compared with rasterio reads of the patch's original band GeoTIFFs.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import rasterio
from rasterio.windows import from_bounds
from safe_examples import patch_bands, product_name, safe_product

from rsmm.cli import main
from rsmm.datasets import CoRegisteredStack
from rsmm.errors import ConfigError, DatasetFileError
from rsmm.stacks import read_manifest
from rsmm.stacks.offsets import offset_shifts, parse_offsets
from rsmm.stacks.products import read_subdataset
from rsmm.stacks.spec import ModalitySpec, spec_from_dict

pytest.importorskip("bigearthnet_common")

#: 240 m chips: 24, 12 and 4 pixels of the 10, 20 and 60 m bands; 5 x 5 in the patch
CHIP = ["--chip-size", "240m", "--split", "1,0,0"]
#: the spectral bands of each L2A subdataset, in the driver's order
RESOLUTIONS = {
    "10m": ["B04", "B03", "B02", "B08"],
    "20m": ["B05", "B06", "B07", "B8A", "B11", "B12"],
    "60m": ["B01", "B09"],
}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The patch's GeoTIFFs, an L2A product (baseline 04.00), its zip and an L1C
    product (baseline 02.05) of them (built once)."""
    tmp = tmp_path_factory.mktemp("subdataset")
    bands = patch_bands(tmp)
    out: dict[str, Path] = {f"tif_{b}": p for b, p in bands.items()}
    for key, kw in {
        "l2a": {},
        "l2a_zip": {"zipped": True},
        "l1c": {"level": "L1C", "baseline": "0205", "sensing": "20170623T101031"},
    }.items():
        (tmp / key).mkdir()
        out[key] = safe_product(tmp / key, bands, **kw)
    return out


def subdataset(product: Path, resolution: str = "10m") -> str:
    """GDAL's subdataset string of ``product`` (a .SAFE folder or its zip)."""
    level = "L1C" if "_MSIL1C_" in product.name else "L2A"
    if product.suffix == ".zip":
        xml = f"/vsizip/{product}/{product.stem}.SAFE/MTD_MSI{level}.xml"
    else:
        xml = f"{product}/MTD_MSI{level}.xml"
    return f"SENTINEL2_{level}:{xml}:{resolution}:EPSG_32633"


def run(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str, str]:
    rc = main(args)
    out, err = capsys.readouterr()
    return rc, out, err


def build(capsys: pytest.CaptureFixture[str], out: Path, *args: str) -> tuple[int, str]:
    rc, _, err = run(capsys, ["manifest", "build", *CHIP, *args, "--out", str(out)])
    return rc, err


def check_pixels(stack: CoRegisteredStack, data: dict[str, Path], shift: float = 0.0) -> None:
    """Every band of every chip equals the band GeoTIFF's pixels (+ ``shift``): the
    chips lie on the files' grid, so nothing is resampled."""
    bands = stack.chip_manifest.meta["modalities"]["s2"]["bands"]
    for i in range(len(stack)):
        arr, _ = stack.read_raw(i)["s2"]
        bounds = tuple(float(stack.chips[c].iloc[i]) for c in ("xmin", "ymin", "xmax", "ymax"))
        for c, band in enumerate(bands):
            with rasterio.open(data[f"tif_{band}"]) as src:
                want = src.read(1, window=from_bounds(*bounds, transform=src.transform))
            assert arr[c].shape == want.shape
            np.testing.assert_array_equal(arr[c], want.astype(np.float32) + shift, err_msg=band)


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_gdal_opens_the_example_product_and_lists_its_subdatasets(
    data: dict[str, Path],
) -> None:
    with rasterio.open(data["l2a"] / "MTD_MSIL2A.xml") as src:
        assert src.driver == "SENTINEL2"
        assert src.subdatasets == [subdataset(data["l2a"], r) for r in (*RESOLUTIONS, "TCI")]
    with rasterio.open(data["l2a_zip"]) as src:  # the zip as downloaded
        assert src.subdatasets[0] == subdataset(data["l2a_zip"])
    with rasterio.open(subdataset(data["l2a"])) as src:
        names = [d.split(",")[0] for d in src.descriptions]
        assert names == ["B4", "B3", "B2", "B8", "AOT", "WVP"]
        # the driver applies and reports no offset: rsmm reads it from the metadata
        assert src.offsets == (0.0,) * 6 and src.scales == (1.0,) * 6
        with rasterio.open(data["tif_B02"]) as tif:
            np.testing.assert_array_equal(src.read(3), tif.read(1))


def test_the_product_of_a_subdataset_is_read_from_its_metadata(data: dict[str, Path]) -> None:
    for key in ("l2a", "l2a_zip"):
        p = read_subdataset(subdataset(data[key], "20m"))
        assert p is not None and p.path == str(data[key])
        assert (p.name, p.level, p.baseline, p.offset) == (product_name(), "L2A", "04.00", -1000)
        assert p.date.isoformat() == "2017-06-13T00:00:00"
    old = read_subdataset(subdataset(data["l1c"]))
    assert old is not None and (old.level, old.baseline, old.offset) == ("L1C", "02.05", 0.0)
    assert read_subdataset(f"GTIFF_DIR:1:{data['tif_B02']}") is None
    with pytest.raises(DatasetFileError, match="cannot read the product metadata"):
        read_subdataset(subdataset(data["l2a"]).replace(data["l2a"].name, "gone.SAFE"))


@pytest.mark.parametrize("resolution", list(RESOLUTIONS))
def test_a_sentinel2_subdataset_is_a_source_of_manifest_build(
    data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], resolution: str
) -> None:
    out = tmp_path / "c.parquet"
    rc, err = build(capsys, out, "--s2", subdataset(data["l2a"], resolution))
    assert rc == 0, err
    m = read_manifest(out)
    info = m.meta["modalities"]["s2"]
    # bands named by the driver's band descriptions; AOT, WVP, SCL... are not read
    assert info["bands"] == RESOLUTIONS[resolution]
    assert info["band_indexes"] == list(range(1, len(RESOLUTIONS[resolution]) + 1))
    assert info["gsd"] == float(resolution[:-1]) and len(m.chips) == 25
    # level, offset and date from the product; nodata 0 as for SAFE products
    assert info["offset"] == -1000.0 and info["levels"] == ["L2A"]
    assert info["file_offsets"] is None and info["nodata"] == 0.0
    assert set(m.chips["date_s2"]) == {"2017-06-13"}
    check_pixels(CoRegisteredStack(out), data)


def test_a_zipped_subdataset_is_stored_relative_to_the_manifest(
    data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "c.parquet"
    rc, err = build(capsys, out, "--s2", subdataset(data["l2a_zip"]))
    assert rc == 0, err
    stored = json.loads(pq.read_table(out).column("files_s2")[0].as_py())[0]
    assert stored.startswith("SENTINEL2_L2A:/vsizip/../") and str(tmp_path) not in stored
    assert read_manifest(out).meta["modalities"]["s2"]["offset"] == -1000.0
    check_pixels(CoRegisteredStack(out), data)


def test_the_offset_option_overrides_a_subdatasets_own(
    data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "c.parquet"
    sd = subdataset(data["l1c"])
    rc, err = build(capsys, out, "--s2", sd)
    assert rc == 0, err
    info = read_manifest(out).meta["modalities"]["s2"]
    assert info["offset"] == 0.0 and info["levels"] == ["L1C"]  # before baseline 04.00
    rc, err = build(capsys, out, "--overwrite", "--s2", sd, "--s2-offset", "S2A_MSIL1C_*=-1000")
    assert rc == 0, err
    assert read_manifest(out).meta["modalities"]["s2"]["offset"] == -1000.0


def mixed_folder(tmp: Path, data: dict[str, Path]) -> Path:
    """The L1C product (sensed 2017-06-23) and the zipped L2A one (2017-06-13)."""
    folder = tmp / "mixed"
    folder.mkdir()
    shutil.copytree(data["l1c"], folder / data["l1c"].name)
    shutil.copy(data["l2a_zip"], folder)
    return folder


def test_per_product_offsets_on_the_command_line_mix_l1c_and_l2a(
    data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = mixed_folder(tmp_path, data)
    out = tmp_path / "c.parquet"
    rc, err = build(capsys, out, "--s2", str(folder))
    assert rc == 2 and "products are mixed" in err and "--s2-offset" in err
    # repeated: each product's offset by a pattern of its name or its file's name
    rc, err = build(
        capsys, out, "--s2", str(folder), "--s2-offset", "S2A_MSIL1C_*=-1000",
        "--s2-offset", "*MSIL2A*.zip=-1000",
    )  # fmt: skip
    assert rc == 0, err
    info = read_manifest(out).meta["modalities"]["s2"]
    assert info["levels"] == ["L1C", "L2A"] and info["offset"] == -1000.0
    assert info["file_offsets"] is None
    # comma separated, a plain offset for the products no pattern matches
    rc, err = build(
        capsys, out, "--overwrite", "--s2", str(folder), "--s2-offset", "S2A_MSIL1C_*=0,-1000"
    )
    assert rc == 0, err
    m = read_manifest(out)
    info = m.meta["modalities"]["s2"]
    assert info["offset"] == -1000.0  # a tie of 0 and -1000: the lower
    assert info["file_offsets"] == {product_name("L1C", "0205", "20170623T101031"): 0.0}
    # the chips read the later (L1C) acquisition, + 1000 to bring it to -1000
    assert set(m.chips["date_s2"]) == {"2017-06-23"}
    stack = CoRegisteredStack(out)
    assert stack.chip_manifest.meta["modalities"]["s2"]["bands"][1] == "B02"
    arr, _ = stack.read_raw(0)["s2"]
    bounds = tuple(float(stack.chips[c].iloc[0]) for c in ("xmin", "ymin", "xmax", "ymax"))
    with rasterio.open(data["tif_B02"]) as src:
        want = src.read(1, window=from_bounds(*bounds, transform=src.transform))
    np.testing.assert_array_equal(arr[1], want.astype(np.float32) + 1000)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["S2B_*=-1000"], r"--s2-offset / offsets: of s2: pattern 'S2B_\*' matches no"),
        (
            ["S2A_*=0,*MSIL1C*=-1000"],
            r"patterns 'S2A_\*' and '\*MSIL1C\*' give .*MSIL1C.* different offsets",
        ),
    ],
)
def test_offset_patterns_are_checked_against_the_products(
    data: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    values: list[str],
    message: str,
) -> None:
    folder = mixed_folder(tmp_path, data)
    args = [a for v in values for a in ("--s2-offset", v)]
    rc, err = build(capsys, tmp_path / "c.parquet", "--s2", str(folder), *args)
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert re.search(message, err), err


def test_per_file_offsets_of_loose_rasters_are_applied_when_read(
    data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Loose per-band GeoTIFFs of two dates (no product metadata): the later one's
    offset 0 given by a pattern, the others -1000; the reader shifts it by + 1000."""
    folder = tmp_path / "s2"
    folder.mkdir()
    for date in ("20170613", "20170623"):
        for band in ("B02", "B03", "B04"):
            shutil.copy(data[f"tif_{band}"], folder / f"T33UUP_{date}T101031_{band}.tif")
    out = tmp_path / "c.parquet"
    # a list starting with "-" is written with "=" (else argparse takes it for an option)
    rc, err = build(capsys, out, "--s2", str(folder), "--s2-offset=-1000,*_20170623T*=0")
    assert rc == 0, err
    m = read_manifest(out)
    info = m.meta["modalities"]["s2"]
    assert info["offset"] == -1000.0
    assert info["file_offsets"] == {"T33UUP_20170623T101031_{band}.tif": 0.0}
    assert set(m.chips["date_s2"]) == {"2017-06-23"}
    check_pixels(CoRegisteredStack(out), data, shift=1000.0)


def test_offset_shifts_name_loose_files_by_their_file_names() -> None:
    keys = {"T_20170623_{band}.tif": 0.0, "scene.tif": 500.0}
    entries = [["/d/T_20170623_B02.tif"], "/d/x/scene.tif", "/d/other.tif"]
    assert offset_shifts(entries, -1000.0, keys) == [1000.0, 1500.0, 0.0]


def test_offset_option_values() -> None:
    assert parse_offsets(["-1000"], "--s2-offset") == (-1000.0, None)
    assert parse_offsets(["S2A_MSIL1C_*=0, -1000", "a=b=5"], "--s2-offset") == (
        -1000.0,
        {"S2A_MSIL1C_*": 0.0, "a=b": 5.0},
    )
    for bad in ("x", "*=", "=5", "S2A_*=abc"):
        with pytest.raises(ConfigError, match=r"--s2-offset: expected OFFSET or PATTERN=OFFSET"):
            parse_offsets([bad], "--s2-offset")
    with pytest.raises(ConfigError, match="two offsets for every file, 0 and -1000"):
        parse_offsets(["0", "-1000"], "--s2-offset")


def test_yaml_offsets_take_patterns_and_numbers_only() -> None:
    spec = spec_from_dict(
        {"modalities": {"s2": {"root": "s2", "offsets": {"S2*_MSIL1C_*": 0, "x.zip": -1000}}}}
    )
    assert spec.modalities["s2"].offsets == {"S2*_MSIL1C_*": 0.0, "x.zip": -1000.0}
    with pytest.raises(ConfigError, match="offsets: 'x' needs a number"):
        ModalitySpec("s2", "s2", offsets={"x": "minus 1000"})
    with pytest.raises(ConfigError, match="offsets: expected a mapping"):
        ModalitySpec("s2", "s2", offsets=[-1000])  # type: ignore[arg-type]
