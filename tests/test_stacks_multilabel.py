"""Multi-label chips: polygons, a label raster and per-patch label files; the multi-hot
target of CoRegisteredStack and the stacks datamodule's multi-label label fractions."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
import torch

from rsmm.cli import main
from rsmm.datamodules import CoRegisteredStackDataModule
from rsmm.datasets import CoRegisteredStack
from rsmm.errors import ConfigError, DatasetFileError
from rsmm.stacks import build_manifest, read_manifest, spec_from_dirs, write_manifest
from rsmm.stacks.label_files import bigearthnet_nomenclatures
from rsmm.stacks.labels import label_chips, raster_labels
from rsmm.stacks.spec import LabelSpec

SCENE = Path(__file__).parent / "data" / "stacks" / "scene"
CRS = "EPSG:32618"


def chips_gdf(n: int = 2, files: list[list[str]] | None = None) -> gpd.GeoDataFrame:
    """``n`` chips of 100 x 100 m side by side, with a ``files_s2`` column."""
    boxes = [shapely.box(100 * i, 0, 100 * (i + 1), 100) for i in range(n)]
    files = files if files is not None else [[] for _ in range(n)]
    return gpd.GeoDataFrame({"files_s2": [json.dumps(f) for f in files]}, geometry=boxes, crs=CRS)


def polygons(tmp: Path, rows: list[tuple[str, shapely.Geometry]]) -> str:
    gdf = gpd.GeoDataFrame({"lc": [r[0] for r in rows]}, geometry=[r[1] for r in rows], crs=CRS)
    path = tmp / "labels.gpkg"
    gdf.to_file(path)
    return str(path)


#: Polygons over two 100 m chips side by side (x 0-100 and 100-200 m)
TWO_CHIPS = [
    ("water", shapely.box(0, 0, 60, 100)),  # 60 % of chip 0
    ("forest", shapely.box(60, 0, 95, 100)),  # 35 % of chip 0
    ("urban", shapely.box(95, 0, 104, 100)),  # 5 % of chip 0, 4 % of chip 1
    ("forest", shapely.box(104, 0, 200, 100)),  # 96 % of chip 1
]


def test_polygons_give_every_class_over_the_min_fraction(tmp_path: Path) -> None:
    path = polygons(
        tmp_path,
        TWO_CHIPS,
    )
    chips = chips_gdf()
    spec = LabelSpec(path, "lc", multilabel=True, min_class_fraction=0.05)
    classes, source, warns = label_chips(chips, spec, CRS, "s2")
    assert classes == ["forest", "urban", "water"] and warns == []
    assert [json.loads(v) for v in chips["labels"]] == [[0, 1, 2], [0]]
    assert chips["label"].tolist() == [2, 0]  # the class covering the largest part
    assert chips["class_name"].tolist() == ["water", "forest"]
    assert source["multilabel"] is True and source["min_class_fraction"] == 0.05
    chips = chips_gdf()
    label_chips(chips, LabelSpec(path, "lc", multilabel=True, min_class_fraction=0.4), CRS, "s2")
    assert [json.loads(v) for v in chips["labels"]] == [[2], [0]]


def test_empty_points_and_single_class_inputs_say_why(tmp_path: Path) -> None:
    path = polygons(tmp_path, [("water", shapely.box(500, 500, 600, 600))])  # off the chips
    with pytest.raises(DatasetFileError, match=r"label none of the 2 chips.*min-class-fraction"):
        label_chips(chips_gdf(), LabelSpec(path, "lc", multilabel=True), CRS, "s2")
    path = polygons(tmp_path, [("water", shapely.box(0, 0, 200, 100))])
    _, _, warns = label_chips(chips_gdf(), LabelSpec(path, "lc", multilabel=True), CRS, "s2")
    assert len(warns) == 1 and "single class (water, 2 of 2 chips)" in warns[0]
    pts = gpd.GeoDataFrame({"lc": ["a"]}, geometry=[shapely.Point(5, 5)], crs=CRS)
    pts.to_file(tmp_path / "pts.gpkg")
    with pytest.raises(DatasetFileError, match="need polygons"):
        spec = LabelSpec(str(tmp_path / "pts.gpkg"), "lc", multilabel=True)
        label_chips(chips_gdf(), spec, CRS, "s2")


def test_raster_window_gives_classes_over_the_min_fraction() -> None:
    values = np.full((10, 10), np.nan)
    values[:, :6] = 3  # 60 %
    values[:, 6:9] = 1  # 30 %
    values[0, 9] = 2  # 1 %; the rest (9 %) nodata
    spec = LabelSpec("labels.tif", multilabel=True, min_class_fraction=0.05)
    assert raster_labels(values, spec) == {"label": 3, "labels": [1, 3]}
    assert raster_labels(values, LabelSpec("labels.tif")) == {"label": 3}
    assert raster_labels(np.full((4, 4), np.nan), spec) == {"label": -1, "labels": []}
    with pytest.raises(DatasetFileError, match="negative"):
        raster_labels(np.full((2, 2), -1.0), spec)


def label_file(folder: Path, labels: object) -> str:
    """A patch folder with one band file and its label JSON; returns the band file."""
    folder.mkdir(parents=True)
    (folder / f"{folder.name}_labels_metadata.json").write_text(json.dumps({"labels": labels}))
    return str(folder / f"{folder.name}_{{band}}.tif")


def test_per_patch_files_corine_43_and_19(tmp_path: Path) -> None:
    clc43, ben19, to_19 = bigearthnet_nomenclatures()
    a = label_file(tmp_path / "a", ["Pastures", "Water bodies", "Airports"])
    b = label_file(tmp_path / "b", ["Coniferous forest"])
    files = [[a], [b], [a, b]]
    spec = LabelSpec("*_labels_metadata.json", per_patch=True)
    chips = chips_gdf(3, files)
    classes, source, _ = label_chips(chips, spec, CRS, "s2")
    assert classes == clc43
    ids = [clc43.index(n) for n in ("Pastures", "Water bodies", "Airports")]
    want = [sorted(ids), [clc43.index("Coniferous forest")]]
    want.append(sorted(want[0] + want[1]))
    assert [json.loads(v) for v in chips["labels"]] == want
    assert chips["label"].tolist() == [v[0] for v in want]  # lowest id
    assert source["files"] == 2 and source["per_patch"] == "*_labels_metadata.json"
    chips = chips_gdf(3, files)
    spec19 = LabelSpec("*_labels_metadata.json", per_patch=True, nomenclature="19")
    classes, _, _ = label_chips(chips, spec19, CRS, "s2")
    assert classes == ben19 and len(classes) == 19
    assert to_19["Airports"] is None  # dropped by the 19-class nomenclature
    mapped = sorted({ben19.index(to_19[n]) for n in ("Pastures", "Water bodies")})
    assert json.loads(chips["labels"][0]) == mapped


def test_per_patch_files_errors(tmp_path: Path) -> None:
    spec = LabelSpec("*_labels_metadata.json", per_patch=True)
    (tmp_path / "none").mkdir()
    with pytest.raises(DatasetFileError, match="no label file matching"):
        label_chips(chips_gdf(1, [[str(tmp_path / "none" / "x.tif")]]), spec, CRS, "s2")
    empty = label_file(tmp_path / "empty", [])
    with pytest.raises(DatasetFileError, match="list no class"):
        label_chips(chips_gdf(1, [[empty]]), spec, CRS, "s2")
    bad = label_file(tmp_path / "bad", "Pastures")
    with pytest.raises(DatasetFileError, match="no 'labels' list"):
        label_chips(chips_gdf(1, [[bad]]), spec, CRS, "s2")
    own = label_file(tmp_path / "own", ["crop", "forest"])
    chips = chips_gdf(1, [[own]])
    assert label_chips(chips, spec, CRS, "s2")[0] == ["crop", "forest"]
    spec19 = LabelSpec("*_labels_metadata.json", per_patch=True, nomenclature="19")
    with pytest.raises(DatasetFileError, match="not CORINE Land Cover classes"):
        label_chips(chips_gdf(1, [[own]]), spec19, CRS, "s2")
    with pytest.raises(ConfigError, match="per-patch label files only"):
        LabelSpec("x.gpkg", "lc", nomenclature="19")
    with pytest.raises(ConfigError, match="min_class_fraction"):
        LabelSpec("x.gpkg", "lc", multilabel=True, min_class_fraction=0)


@pytest.fixture(scope="module")
def raster_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """S2 chips of the test scene, multi-label from its label raster."""
    spec = spec_from_dirs(
        {"s2": SCENE / "s2"},
        chip_size="160m",
        split=(0.5, 0.25, 0.25),
        block_size="320m",
        labels=LabelSpec(str(SCENE / "labels.tif"), multilabel=True, min_class_fraction=0.2),
    )
    out = tmp_path_factory.mktemp("ml") / "chips.parquet"
    return write_manifest(build_manifest(spec), out)


def test_manifest_dataset_and_datamodule_are_multi_hot(raster_manifest: Path) -> None:
    m = read_manifest(raster_manifest)
    assert m.meta["multilabel"] is True and m.classes == [f"class_{i}" for i in range(5)]
    lists = [json.loads(v) for v in m.chips["labels"]]
    assert any(len(v) > 1 for v in lists)
    # every listed class covers at least 20 % of the chip in the label raster
    with rasterio.open(SCENE / "labels.tif") as src:
        bounds = m.chips[["xmin", "ymin", "xmax", "ymax"]].to_numpy()
        assert (m.chips["crs"] == src.crs.to_string()).all()  # the chips' own CRS
        for box, ids, label in zip(bounds, lists, m.chips["label"], strict=True):
            win = rasterio.windows.from_bounds(*box, transform=src.transform)
            v = src.read(1, window=win.round_offsets().round_lengths(), masked=True)
            frac = np.bincount(v.compressed(), minlength=5) / v.size
            assert ids == np.flatnonzero(frac >= 0.2).tolist()
            assert label == (int(frac.argmax()) if ids else -1)
    ds = CoRegisteredStack(raster_manifest, split="train")
    assert ds.multilabel is True
    y = ds[0]["label"]
    assert y.dtype == torch.float32 and y.shape == (5,)
    targets = ds.targets()
    assert targets.shape == (len(ds), 5) and targets.dtype == np.float32
    train = m.chips[m.chips["split"] == "train"].reset_index(drop=True)
    for i, v in enumerate(train["labels"]):
        assert np.flatnonzero(targets[i]).tolist() == json.loads(v)
    assert ds[0]["label"].numpy().tolist() == targets[0].tolist()
    dm = CoRegisteredStackDataModule(
        str(raster_manifest), batch_size=2, num_workers=0, label_fraction=0.5, seed=1
    )
    dm.setup("fit")
    assert dm.multilabel is True
    picked = dm.datasets["train"].indices
    assert 0 < len(picked) < len(ds)
    # every class with a positive in train keeps one in the subset (multilabel_subset)
    assert (targets[picked].any(0) == targets.any(0)).all()


def test_cli_label_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["manifest", "build", "--s2", str(SCENE / "s2"), "--out", str(tmp_path / "c.parquet")]
    for extra, msg in (
        (["--labels", "x.gpkg", "--label-files"], "not --labels and --label-files"),
        (["--label-nomenclature", "19"], "applies to --label-files only"),
        (["--multilabel"], "need --labels or --label-raster"),
    ):
        assert main([*base, *extra]) == 2
        assert msg in capsys.readouterr().err
    assert not (tmp_path / "c.parquet").exists()


def test_split_report_counts_every_class_a_multi_label_chip_holds() -> None:
    from rsmm.stacks.splits import split_report

    hot = np.array([[1, 1, 0], [0, 0, 1], [0, 1, 0]], dtype=bool)
    splits = np.array(["train", "train", "test"])
    report = split_report(splits, np.zeros(3, bool), hot, (0.5, 0.25, 0.25), 100.0, "chips")
    # the test chip's primary class (1) is not all: classes 0 and 2 are missing there
    assert report.missing_classes == {"val": [0, 1, 2], "test": [0, 2]}
    single = split_report(splits, np.zeros(3, bool), np.array([0, 2, 1]), (1, 0, 0), 100.0, "chips")
    assert single.missing_classes == {"train": [1]}  # single labels: as before


def test_yaml_spec_labels(tmp_path: Path) -> None:
    from rsmm.stacks.spec import load_spec

    path = tmp_path / "stack.yaml"
    path.write_text(
        "modalities: {s2: s2/}\n"
        "labels: {path: '*_labels_metadata.json', per_patch: true, nomenclature: 19}\n"
    )
    labels = load_spec(path).labels
    assert labels is not None and labels.multilabel and labels.nomenclature == "19"
    assert labels.path == "*_labels_metadata.json"  # a file-name pattern, not a path
    assert not labels.is_raster
    path.write_text("modalities: {s2: s2/}\nlabels: {path: lc.tif, multilabel: true}\n")
    labels = load_spec(path).labels
    assert labels.is_raster and labels.multilabel and labels.path == str(tmp_path / "lc.tif")
