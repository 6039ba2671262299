"""`rsmm manifest build`: the happy path, a YAML spec, and every bad input (one line, exit 2)."""

from __future__ import annotations

import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from pyproj import CRS, Transformer

from rsmm.cli import main
from rsmm.datasets import CoRegisteredStack
from rsmm.stacks import read_manifest

SCENE = Path(__file__).parent / "data" / "stacks" / "scene"
BASE = ["manifest", "build", "--chip-size", "160m", "--split", "1,0,0"]


def run(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str, str]:
    rc = main(args)
    out, err = capsys.readouterr()
    return rc, out, err


def test_build_prints_summary_and_writes_manifest_and_map(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "chips.parquet"
    rc, stdout, err = run(
        capsys,
        [
            *BASE[:4],
            "--s1", str(SCENE / "s1"), "--s2", str(SCENE / "s2"),
            "--labels", str(SCENE / "labels.gpkg"), "--label-column", "landcover",
            "--label-layer", "fields", "--block-size", "320m", "--split", "0.6,0.2,0.2",
            "--out", str(out), "--map", str(tmp_path / "chips.png"),
        ],
    )  # fmt: skip
    assert rc == 0, err
    m = read_manifest(out)
    assert f"{len(m.chips)} chips of 160 m in 1 UTM zone(s)" in stdout
    for s in ("train", "val", "test"):
        assert f"{s} {int((m.chips['split'] == s).sum())}" in stdout
    assert "cropland:" in stdout and "dropped:" in stdout
    assert (tmp_path / "chips.png").stat().st_size > 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chips.parquet", "chips.png"]
    # paths are stored relative to the manifest: the tree can move with it
    moved = tmp_path / "moved"
    shutil.copytree(SCENE, moved / "scene")
    (moved / "sub").mkdir()
    rel_root = Path("..") / "scene"
    rc, _, err = run(
        capsys,
        [*BASE, "--s2", str(moved / "scene" / "s2"), "--out", str(moved / "sub" / "c.parquet")],
    )
    assert rc == 0, err
    import pyarrow.parquet as pq

    table = pq.read_table(moved / "sub" / "c.parquet")
    assert table.column("files_s2")[0].as_py().startswith(f'["{rel_root.as_posix()}/s2/')
    shutil.move(moved, tmp_path / "elsewhere")
    ds = CoRegisteredStack(tmp_path / "elsewhere" / "sub" / "c.parquet")
    assert ds[0]["s2"].shape == (13, 16, 16)


def test_yaml_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "stack.yaml"
    spec.write_text(
        f"chip_size: 16px\nsplit: [1, 0, 0]\nmax_days: 5\nmodalities:\n"
        f"  s2: {{root: {SCENE / 's2'}, bands: {list(rasterio_bands())}}}\n"
        f"  s1: {{root: {SCENE / 's1'}, units: db}}\n"
    )
    rc, _, err = run(
        capsys, ["manifest", "build", "--spec", str(spec), "--out", str(tmp_path / "c.parquet")]
    )
    assert rc == 0, err
    m = read_manifest(tmp_path / "c.parquet")
    assert m.meta["chip_size_m"] == 160 and m.meta["max_days"] == 5
    assert m.meta["modalities"]["s1"]["units"] == "db"


def rasterio_bands() -> tuple[str, ...]:
    from rsmm.sensors import get_sensor

    return get_sensor("s2").band_names


def _copy(tmp: Path, *layers: str) -> Path:
    for layer in layers:
        shutil.copytree(SCENE / layer, tmp / layer)
    return tmp


def _labels_in(tmp: Path, crs) -> Path:
    gdf = gpd.read_file(SCENE / "labels.gpkg", layer="fields").to_crs("EPSG:32618")
    gdf = gpd.GeoDataFrame(
        {"landcover": gdf["landcover"]},
        geometry=[shapely.affinity.translate(g, -370000, -4305000) for g in gdf.geometry],
        crs=crs,
    )
    path = tmp / "labels.gpkg"
    gdf.to_file(path, layer="fields")
    return path


LOCAL = CRS.from_wkt(
    'LOCAL_CS["site grid",UNIT["metre",1],AXIS["Easting",EAST],AXIS["Northing",NORTH]]'
)


def _case(name: str, tmp: Path, fixtures: Path) -> tuple[list[str], str]:
    s1, s2 = ["--s1", str(SCENE / "s1")], ["--s2", str(SCENE / "s2")]
    if name == "no overlap":
        return ["--s1", str(fixtures / "sentinel1"), *s2], "do not overlap"
    if name == "no files":
        (tmp / "naip").mkdir()
        (tmp / "naip" / "readme.txt").write_text("tiles go here")
        return [*s1, *s2, "--naip", str(tmp / "naip")], "naip: no files matching '*.tif'"
    if name == "missing folder":
        return [*s2, "--naip", str(tmp / "nope")], "naip folder not found"
    if name == "no class column":
        labels = ["--labels", str(SCENE / "labels.gpkg"), "--label-layer", "fields"]
        return [*s2, *labels, "--label-column", "crop"], "has no column 'crop'; columns: landcover"
    if name == "local crs labels":
        labels = ["--labels", str(_labels_in(tmp, LOCAL)), "--label-column", "landcover"]
        return [*s2, *labels], "cannot be transformed to EPSG:32618"
    if name == "labels without crs":
        labels = ["--labels", str(_labels_in(tmp, None)), "--label-column", "landcover"]
        return [*s2, *labels], "has no CRS"
    if name == "corrupt geotiff":
        _copy(tmp, "s2")
        bad = tmp / "s2" / "T18SUL_20230605T155819_L2A.tif"
        data = (SCENE / "s2" / "T18SUJ_20230605T155819_L2A.tif").read_bytes()
        bad.write_bytes(data[: len(data) // 3])
        return [*s1, "--s2", str(tmp / "s2")], str(bad)
    if name == "garbage geotiff":
        _copy(tmp, "s2")
        bad = tmp / "s2" / "T18SUL_20230605T155819_L2A.tif"
        bad.write_bytes(b"not a tiff at all" * 10)
        return [*s1, "--s2", str(tmp / "s2")], str(bad)
    if name == "chip larger than overlap":
        return [*s1, *s2, "--chip-size", "2000m"], "larger than the overlap"
    if name == "chip not whole pixels":
        return [*s2, "--chip-size", "165m"], "not a whole number of s2 pixels"
    if name == "stride not whole pixels":
        msg = "--stride 155m is not a whole number of s2 pixels (10 m): use 150m or 160m"
        return [*s2, "--stride", "155m"], msg
    if name == "block not whole pixels":
        return [*s2, "--block-size", "333m"], "--block-size 333m is not a whole number of s2"
    if name == "geographic crs":
        return [*s2, "--crs", "EPSG:4326"], "not a projected CRS in metres"
    if name == "web mercator crs":
        return [*s2, "--crs", "EPSG:3857"], "EPSG:3857 distorts distances by 28% over the area"
    if name == "unknown crs":
        return [*s2, "--crs", "EPSG:999999"], "crs: 'EPSG:999999' is not a known CRS"
    if name == "map under a file":
        (tmp / "afile").write_text("a file, not a folder")
        return [*s2], f"--map {tmp / 'afile' / 'm.png'}: {tmp / 'afile'} is a file, not a folder"
    if name == "bad split":
        return [*s2, "--split", "0.5,0.2"], "split: expected three fractions"
    raise AssertionError(name)


CASES = [
    "no overlap",
    "no files",
    "missing folder",
    "no class column",
    "local crs labels",
    "labels without crs",
    "corrupt geotiff",
    "garbage geotiff",
    "chip larger than overlap",
    "chip not whole pixels",
    "stride not whole pixels",
    "block not whole pixels",
    "geographic crs",
    "web mercator crs",
    "unknown crs",
    "map under a file",
    "bad split",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_and_writes_nothing(
    case: str, tmp_path: Path, capfd: pytest.CaptureFixture[str], torchgeo_fixtures: Path
) -> None:
    args, fragment = _case(case, tmp_path, torchgeo_fixtures)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    figure = tmp_path / "afile" / "m.png" if case == "map under a file" else out_dir / "m.png"
    # capfd: GDAL / PROJ messages printed by C code on stderr count too
    rc, _stdout, err = run(
        capfd, [*BASE, *args, "--out", str(out_dir / "c.parquet"), "--map", str(figure)]
    )
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rsmm: error: "), err
    assert fragment in lines[0]
    assert list(out_dir.iterdir()) == []  # nothing written, no temporary file left


def test_both_outputs_or_neither(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The map is rendered before the manifest is written: a map that fails to save
    leaves no manifest (and no temporary file) behind."""
    import matplotlib.figure

    def fail(*args, **kwargs):
        raise PermissionError("disk says no")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", fail)
    out = tmp_path / "out"
    rc, _, err = run(
        capsys,
        [*BASE, "--s2", str(SCENE / "s2"), "--out", str(out / "c.parquet"),
         "--map", str(out / "m.png")],
    )  # fmt: skip
    assert rc == 2 and "disk says no" in err
    assert not out.exists() or list(out.iterdir()) == []


def test_every_corrupt_geotiff_is_named_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _copy(tmp_path, "s1", "s2")
    bad_s2 = tmp_path / "s2" / "T18SUL_20230605T155819_L2A.tif"
    bad_s2.write_bytes(b"not a tiff at all" * 10)
    bad_s1 = next((tmp_path / "s1").glob("*_VH.tif"))
    bad_s1.write_bytes(b"II*\x00" + b"\x00" * 60)
    rc, _, err = run(
        capsys,
        [*BASE, "--s1", str(tmp_path / "s1"), "--s2", str(tmp_path / "s2"),
         "--out", str(tmp_path / "c.parquet")],
    )  # fmt: skip
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "2 corrupt or unreadable GeoTIFFs" in lines[0], err
    assert str(bad_s2) in lines[0] and str(bad_s1) in lines[0]
    assert not (tmp_path / "c.parquet").exists()


def test_ignored_files_are_reported_and_stored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s1 = _copy(tmp_path, "s1") / "s1"
    vv = next(s1.glob("*_VV.tif"))
    mosaic = s1 / "S1A_IW_20230604T232510_mosaic.tif"  # no band name in the file name
    lone = s1 / vv.name.replace("20230603", "20230615")  # a VV without its VH
    for f in (mosaic, lone):
        f.write_bytes(vv.read_bytes())
    out = tmp_path / "c.parquet"
    rc, stdout, err = run(
        capsys, [*BASE, "--s1", str(s1), "--s2", str(SCENE / "s2"), "--out", str(out)]
    )
    assert rc == 0, err
    m = read_manifest(out)
    assert m.meta["modalities"]["s1"]["bands"] == ["VV", "VH"]  # VH not dropped everywhere
    assert m.meta["modalities"]["s1"]["files"] == 1
    ignored = {Path(f["path"]).name: f["reason"] for f in m.meta["ignored"]["s1"]}
    assert ignored == {
        mosaic.name: "no band name in the file name",
        lone.name: "acquisition lacks band(s) VH",
    }
    assert "ignored: 2 files not used" in stdout
    assert f"s1: {mosaic} (no band name in the file name)" in stdout
    assert f"s1: {lone} (acquisition lacks band(s) VH)" in stdout


def test_web_mercator_files_are_chipped_in_the_utm_zone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without S2 and --crs, S1 in EPSG:3857 (scale 1.29 at 39 N) is not the common CRS:
    its "160 m" would be 124 m on the ground; the area's UTM zone is, and the summary
    says why."""
    out = tmp_path / "c.parquet"
    rc, stdout, err = run(capsys, [*BASE, "--s1", str(SCENE / "s1"), "--out", str(out)])
    assert rc == 0, err
    m = read_manifest(out)
    # --crs auto: S1 files in Web Mercator lay chips in the UTM zone of their centre
    assert m.meta["zones"] == ["EPSG:32618"] and (m.chips["crs"] == "EPSG:32618").all()
    assert "auto: each chip in the UTM zone of its centre (EPSG:32618)" in stdout
    # a chip's corners are 160 m apart on the ellipsoid
    from pyproj import Geod

    geod = Geod(ellps="WGS84")
    xmin, ymin, xmax = m.chips[["xmin", "ymin", "xmax"]].iloc[0]
    lon, lat = Transformer.from_crs("EPSG:32618", "EPSG:4326", always_xy=True).transform(
        np.array([xmin, xmax]), np.array([ymin, ymin])
    )
    _, _, dist = geod.inv(lon[0], lat[0], lon[1], lat[1])
    assert dist == pytest.approx(160.0, rel=1e-3)


def test_unknown_crs_is_one_line_in_a_fresh_process(tmp_path: Path) -> None:
    """GDAL / PROJ print "ERROR 1: PROJ: ..." on stderr when asked for an unknown CRS the
    first time in a process; rsmm checks the CRS with pyproj first (a subprocess, since
    an earlier test in this process may have triggered that message already)."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "rsmm.cli", *BASE, "--s2", str(SCENE / "s2"),
           "--crs", "EPSG:999999", "--out", str(tmp_path / "c.parquet")]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rsmm: error: crs: 'EPSG:999999'"), lines
    assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "c.parquet"
    out.write_text("keep me")
    rc, _, err = run(capsys, [*BASE, "--s2", str(SCENE / "s2"), "--out", str(out)])
    assert rc == 2 and "--overwrite" in err
    assert out.read_text() == "keep me"


def test_torchgeo_fixtures_are_stack_modalities(
    tmp_path: Path, torchgeo_fixtures: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # NAIP tiles (two dates over one quarter quad) as a stack of their own, at 1 m, in
    # their own Albers CRS (--crs auto would put their chips in a UTM zone, resampled)
    rc, _, err = run(
        capsys,
        [*BASE[:2], "--naip", str(torchgeo_fixtures / "naip"), "--chip-size", "64m",
         "--split", "1,0,0", "--crs", "ESRI:102039", "--out", str(tmp_path / "naip.parquet")],
    )  # fmt: skip
    assert rc == 0, err
    ds = CoRegisteredStack(tmp_path / "naip.parquet")
    assert len(ds) == 4 and ds[0]["naip"].shape == (4, 64, 64)
    with rasterio.open(torchgeo_fixtures / "naip" / "m_3807511_ne_18_060_20190605.tif") as src:
        np.testing.assert_array_equal(ds[0]["naip"].numpy(), src.read()[:, :64, :64])
    # Sentinel-1 RTC VV/VH files (the HH/HV scene is ignored) with an S2 file over them
    s2 = tmp_path / "s2"
    s2.mkdir()
    with rasterio.open(
        s2 / "S2_20221205_10m.tif", "w", driver="GTiff", width=108, height=108, count=4,
        dtype="uint16", crs="EPSG:32605",
        transform=rasterio.transform.from_origin(79860.0, 2298240.0, 10.0, 10.0),
    ) as dst:  # fmt: skip
        dst.write(np.arange(4 * 108 * 108, dtype=np.uint16).reshape(4, 108, 108))
        # four S2 bands do not fix their order: the file names them (else --s2-bands)
        dst.descriptions = ("B02", "B03", "B04", "B08")
    rc, _stdout, err = run(
        capsys,
        [*BASE[:2], "--s1", str(torchgeo_fixtures / "sentinel1"), "--s2", str(s2),
         "--chip-size", "320m", "--split", "1,0,0", "--max-days", "3",
         "--out", str(tmp_path / "s1.parquet")],
    )  # fmt: skip
    assert rc == 0, err
    ds = CoRegisteredStack(tmp_path / "s1.parquet")
    assert len(ds) == 9
    sample = ds[0]
    assert sample["s1"].shape == (2, 32, 32) and sample["s2"].shape == (4, 32, 32)
    assert ds.bands["s2"] == ("B02", "B03", "B04", "B08")
    with rasterio.open(s2 / "S2_20221205_10m.tif") as src:
        np.testing.assert_array_equal(sample["s2"].numpy(), src.read()[:, :32, :32])
    assert all("S1A" in f for f in ds.chips["files_s1"])


def test_readme_chip_sizes_are_whole_pixels_of_every_sensor() -> None:
    """The README's `rsmm manifest build` example must run on 10 m S1/S2 and on NAIP at
    any of its GSDs (0.3, 0.6, 1 m): 640 m is 1066.67 pixels of 0.6 m NAIP."""
    import shlex

    from rsmm.stacks import parse_length
    from rsmm.stacks.build import whole_pixels

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Your own co-registered GeoTIFF stacks")[1].split("\n## ")[0]
    start = section.index(".venv/bin/rsmm manifest build")
    command = section[start:].split("\n# ")[0].replace("\\\n", " ")
    args = shlex.split(command)
    assert "--naip" in args
    values = {a: args[i + 1] for i, a in enumerate(args) if a.startswith("--")}
    assert "--chip-size" in values
    for naip_gsd in (0.3, 0.6, 1.0):
        gsds = {"s2": 10.0, "s1": 10.0, "naip": naip_gsd}
        for option in ("--chip-size", "--stride"):
            if option in values:
                length = parse_length(values[option], option)
                whole_pixels(option, length, length[0], gsds)
        if "--block-size" in values:
            length = parse_length(values["--block-size"], "--block-size")
            whole_pixels("--block-size", length, length[0], {"s2": 10.0})
    assert "whole number of pixels" in section


def test_readme_workflow_manifest_pretrain_finetune(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's three steps with configs/stacks, tiny settings."""
    configs = Path(__file__).resolve().parents[1] / "configs" / "stacks"
    monkeypatch.chdir(tmp_path)
    rc, _, err = run(
        capsys,
        [
            *BASE[:4], "--s1", str(SCENE / "s1"), "--s2", str(SCENE / "s2"),
            "--label-raster", str(SCENE / "labels.tif"), "--split", "1,0,0",
            "--out", "chips.parquet",
        ],
    )  # fmt: skip
    assert rc == 0, err
    tiny = [
        "--data.init_args.root", "chips.parquet", "--data.init_args.modalities", "[s1, s2]",
        "--data.init_args.batch_size", "4", "--data.init_args.num_workers", "0",
        "--model.backbone", "tiny_cnn", "--trainer.max_steps", "2", "--trainer.max_epochs", "1",
        "--trainer.enable_progress_bar", "false", "--trainer.accelerator", "cpu",
    ]  # fmt: skip
    assert main(["pretrain", "--config", str(configs / "pretrain.yaml"), *tiny]) == 0
    ckpt = tmp_path / "runs/pretrain/version_0/checkpoints/last.ckpt"
    assert ckpt.is_file()
    rc = main(
        ["finetune", "--config", str(configs / "finetune.yaml"), *tiny,
         "--model.pretrained", str(ckpt)]
    )  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    assert (tmp_path / "runs/finetune/version_0/checkpoints/last.ckpt").is_file()
