"""BigEarthNet v1 on the six real example patches, v2 on the fake reBEN layout.

The real patches come from the wheel of ``bigearthnet-common`` (code: Apache-2.0; the
BigEarthNet data: CDLA-Permissive-1.0), arranged in the v1 layout by
``tests/bigearthnet_examples.py``; their pixels are checked bit-exactly against rasterio
reads of the files and their labels against their JSON files. The nomenclature and the
band statistics are checked against ``bigearthnet-common`` and TorchGeo as reference data.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from bigearthnet_examples import SNOW, SPLITS, arrange_v1, s2_labels
from rasterio.enums import Resampling

from rsmm.datasets import DATASETS, BigEarthNet, dataset_class
from rsmm.errors import ConfigError, DatasetFileError, DatasetNotFoundError
from rsmm.manifests import load_manifest

V2 = Path(__file__).resolve().parent / "data" / "bigearthnet" / "v2"
_spec = importlib.util.spec_from_file_location("bigearthnet_data", V2.parent / "data.py")
assert _spec is not None and _spec.loader is not None
GEN = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(GEN)


@pytest.fixture(scope="module")
def v1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return arrange_v1(tmp_path_factory.mktemp("ben") / "v1")


def quiet(*args: object, **kwargs: object) -> BigEarthNet:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return BigEarthNet(*args, **kwargs)  # type: ignore[arg-type]


def rasterio_read(path: Path) -> np.ndarray:
    """What the file holds on the 120 x 120 grid: as stored, or bilinear when coarser."""
    with rasterio.open(path) as src:
        if src.shape == (120, 120):
            return src.read(1)
        return src.read(1, out_shape=(120, 120), resampling=Resampling.bilinear)


# -- nomenclature and manifest -------------------------------------------------------------


def test_nomenclature_and_statistics_are_the_published_ones() -> None:
    from bigearthnet_common import constants as ben
    from torchgeo.datasets.bigearthnet import BigEarthNet as TorchGeoBigEarthNet

    manifest = load_manifest("bigearthnet")
    files = manifest.extra["files"]
    assert list(manifest.classes) == list(ben.NEW_LABELS_ORIGINAL_ORDER)
    assert list(manifest.classes) == TorchGeoBigEarthNet.class_sets[19]
    assert files["classes_43"] == list(ben.OLD_LABELS_ORIGINAL_ORDER)
    assert files["clc43_to_19"] == ben.OLD2NEW_LABELS_DICT
    for i, name in enumerate(files["classes_43"]):
        j = TorchGeoBigEarthNet.label_converter.get(i)
        assert files["clc43_to_19"][name] == (None if j is None else manifest.classes[j])
    for m, stats in (("s1", ben.BAND_STATS_S1), ("s2", ben.BAND_STATS_S2)):
        info = manifest.modality(m)
        assert info.stats == {b: (stats["mean"][b], stats["std"][b]) for b in info.bands}
        assert "bigearthnet-common" in (info.stats_source or "")
    assert DATASETS["bigearthnet"] is BigEarthNet is dataset_class("BigEarthNet")
    assert BigEarthNet.gsd_for(["s1", "s2"]) == {"s1": 10.0, "s2": 10.0}


# -- v1: the real example patches ------------------------------------------------------------


def test_real_patches_read_bit_exactly(v1: Path) -> None:
    ds = quiet(v1, split="train")
    assert ds.ids == [p for p in SPLITS["train"] if p != SNOW]
    assert ds.bands["s2"] == (
        "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"
    )  # fmt: skip
    assert ds.bands["s1"] == ("VV", "VH")
    for i in range(len(ds)):
        sample = ds[i]
        for m in ("s1", "s2"):
            files = ds.band_files(i, m)
            expected = np.stack([rasterio_read(f) for f in files]).astype(np.float32)
            assert sample[m].dtype == torch.float32 and sample[m].shape == (len(files), 120, 120)
            np.testing.assert_array_equal(sample[m].numpy(), expected)
        # the 10 m bands and S1 are the files' pixels, not resampled
        with rasterio.open(ds.band_files(i, "s2")[1]) as src:
            assert src.shape == (120, 120)
            np.testing.assert_array_equal(sample["s2"][1].numpy(), src.read(1).astype(np.float32))
        with rasterio.open(ds.band_files(i, "s2")[0]) as src:
            assert src.shape == (20, 20)  # B01 is stored at 60 m
        assert sample["meta"]["nodata"] == {"s1": 0, "s2": 0}


def test_real_patches_match_torchgeo(v1: Path) -> None:
    """TorchGeo's BigEarthNet on the same root gives the same S2 pixels and labels."""
    from torchgeo.datasets import BigEarthNet as TorchGeoBigEarthNet

    for num_classes in (19, 43):
        ours = quiet(v1, split="train", num_classes=num_classes, exclude=())
        theirs = TorchGeoBigEarthNet(
            str(v1), split="train", bands="s2", num_classes=num_classes, checksum=False
        )
        assert len(ours) == len(theirs) == 4
        for i in range(4):
            a, b = ours[i], theirs[i]
            torch.testing.assert_close(a["s2"], b["image"], rtol=0, atol=0)
            torch.testing.assert_close(a["label"], b["label"].float(), rtol=0, atol=0)


