"""SEN12MS adapter and datamodule on TorchGeo's SEN12MS fixture (used read-only)."""

from __future__ import annotations

import re
import shutil
import warnings
from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import rasterio
import torch
import torchgeo.datasets as tgd
from matplotlib.figure import Figure

from rsmm.datamodules import SEN12MSDataModule
from rsmm.datamodules.sen12ms import scene_holdout
from rsmm.datasets import SEN12MS, DatasetFileError, DatasetNotFoundError

# IGBP value -> simplified class value (0 = no data), written out from the IGBP legend.
IGBP_SIMPLIFIED = {0: 0, 6: 2, 7: 2, 8: 3, 9: 3, 10: 4, 11: 5, 12: 6, 13: 7, 14: 6}
IGBP_SIMPLIFIED |= {v: 1 for v in range(1, 6)} | {15: 8, 16: 9, 17: 10}


@pytest.fixture
def root(torchgeo_fixtures: Path) -> Path:
    return torchgeo_fixtures / "sen12ms"


@pytest.fixture
def tmp_root(root: Path, tmp_path: Path) -> Path:
    """A writable copy of the fixture (split lists and season folders)."""
    out = tmp_path / "sen12ms"
    out.mkdir()
    for name in tgd.SEN12MS.light_filenames:
        src = root / name
        if src.is_dir():
            shutil.copytree(src, out / name)
        else:
            shutil.copy(src, out / name)
    return out


def lc_file(root: Path, file_id: str) -> Path:
    season, name, _, scene, patch = file_id.split("_")
    return root / f"{season}_{name}" / f"lc_{scene}" / f"{season}_{name}_lc_{scene}_{patch}"


def naive_label(path: Path) -> int:
    """Majority simplified class of the IGBP band (no data counts; tie -> lowest)."""
    with rasterio.open(path) as src:
        igbp = src.read(1)
    counts = Counter(IGBP_SIMPLIFIED.get(int(v), 0) for v in igbp.ravel())
    best = max(counts.values())
    v = min(k for k, c in counts.items() if c == best)
    return -1 if v == 0 else v - 1


def test_samples_match_torchgeo_and_files(root: Path) -> None:
    ds = SEN12MS(root, split="train")
    ref = tgd.SEN12MS(str(root), split="train", checksum=False)
    assert len(ds) == len(ref) == 8
    assert ds.files == ref.ids
    for i in (0, 5):
        sample, raw = ds[i], ref[i]
        assert set(sample) == {"s1", "s2", "label", "meta"}
        assert sample["s1"].dtype == sample["s2"].dtype == torch.float32
        assert sample["s1"].shape == (2, 64, 64) and sample["s2"].shape == (13, 64, 64)
        np.testing.assert_array_equal(sample["s1"].numpy(), raw["image"][:2].float().numpy())
        np.testing.assert_array_equal(sample["s2"].numpy(), raw["image"][2:].float().numpy())
        with rasterio.open(ds.path(i, "s2")) as src:
            np.testing.assert_array_equal(sample["s2"].numpy(), src.read().astype(np.float32))
        assert sample["meta"]["id"] == ref.ids[i].removesuffix(".tif").replace("_s2_", "_")
        assert sample["meta"]["nodata"] == {"s1": 0, "s2": 0}
    assert ds.classes[0] == "Forest" and len(ds.classes) == 10
    assert ds.units == {"s1": "db", "s2": "dn"}


def test_band_subset_follows_torchgeo_band_names(root: Path) -> None:
    bands = ["B8A", "B02", "B12"]
    ds = SEN12MS(root, split="test", modalities=("s2",), bands={"s2": bands})
    ref = tgd.SEN12MS(str(root), split="test", bands=bands, checksum=False)
    sample = ds[3]
    assert set(sample) == {"s2", "label", "meta"}
    np.testing.assert_array_equal(sample["s2"].numpy(), ref[3]["image"].float().numpy())


def test_labels_against_independent_count(root: Path) -> None:
    ds = SEN12MS(root, split="train")
    expected = [naive_label(lc_file(root, f)) for f in ds.files]
    targets = ds.targets()
    assert targets.dtype == np.int64
    assert targets.tolist() == expected
    assert ds.targets() is targets  # cached
    assert [int(ds[i]["label"]) for i in (0, 7)] == [expected[0], expected[7]]
    assert ds.unlabelled == []


def test_no_data_majority_is_unlabelled_and_counted(tmp_root: Path) -> None:
    ds = SEN12MS(tmp_root, split="train")
    target = lc_file(tmp_root, ds.files[2])
    with rasterio.open(target) as src:
        profile, lc = src.profile, src.read()
    lc[0, :40] = 0  # 40 of 64 rows without IGBP class
    with rasterio.open(target, "w", **profile) as dst:
        dst.write(lc)
    assert naive_label(target) == -1
    with pytest.warns(UserWarning, match="1 of 8 patches"):
        targets = ds.targets()
    assert targets[2] == -1 and (np.delete(targets, 2) >= 0).all()
    assert ds.unlabelled == [ds.ids[2]]
    assert int(ds[2]["label"]) == -1
    assert ds.describe_label(ds[2]["label"]) == "unlabelled"


