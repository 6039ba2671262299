"""A folder holding Sentinel-2 SAFE products and loose rasters beside them is refused.

Loose rasters carry no product metadata (processing level, radiometric offset) and
are often a copy of a product's bands, so rsmm reads a folder as products or as loose
rasters, never both, and never skips the loose files silently: the error names them.

The pixels are a real BigEarthNet example patch (bigearthnet-common: code Apache-2.0,
data CDLA-Permissive-1.0) in a SAFE layout (:mod:`safe_examples`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from safe_examples import patch_bands, safe_product

from rsmm.cli import main
from rsmm.errors import DatasetFileError
from rsmm.stacks.build import open_sources
from rsmm.stacks.products import NAMED_LOOSE, find_products, loose_rasters
from rsmm.stacks.sources import ModalitySource
from rsmm.stacks.spec import CloudSpec, ModalitySpec, spec_from_dirs

pytest.importorskip("bigearthnet_common")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The patch's band GeoTIFFs and one zipped L2A product of them (built once)."""
    tmp = tmp_path_factory.mktemp("loose")
    bands = patch_bands(tmp)
    (tmp / "zip").mkdir()
    return {"zip": safe_product(tmp / "zip", bands, zipped=True), **bands}


def mixed(tmp: Path, data: dict[str, Path], loose: list[str]) -> Path:
    """A folder with the zipped product and the band GeoTIFFs ``loose`` beside it (one in
    a subfolder)."""
    folder = tmp / "s2"
    (folder / "exports").mkdir(parents=True)
    shutil.copy(data["zip"], folder)
    for i, band in enumerate(loose):
        shutil.copy(data[band], (folder / "exports" if i else folder) / data[band].name)
    return folder


def test_loose_rasters_are_those_outside_the_safe_folders(tmp_path: Path) -> None:
    safe = tmp_path / "P.SAFE" / "GRANULE" / "g" / "IMG_DATA"
    safe.mkdir(parents=True)
    (safe / "T_B02.jp2").write_bytes(b"")  # inside a product: not loose
    (tmp_path / "notes.txt").write_text("")  # not a raster
    (tmp_path / "a").mkdir()
    for name in ("x_B02.TIF", "a/y.jp2", "a/z.vrt"):
        (tmp_path / name).write_bytes(b"")
    assert loose_rasters(tmp_path) == [
        str(tmp_path / "a" / "y.jp2"),
        str(tmp_path / "a" / "z.vrt"),
        str(tmp_path / "x_B02.TIF"),
    ]
    assert loose_rasters(tmp_path / "P.SAFE") == []  # a product given as is
    assert loose_rasters(tmp_path / "missing") == []


def test_products_with_loose_rasters_beside_them_are_refused_naming_them(
    data: dict[str, Path], tmp_path: Path
) -> None:
    folder = mixed(tmp_path, data, ["B02", "B03"])
    assert len(find_products(folder)) == 1  # the product alone would be read
    with pytest.raises(DatasetFileError) as err:
        ModalitySource(ModalitySpec("s2", str(folder)))
    msg = str(err.value)
    assert msg.startswith(f"s2: {folder} holds Sentinel-2 SAFE products and 2 raster file(s)")
    assert str(folder / data["B02"].name) in msg
    assert str(folder / "exports" / data["B03"].name) in msg
    assert data["zip"].name not in msg  # the product is not a loose file
    # moved out, both folders read: the products, and the loose rasters on their own
    shutil.move(folder / "exports", tmp_path / "exports")
    (folder / data["B02"].name).rename(tmp_path / "exports" / data["B02"].name)
    products = ModalitySource(ModalitySpec("s2", str(folder)))
    assert len(products.products) == 1 and len(products.items) == 1
    assert products.offset == -1000.0  # baseline 04.00, from the product's metadata
    loose = ModalitySource(ModalitySpec("s2", str(tmp_path / "exports")))
    assert not loose.products and loose.bands == ("B02", "B03") and loose.offset == 0.0


def test_many_loose_rasters_are_counted_after_the_first_ones(
    data: dict[str, Path], tmp_path: Path
) -> None:
    bands = ["B02", "B03", "B04", "B05", "B06", "B07", "B08"]
    folder = mixed(tmp_path, data, bands)
    with pytest.raises(DatasetFileError, match=rf"and {len(bands) - NAMED_LOOSE} more\)"):
        ModalitySource(ModalitySpec("s2", str(folder)))


def test_the_cli_prints_one_line_and_the_cloud_layer_is_refused_too(
    data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = mixed(tmp_path, data, ["B04"])
    out = tmp_path / "c.parquet"
    rc = main(["manifest", "build", "--chip-size", "240m", "--s2", str(folder), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert "raster file(s) outside them" in err and data["B04"].name in err
    assert not out.exists()
    # an scl cloud layer from such a folder: refused the same way
    clean = tmp_path / "clean"
    clean.mkdir()
    shutil.copy(data["zip"], clean)
    spec = spec_from_dirs({"s2": clean}, chip_size="240m", cloud=CloudSpec(str(folder)))
    with pytest.raises(DatasetFileError, match=r"^cloud layer: .* raster file\(s\) outside them"):
        open_sources(spec)