def test_real_labels_are_their_json(v1: Path) -> None:
    from bigearthnet_common.constants import OLD2NEW_LABELS_DICT

    for num_classes in (19, 43):
        for split in SPLITS:
            ds = quiet(v1, split=split, num_classes=num_classes)
            targets = ds.targets()
            assert targets.shape == (len(ds), num_classes) and targets.dtype == np.float32
            for i, patch in enumerate(ds.ids):
                names = s2_labels(v1, patch)
                if num_classes == 19:
                    names = [OLD2NEW_LABELS_DICT[n] for n in names]
                expected = {n for n in names if n is not None}
                label = ds[i]["label"]
                assert label.dtype == torch.float32
                assert {ds.classes[j] for j in torch.nonzero(label).flatten()} == expected
                np.testing.assert_array_equal(targets[i], label.numpy())
    assert len(quiet(v1, split="train", num_classes=43).classes) == 43


def test_real_meta(v1: Path) -> None:
    meta = quiet(v1, split="test")[0]["meta"]
    assert meta["id"] == "S2A_MSIL2A_20171221T112501_56_35"
    assert meta["s1_id"] == "S1A_IW_GRDH_1SDV_20171221T064238_29SND_56_35"
    assert (meta["s2_date"], meta["s1_date"], meta["country"]) == ("2017-12-21", "2017-12-21", "")


def test_snow_patches_are_left_out_and_counted(v1: Path) -> None:
    with pytest.warns(UserWarning, match=r"1 left out: seasonal snow.*S2B_MSIL2A_20180204T94161"):
        ds = BigEarthNet(v1, split="train")
    assert ds.skipped == [(SNOW, "seasonal snow (official recommendation)")]
    kept = quiet(v1, split="train", exclude=())
    assert SNOW in kept.ids and len(kept) == len(ds) + 1


def test_modalities_and_band_subsets(v1: Path) -> None:
    ds = quiet(v1, split="val", modalities=["s2"], s2_bands=["B04", "B03", "B02", "B12"])
    sample = ds[0]
    assert set(sample) == {"s2", "label", "meta"} and sample["s2"].shape == (4, 120, 120)
    full = quiet(v1, split="val", modalities=["s2"])[0]["s2"]
    torch.testing.assert_close(sample["s2"], full[[3, 2, 1, 11]], rtol=0, atol=0)
    s1 = quiet(v1, split="val", modalities="s1", s2_bands=["B04"])[0]
    assert set(s1) == {"s1", "label", "meta"}
    assert quiet(v1, split="val", transforms=lambda s: {**s, "x": 1})[0]["x"] == 1


# -- bad input -------------------------------------------------------------------------------


@pytest.fixture
def v1_copy(v1: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(v1, tmp_path / "copy"))


def test_missing_s1_is_reported_and_left_out(v1_copy: Path) -> None:
    s1 = next((v1_copy / "BigEarthNet-S1-v1.0").glob("*_36_85"))
    shutil.rmtree(s1)
    with pytest.warns(UserWarning, match=r"no Sentinel-1 patch folder.*_36_85"):
        ds = BigEarthNet(v1_copy, split="train")
    assert ("S2A_MSIL2A_20170617T113321_36_85", "no Sentinel-1 patch folder") in ds.skipped
    assert len(ds) == 2
    assert len(quiet(v1_copy, split="train", modalities=["s2"])) == 3  # S2 alone keeps it


def test_label_outside_the_nomenclature_names_the_patch(v1_copy: Path) -> None:
    patch = SPLITS["val"][0]
    path = v1_copy / "BigEarthNet-v1.0" / patch / f"{patch}_labels_metadata.json"
    meta = json.loads(path.read_text())
    meta["labels"].append("Glaciers and perpetual snow")
    path.write_text(json.dumps(meta))
    with pytest.raises(DatasetFileError, match=rf"{patch}.*'Glaciers and perpetual snow'"):
        BigEarthNet(v1_copy, split="val")