def test_targets_read_only_land_cover(tmp_root: Path) -> None:
    ds = SEN12MS(tmp_root, split="test")
    for path in tmp_root.glob("ROIs*/s[12]_*/*.tif"):
        path.unlink()
    assert len(ds.targets()) == 8
    with pytest.raises(DatasetFileError, match=r"_s1_1_p1\.tif"):
        ds[0]


def test_nan_in_s1_is_filled_and_counted(tmp_root: Path) -> None:
    ds = SEN12MS(tmp_root, split="train")
    s1 = ds.path(1, "s1")
    with rasterio.open(s1) as src:
        profile, arr = src.profile, src.read()
    arr[0, 0, :7] = np.nan
    with rasterio.open(s1, "w", **profile) as dst:
        dst.write(arr)
    sample = ds[1]
    assert sample["meta"]["nodata"]["s1"] == 7
    assert torch.isfinite(sample["s1"]).all()


def test_errors_name_the_path(tmp_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="split"):
        SEN12MS(tmp_root, split="val")
    with pytest.raises(DatasetNotFoundError, match=re.escape(str(tmp_path / "nowhere"))):
        SEN12MS(tmp_path / "nowhere")
    ds = SEN12MS(tmp_root, split="train")
    wrong = ds.path(4, "s2")
    with rasterio.open(wrong) as src:
        profile, data = src.profile, src.read()[:12]
    profile.update(count=12)
    with rasterio.open(wrong, "w", **profile) as dst:
        dst.write(data)
    with pytest.raises(DatasetFileError, match=re.escape(str(wrong)) + ".*12 bands, expected 13"):
        ds[4]
    corrupt = ds.path(5, "lc")
    corrupt.write_bytes(b"garbage")
    with pytest.raises(DatasetFileError, match=re.escape(str(corrupt))):
        ds[5]
    with pytest.raises(DatasetFileError, match=re.escape(str(corrupt))):
        ds.targets()
    shutil.rmtree(tmp_root / "ROIs1970_fall")
    (tmp_root / "test_list.txt").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"missing ROIs1970_fall, test_list\.txt"):
        SEN12MS(tmp_root, split="test")


def test_plot_returns_figure(root: Path) -> None:
    ds = SEN12MS(root)
    fig = ds.plot(ds[0])
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    plt.close(fig)


def test_scene_holdout_keeps_scenes_whole() -> None:
    ids = [f"ROIs{s}_spring_{scene}_p{p}" for s in (1, 2) for scene in (1, 2, 3) for p in (1, 2)]
    kept, held = scene_holdout(ids, 0.5, seed=0)
    assert sorted(kept.tolist() + held.tolist()) == list(range(len(ids)))
    scenes = lambda idx: {ids[i].rsplit("_p", 1)[0] for i in idx}  # noqa: E731
    assert len(scenes(held)) == 3 and not scenes(kept) & scenes(held)
    assert scene_holdout(ids, 0.5, seed=0)[1].tolist() == held.tolist()
    assert scene_holdout(ids, 0.0, seed=0)[1].size == 0


def test_datamodule(root: Path) -> None:
    dm = SEN12MSDataModule(str(root), batch_size=4, modalities=("s1",))
    dm.setup("fit")
    assert set(dm.datasets) == {"train"} and len(dm.datasets["train"]) == 8
    batch = next(iter(dm.train_dataloader()))
    assert batch["s1"].shape == (4, 2, 64, 64) and batch["label"].shape == (4,)
    with pytest.raises(RuntimeError, match="no val split"):
        dm.val_dataloader()
    mean, std = dm.stats["s1"]  # published SEN12MS statistics, from the manifest
    torch.testing.assert_close(mean, torch.tensor([-11.76858, -18.294598]))
    torch.testing.assert_close(std, torch.tensor([4.525339, 4.3586307]))
    dm.setup("test")
    assert len(dm.datasets["test"]) == 8

    dm = SEN12MSDataModule(str(root), batch_size=2, val_fraction=0.5, seed=3)
    dm.setup("fit")
    train, val = dm.datasets["train"], dm.datasets["val"]
    ids = train.dataset.ids
    scene = lambda i: ids[i].rsplit("_p", 1)[0]  # noqa: E731
    assert len(train) == len(val) == 4
    assert not {scene(i) for i in train.indices} & {scene(i) for i in val.indices}
    batch = next(iter(dm.val_dataloader()))
    assert batch["s2"].shape == (2, 13, 64, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        mean, std = dm.stats["s2"]  # B01/B09/B10 unpublished -> estimated
    assert mean.shape == (13,) and (std > 0).all()
