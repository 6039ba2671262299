"""Bad inputs of ``rsmm manifest build`` (user GeoTIFF stacks) and ``rsmm manifest stats``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

from bad_inputs.core import Api, Cli, Shared, case
from rsmm.datasets import CoRegisteredStack
from rsmm.errors import ConfigError, DatasetNotFoundError

SCENE = Path(__file__).resolve().parents[1] / "data" / "stacks" / "scene"
TESTS_DATA = SCENE.parents[1]
BASE = ["manifest", "build", "--chip-size", "160m", "--split", "1,0,0"]
S2_FILE = "T18SUK_20230605T155819_L2A.tif"


def build(tmp: Path, *args: str) -> list[str]:
    """``rsmm manifest build`` writing ``out/c.parquet`` under ``tmp``."""
    return [*BASE, *args, "--out", str(tmp / "out" / "c.parquet")]


def s2(tmp: Path) -> list[str]:
    return ["--s2", str(SCENE / "s2")]


def copied(tmp: Path, layer: str) -> Path:
    shutil.copytree(SCENE / layer, tmp / layer)
    return tmp / layer


def rewrite(path: Path, data: np.ndarray | None = None, **profile: object) -> None:
    """Write ``path`` again with ``data`` (default: its own) and profile changes."""
    with rasterio.open(path) as src:
        kw = src.profile | profile
        arr = src.read() if data is None else data
    kw["count"] = arr.shape[0]
    path.unlink()
    with rasterio.open(path, "w", **kw) as dst:
        dst.write(arr)


# --- folders and files ----------------------------------------------------------------


@case("build-missing-folder")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(build(tmp, "--s2", str(tmp / "nope")), (str(tmp / "nope"),))


@case("build-empty-folder")
def _(tmp: Path, shared: Shared) -> Cli:
    (tmp / "s2").mkdir()
    return Cli(build(tmp, "--s2", str(tmp / "s2")), (str(tmp / "s2"),))


@case("build-folder-is-a-file")
def _(tmp: Path, shared: Shared) -> Cli:
    (tmp / "s2").write_text("not a folder")
    return Cli(build(tmp, "--s2", str(tmp / "s2")), (str(tmp / "s2"),))


@case("build-zero-byte-tif")
def _(tmp: Path, shared: Shared) -> Cli:
    bad = copied(tmp, "s2") / S2_FILE
    bad.write_bytes(b"")
    return Cli(build(tmp, "--s2", str(tmp / "s2")), (str(bad),))


@case("build-truncated-tif")
def _(tmp: Path, shared: Shared) -> Cli:
    bad = copied(tmp, "s2") / S2_FILE
    bad.write_bytes(bad.read_bytes()[:4096])
    return Cli(build(tmp, "--s2", str(tmp / "s2")), (str(bad),))


@case("build-text-file-named-tif")
def _(tmp: Path, shared: Shared) -> Cli:
    s1 = copied(tmp, "s1")
    bad = next(s1.glob("*_VV.tif"))
    bad.write_text("<html>403 Forbidden</html>\n")
    return Cli(build(tmp, *s2(tmp), "--s1", str(s1)), (str(bad),))


@case("build-no-crs")
def _(tmp: Path, shared: Shared) -> Cli:
    bad = copied(tmp, "s2") / S2_FILE
    rewrite(bad, crs=None)
    return Cli(build(tmp, "--s2", str(tmp / "s2")), (str(bad),))


@case("build-non-overlapping-s1-s2")
def _(tmp: Path, shared: Shared) -> Cli:
    s1 = copied(tmp, "s1")
    for f in s1.glob("*.tif"):  # 500 km east of the S2 tiles
        with rasterio.open(f) as src:
            moved = Affine.translation(500_000, 0) * src.transform
        rewrite(f, transform=moved)
    return Cli(build(tmp, *s2(tmp), "--s1", str(s1)), ("overlap",))


@case("build-wrong-band-count")
def _(tmp: Path, shared: Shared) -> Cli:
    folder = copied(tmp, "s2")
    for f in folder.glob("*.tif"):
        with rasterio.open(f) as src:
            rewrite(f, src.read()[:3])
    bands = "B02,B03,B04,B08"  # four names for three bands
    return Cli(build(tmp, "--s2", str(folder), "--s2-bands", bands), (str(folder), "3 bands"))


@case("build-all-nan-s1")
def _(tmp: Path, shared: Shared) -> Cli:
    s1 = copied(tmp, "s1")
    for f in s1.glob("*.tif"):
        with rasterio.open(f) as src:
            rewrite(f, np.full((1, *src.shape), np.nan, np.float32))
    return Cli(build(tmp, *s2(tmp), "--s1", str(s1)), ("nodata in s1",))


@case("build-no-modality")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(build(tmp), ("--s1",))


@case("build-output-exists")
def _(tmp: Path, shared: Shared) -> Cli:
    (tmp / "out").mkdir()
    (tmp / "out" / "c.parquet").write_text("keep me")
    return Cli(build(tmp, *s2(tmp)), ("--overwrite", "c.parquet"))


@case("build-output-under-a-file")
def _(tmp: Path, shared: Shared) -> Cli:
    (tmp / "out").write_text("a file")
    return Cli(build(tmp, *s2(tmp)), (str(tmp / "out"),))


# --- option values --------------------------------------------------------------------


@case("build-chip-size-not-a-length")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(build(tmp, *s2(tmp), "--chip-size", "large"), ("--chip-size",))


@case("build-chip-size-zero")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(build(tmp, *s2(tmp), "--chip-size", "0m"), ("--chip-size",))


@case("build-chip-size-negative")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(build(tmp, *s2(tmp), "--chip-size=-160m"), ("--chip-size",))


@case("build-block-size-not-a-length")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(build(tmp, *s2(tmp), "--block-size", "4 chips"), ("--block-size",))


@case("build-split-two-fractions")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(build(tmp, *s2(tmp), "--split", "0.8,0.2"), ("split",))


@case("build-split-not-numbers")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(build(tmp, *s2(tmp), "--split", "a,b,c"), ("split",))


@case("build-split-negative")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(build(tmp, *s2(tmp), "--split=1.2,-0.1,-0.1"), ("split",))


@case("build-split-sum-not-one")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(build(tmp, *s2(tmp), "--split", "0.5,0.2,0.1"), ("split",))


@case("build-max-nodata-above-one")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(build(tmp, *s2(tmp), "--max-nodata", "1.5"), ("max_nodata",))


@case("build-unknown-optional-modality")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(build(tmp, *s2(tmp), "--optional", "radar"), ("--optional", "radar"))


@case("build-typo-option")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(build(tmp, *s2(tmp), "--chip-sise", "160m"), ("--chip-sise",))


@case("build-option-prefix")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(build(tmp, *s2(tmp), "--max-day", "5"), ("--max-day",))


# --- labels and specs -----------------------------------------------------------------


@case("build-labels-missing")
def _(tmp: Path, shared: Shared) -> Cli:
    labels = ["--labels", str(tmp / "fields.gpkg"), "--label-column", "crop"]
    return Cli(build(tmp, *s2(tmp), *labels), ("fields.gpkg",))


@case("build-labels-zero-byte")
def _(tmp: Path, shared: Shared) -> Cli:
    (tmp / "fields.geojson").write_bytes(b"")
    labels = ["--labels", str(tmp / "fields.geojson"), "--label-column", "crop"]
    return Cli(build(tmp, *s2(tmp), *labels), ("fields.geojson",))


@case("build-labels-malformed-geojson")
def _(tmp: Path, shared: Shared) -> Cli:
    (tmp / "fields.geojson").write_text('{"type": "FeatureCollection", "features": [')
    labels = ["--labels", str(tmp / "fields.geojson"), "--label-column", "crop"]
    return Cli(build(tmp, *s2(tmp), *labels), ("fields.geojson",))


@case("build-labels-no-features")
def _(tmp: Path, shared: Shared) -> Cli:
    empty = {"type": "FeatureCollection", "features": []}
    (tmp / "fields.geojson").write_text(json.dumps(empty))
    labels = ["--labels", str(tmp / "fields.geojson"), "--label-column", "crop"]
    return Cli(build(tmp, *s2(tmp), *labels), ("fields.geojson",))


@case("build-labels-no-class-column")
def _(tmp: Path, shared: Shared) -> Cli:
    labels = ["--labels", str(SCENE / "labels.gpkg"), "--label-layer", "fields"]
    return Cli(build(tmp, *s2(tmp), *labels, "--label-column", "crop"), ("crop",))


@case("build-label-raster-missing")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(build(tmp, *s2(tmp), "--label-raster", str(tmp / "lc.tif")), ("lc.tif",))


@case("build-label-files-missing")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(build(tmp, *s2(tmp), "--label-files"), ("*_labels_metadata.json", "unlabelled"))


@case("build-label-files-empty")
def _(tmp: Path, shared: Shared) -> Cli:
    folder = copied(tmp, "s2")
    (folder / "T18SUK_labels_metadata.json").write_text(json.dumps({"labels": []}))
    return Cli(
        build(tmp, "--s2", str(folder), "--label-files"), ("label none of", "list no class")
    )


@case("build-label-file-not-json")
def _(tmp: Path, shared: Shared) -> Cli:
    folder = copied(tmp, "s2")
    (folder / "T18SUK_labels_metadata.json").write_text("{labels: [")
    return Cli(build(tmp, "--s2", str(folder), "--label-files"), ("T18SUK_labels_metadata.json",))


@case("build-spec-missing")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(build(tmp, "--spec", str(tmp / "stack.yaml")), ("stack.yaml",))


@case("build-spec-bad-yaml")
def _(tmp: Path, shared: Shared) -> Cli:
    (tmp / "stack.yaml").write_text("modalities:\n  s2: {root: [s2\n")
    return Cli(build(tmp, "--spec", str(tmp / "stack.yaml")), ("stack.yaml",))


@case("build-spec-a-list")
def _(tmp: Path, shared: Shared) -> Cli:
    (tmp / "stack.yaml").write_text("- s2\n- s1\n")
    return Cli(build(tmp, "--spec", str(tmp / "stack.yaml")), ("stack.yaml",))


@case("build-spec-unknown-key")
def _(tmp: Path, shared: Shared) -> Cli:
    (tmp / "stack.yaml").write_text(f"chip_sise: 160m\nmodalities:\n  s2: {{root: {SCENE}/s2}}\n")
    return Cli(build(tmp, "--spec", str(tmp / "stack.yaml")), ("chip_sise",))


@case("build-spec-unknown-label-key")
def _(tmp: Path, shared: Shared) -> Cli:
    labels = f"labels: {{path: {SCENE}/labels.gpkg, colum: landcover}}\n"
    (tmp / "stack.yaml").write_text(f"modalities:\n  s2: {{root: {SCENE}/s2}}\n{labels}")
    return Cli(build(tmp, "--spec", str(tmp / "stack.yaml")), ("stack.yaml", "colum"))


@case("build-spec-value-not-a-number")
def _(tmp: Path, shared: Shared) -> Cli:
    text = f"max_nodata: ten percent\nmodalities:\n  s2: {{root: {SCENE}/s2}}\n"
    (tmp / "stack.yaml").write_text(text)
    return Cli(build(tmp, "--spec", str(tmp / "stack.yaml")), ("stack.yaml", "ten percent"))


# --- reading a chip index, manifest stats ---------------------------------------------


@case("stack-index-missing")
def _(tmp: Path, shared: Shared) -> Api:
    path = tmp / "chips.parquet"
    return Api(lambda: CoRegisteredStack(path), DatasetNotFoundError, ("chips.parquet",))


@case("stack-index-not-parquet")
def _(tmp: Path, shared: Shared) -> Api:
    path = tmp / "chips.parquet"
    path.write_text("chip,split\n0,train\n")
    return Api(lambda: CoRegisteredStack(path), ConfigError, ("chips.parquet",))


@case("stats-unknown-dataset")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(["manifest", "stats", "eurosatt", str(tmp)], ("eurosatt",))


@case("stats-missing-root")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(["manifest", "stats", "meterml", str(tmp / "meterml")], (str(tmp / "meterml"),))


@case("stats-unknown-split")
def _(tmp: Path, shared: Shared) -> Cli:
    argv = ["manifest", "stats", "meterml", str(TESTS_DATA / "meterml"), "--split", "training"]
    return Cli(argv, ("training",))


@case("stats-out-under-a-file")
def _(tmp: Path, shared: Shared) -> Cli:
    (tmp / "afile").write_text("x")
    out = tmp / "afile" / "meterml.json"
    argv = ["manifest", "stats", "meterml", str(TESTS_DATA / "meterml"), "--max-samples", "2"]
    return Cli([*argv, "--out", str(out)], (str(out),))


@case("stats-all-nan-s1")
def _(tmp: Path, shared: Shared) -> Cli:
    root = Path(shutil.copytree(TESTS_DATA / "dfc2020", tmp / "dfc2020"))
    for f in root.rglob("*_s1_*.tif"):
        with rasterio.open(f) as src:
            rewrite(f, np.full((src.count, *src.shape), np.nan, np.float32))
    return Cli(["manifest", "stats", "dfc2020", str(root), "--split", "test"], ("s1",))