def test_patches_without_a_19_class_label_are_left_out(v1_copy: Path) -> None:
    patch = SPLITS["val"][0]
    path = v1_copy / "BigEarthNet-v1.0" / patch / f"{patch}_labels_metadata.json"
    meta = json.loads(path.read_text())
    meta["labels"] = ["Port areas", "Burnt areas"]  # no 19-class counterpart
    path.write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match="1 left out: no label of the 19-class nomenclature"):
        assert len(BigEarthNet(v1_copy, split="val")) == 0
    ds = quiet(v1_copy, split="val", num_classes=43, exclude=["seasonal_snow"])
    assert len(ds) == 1 and ds[0]["label"].sum() == 2


def test_truncated_geotiff_names_the_file(v1_copy: Path) -> None:
    ds = quiet(v1_copy, split="test")
    path = ds.band_files(0, "s2")[4]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DatasetFileError, match=path.name):
        ds[0]
    path.unlink()
    with pytest.raises(DatasetFileError, match=f"missing file: .*{path.name}"):
        ds[0]


def test_bad_roots_and_options(v1_copy: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="not a directory"):
        BigEarthNet(tmp_path / "nowhere")
    with pytest.raises(DatasetNotFoundError, match=r"metadata\.parquet"):
        BigEarthNet(v1_copy, version=2)
    for kwargs, error in (
        ({"split": "validation"}, "split must be one of"),
        ({"version": 3}, "version must be 1 or 2"),
        ({"num_classes": 10}, "num_classes must be 19 or 43"),
        ({"exclude": ["snow"]}, r"exclude: unknown \['snow'\]"),
        ({"s2_bands": ["B10"]}, "B10"),
    ):
        with pytest.raises(ConfigError, match=error):
            BigEarthNet(v1_copy, **kwargs)  # type: ignore[arg-type]
    csv = v1_copy / "bigearthnet-test.csv"
    csv.write_text(csv.read_text().split(",")[0] + "\n")  # S2 names only
    with pytest.raises(ConfigError, match=r"bigearthnet-test.csv, line 1: no Sentinel-1"):
        BigEarthNet(v1_copy, split="test")
    assert len(quiet(v1_copy, split="test", modalities=["s2"])) == 1
    (v1_copy / "bigearthnet-test.csv").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"bigearthnet-test\.csv"):
        BigEarthNet(v1_copy, split="test")


# -- v2: the fake reBEN layout ---------------------------------------------------------------


def test_v2_fake_layout() -> None:
    for split in ("train", "val", "test"):
        ds = quiet(V2, split=split, version=2)
        listed = [p for p in GEN.PATCHES if p[2] == split]
        kept = [p for p in listed if p[5] == "plain"]
        assert ds.ids == [p[0] for p in kept]
        assert {i for i, _ in ds.skipped} == {p[0] for p in listed} - set(ds.ids)
        for i, (_, s1, _, labels, country, _) in enumerate(kept):
            sample = ds[i]
            assert {ds.classes[j] for j in torch.nonzero(sample["label"]).flatten()} == set(labels)
            assert sample["meta"]["country"] == country and sample["meta"]["s1_id"] == s1
            for m in ("s1", "s2"):
                expected = np.stack([rasterio_read(f) for f in ds.band_files(i, m)])
                np.testing.assert_array_equal(sample[m].numpy(), expected.astype(np.float32))
    train = quiet(V2, split="train", version=2)
    assert sorted(r for _, r in train.skipped) == [
        "no Sentinel-1 patch folder",
        "seasonal snow (official recommendation)",
    ]
    test = quiet(V2, split="test", version=2)
    assert [r for _, r in test.skipped] == ["cloud or cloud shadow (official recommendation)"]
    # S2 alone keeps the patch without S1; no exclusions keep the flagged ones
    assert len(quiet(V2, split="train", version=2, modalities=["s2"])) == 4
    assert len(quiet(V2, split="train", version=2, modalities=["s2"], exclude=())) == 5
    with pytest.raises(ConfigError, match="v2 labels use the 19 classes"):
        BigEarthNet(V2, version=2, num_classes=43)
    assert len(quiet(V2, split="val", version=2)) == 1


def test_version_is_found_from_the_root(v1: Path) -> None:
    assert quiet(V2, split="test").version == 2  # metadata.parquet
    assert quiet(v1, split="test").version == 1


def test_plot_names_the_labels(v1: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ds = quiet(v1, split="test")
    sample = ds[0]
    fig = ds.plot({**sample, "prediction": sample["label"]}, suptitle="x")
    titles = "\n".join(ax.get_title() for ax in fig.axes)
    assert ds.describe_label(sample["label"]) in titles and "predicted:" in titles
    assert len(fig.axes) >= 2  # an S2 and an S1 panel
    plt.close(fig)
