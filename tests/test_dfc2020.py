"""DFC2020 dataset and datamodule, and the shared land-cover helpers, on the fake release."""

from __future__ import annotations

import importlib.util
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
from matplotlib.figure import Figure

from rsmm.datamodules import DFC2020DataModule
from rsmm.datasets import DFC2020, DatasetFileError, DatasetNotFoundError
from rsmm.datasets.landcover import (
    IGBP_TO_DFC,
    TEN_TO_EIGHT,
    dfc_scene_class,
    igbp_scene_label,
    majority_value,
)

ROOT = Path(__file__).resolve().parent / "data" / "dfc2020"

TEN = [
    "Forest",
    "Shrubland",
    "Savanna",
    "Grassland",
    "Wetlands",
    "Croplands",
    "Urban/Built-up",
    "Snow/Ice",
    "Barren",
    "Water",
]
EIGHT = [c for c in TEN if c not in ("Savanna", "Snow/Ice")]
# Band order of the SEN12MS-family S2 files (B8A after B08), 1-based rasterio indices.
S2_FILE_INDEX = {
    b: i + 1
    for i, b in enumerate(
        ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]
    )
}


def _generator():
    spec = importlib.util.spec_from_file_location("dfc2020_data", ROOT / "data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _generator()


def path(release: str, src: str, n: int, root: Path = ROOT) -> Path:
    return root / f"ROIs0000_{release}" / f"{src}_0" / f"ROIs0000_{release}_{src}_0_p{n}.tif"


def naive_majority(release: str, n: int) -> int | None:
    """Majority dfc value 1..10 of a mask, counted pixel by pixel (0/255 ignored)."""
    with rasterio.open(path(release, "dfc", n)) as src:
        mask = src.read(1)
    counts = Counter(int(v) for v in mask.ravel() if 1 <= v <= 10)
    if not counts:
        return None
    best = max(counts.values())
    return min(v for v, c in counts.items() if c == best)


def load(split: str = "val", **kw) -> DFC2020:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return DFC2020(ROOT, split=split, **kw)


@pytest.fixture
def tmp_copy(tmp_path: Path) -> Path:
    root = tmp_path / "dfc2020"
    for release in ("validation", "test"):
        shutil.copytree(ROOT / f"ROIs0000_{release}", root / f"ROIs0000_{release}")
    return root


# -- land-cover helpers -----------------------------------------------------------------


def test_majority_value_ignores_and_breaks_ties_low() -> None:
    assert majority_value(np.array([3, 3, 5, 5, 255, 255, 255]), ignore=(255,)) == 3
    assert majority_value(np.array([0, 0, 255]), ignore=(0, 255)) is None
    assert majority_value(np.array([7, 2, 7])) == 7
    assert dfc_scene_class(np.array([[255, 255, 255, 10], [0, 0, 0, 4]])) == 3  # tie -> lowest
    assert dfc_scene_class(np.array([[255, 255, 255, 10], [0, 0, 10, 4]])) == 9
    assert dfc_scene_class(np.full((4, 4), 255)) is None


def test_igbp_table_and_eight_class_reduction() -> None:
    # IGBP (Friedl et al.) -> simplified: forests 1-5, shrublands 6-7, savannas 8-9,
    # grassland 10, wetlands 11, croplands 12 and mosaic 14, urban 13, snow 15,
    # barren 16, water 17.
    expected = {0: 0, 10: 4, 11: 5, 12: 6, 13: 7, 14: 6, 15: 8, 16: 9, 17: 10}
    expected.update({v: 1 for v in range(1, 6)} | {6: 2, 7: 2, 8: 3, 9: 3})
    assert [expected[v] for v in range(18)] == IGBP_TO_DFC.tolist()
    assert [EIGHT.index(c) if c in EIGHT else -1 for c in TEN] == TEN_TO_EIGHT.tolist()
    # forests add up: 3 deciduous + 2 evergreen pixels beat 4 grassland pixels
    assert igbp_scene_label(np.array([1, 1, 4, 4, 4, 10, 10, 10, 10])) == 0
    assert igbp_scene_label(np.array([0, 0, 0, 17, 17])) == -1
    assert igbp_scene_label(np.array([0, 0, 17, 17, 17])) == 9


# -- dataset ------------------------------------------------------------------------------


def test_generator_declares_the_majorities_on_disk() -> None:
    for release, patches in GEN.PATCHES.items():
        for n, majority, _ in patches:
            assert naive_majority(release, n) == majority, (release, n)


@pytest.mark.parametrize("num_classes", [8, 10])
def test_labels_and_left_out(num_classes: int) -> None:
    with pytest.warns(UserWarning, match="left out") as record:
        ds = DFC2020(ROOT, split="val", num_classes=num_classes)
    assert len([w for w in record if "DFC2020" in str(w.message)]) == 1
    names = TEN if num_classes == 10 else EIGHT
    assert ds.classes == names
    expected_ids, expected_labels, expected_left_out = [], [], set()
    for n, _, _ in sorted(GEN.PATCHES["validation"]):
        majority = naive_majority("validation", n)
        name = None if majority is None else TEN[majority - 1]
        if name is None or name not in names:
            expected_left_out.add(f"ROIs0000_validation_p{n}")
            continue
        expected_ids.append(f"ROIs0000_validation_p{n}")
        expected_labels.append(names.index(name))
    assert ds.ids == expected_ids
    assert ds.targets().tolist() == expected_labels
    assert ds.targets().dtype == np.int64
    assert {i for i, _ in ds.skipped} == expected_left_out
    assert len(ds.skipped) == (3 if num_classes == 8 else 1)
    for i in (0, len(ds) - 1):
        assert int(ds[i]["label"]) == expected_labels[i]


def test_skip_reasons() -> None:
    ds = load(num_classes=8)
    reasons = dict(ds.skipped)
    assert "Savanna" in reasons["ROIs0000_validation_p30"]
    assert "Snow/Ice" in reasons["ROIs0000_validation_p31"]
    assert "no valid pixel" in reasons["ROIs0000_validation_p32"]
    assert "1 left out: no valid pixel" in ds.skipped_summary()


def test_test_release_labels() -> None:
    ds = load("test", num_classes=8)
    assert ds.skipped == []
    majorities = [naive_majority("test", n) for n, _, _ in sorted(GEN.PATCHES["test"])]
    assert ds.targets().tolist() == [EIGHT.index(TEN[v - 1]) for v in majorities]


def test_sample_keys_dtypes_values() -> None:
    ds = load(num_classes=10)
    sample = ds[0]
    assert set(sample) == {"s1", "s2", "label", "meta"}
    assert sample["s1"].dtype == sample["s2"].dtype == torch.float32
    assert sample["s1"].shape == (2, 256, 256)
    assert sample["s2"].shape == (13, 256, 256)
    assert sample["label"].dtype == torch.int64 and sample["label"].ndim == 0
    assert sample["meta"]["id"] == "ROIs0000_validation_p1"
    with rasterio.open(path("validation", "s1", 1)) as src:
        assert src.dtypes[0] == "float32"
        np.testing.assert_array_equal(sample["s1"].numpy(), src.read())
    with rasterio.open(path("validation", "s2", 1)) as src:
        assert src.dtypes[0] == "uint16" and src.count == 13
        np.testing.assert_array_equal(sample["s2"].numpy(), src.read().astype(np.float32))
    assert ds.units == {"s1": "db", "s2": "dn"}


def test_band_subset_order() -> None:
    bands = ["B8A", "B04", "B01"]
    ds = load(modalities=("s2", "s1"), bands={"s2": bands, "s1": ["VH"]})
    sample = ds[2]
    assert list(sample)[:2] == ["s2", "s1"]
    n = int(ds.ids[2].rsplit("_p", 1)[1])
    with rasterio.open(path("validation", "s2", n)) as src:
        expected = src.read([S2_FILE_INDEX[b] for b in bands]).astype(np.float32)
    np.testing.assert_array_equal(sample["s2"].numpy(), expected)
    with rasterio.open(path("validation", "s1", n)) as src:
        np.testing.assert_array_equal(sample["s1"].numpy(), src.read([2]))


def test_nan_in_s1_is_filled_and_counted() -> None:
    (n,) = [n for n, _, kind in GEN.PATCHES["validation"] if kind == "nan_s1"]
    ds = load()
    sample = ds[ds.ids.index(f"ROIs0000_validation_p{n}")]
    assert sample["meta"]["nodata"] == {"s1": GEN.NAN_PIXELS, "s2": 0}
    assert torch.isfinite(sample["s1"]).all()
    with rasterio.open(path("validation", "s1", n)) as src:
        raw = src.read()
    assert int(np.isnan(raw).sum()) == GEN.NAN_PIXELS
    for b in range(2):
        bad = np.isnan(raw[b])
        fill = np.float32(np.nanmean(raw[b].astype(np.float64)))
        np.testing.assert_allclose(sample["s1"][b].numpy()[bad], fill, rtol=1e-5)
        np.testing.assert_array_equal(sample["s1"][b].numpy()[~bad], raw[b][~bad])
    assert ds[0]["meta"]["nodata"] == {"s1": 0, "s2": 0}


def test_single_modality_needs_only_its_folder(tmp_copy: Path) -> None:
    shutil.rmtree(tmp_copy / "ROIs0000_validation" / "s1_0")
    with pytest.warns(UserWarning, match="1 left out"):
        ds = DFC2020(tmp_copy, split="val", modalities=("s2",), num_classes=10)
    assert set(ds[0]) == {"s2", "label", "meta"}
    with pytest.raises(DatasetNotFoundError, match="s1_0"):
        DFC2020(tmp_copy, split="val", num_classes=10)


def test_plot_returns_figure() -> None:
    ds = load()
    sample = ds[0]
    sample["prediction"] = torch.tensor(1)
    fig = ds.plot(sample, suptitle="x")
    assert isinstance(fig, Figure)
    assert "Forest" in fig.axes[0].get_title()
    plt.close(fig)


# -- errors -------------------------------------------------------------------------------


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="split"):
        DFC2020(ROOT, split="train")
    with pytest.raises(ValueError, match="num_classes"):
        DFC2020(ROOT, num_classes=9)
    with pytest.raises(ValueError, match="modalities"):
        DFC2020(ROOT, modalities=("naip",))


def test_missing_root_and_release(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=re.escape(str(tmp_path / "nowhere"))):
        DFC2020(tmp_path / "nowhere")
    shutil.copytree(ROOT / "ROIs0000_validation", tmp_path / "ROIs0000_validation")
    with pytest.raises(DatasetNotFoundError, match="ROIs0000_test"):
        DFC2020(tmp_path, split="test")


def test_patch_missing_in_s1(tmp_copy: Path) -> None:
    missing = path("validation", "s1", 9, tmp_copy)
    missing.unlink()
    with pytest.raises(DatasetFileError, match=re.escape(str(missing))):
        DFC2020(tmp_copy)


def test_wrong_band_count_and_corrupt_files(tmp_copy: Path) -> None:
    bad_s2 = path("validation", "s2", 1, tmp_copy)
    with rasterio.open(bad_s2) as src:
        profile, data = src.profile, src.read()[:12]
    profile.update(count=12)
    with rasterio.open(bad_s2, "w", **profile) as dst:
        dst.write(data)
    corrupt_s1 = path("validation", "s1", 2, tmp_copy)
    corrupt_s1.write_bytes(b"not a tiff at all")
    ds = load_root(tmp_copy)
    with pytest.raises(DatasetFileError, match=re.escape(str(bad_s2)) + ".*12 bands, expected 13"):
        ds[0]
    with pytest.raises(DatasetFileError, match=re.escape(str(corrupt_s1))):
        ds[1]
    ds[2]  # others still load
    corrupt_dfc = path("validation", "dfc", 10, tmp_copy)
    corrupt_dfc.write_bytes(b"\x00" * 64)
    with pytest.raises(DatasetFileError, match=re.escape(str(corrupt_dfc))):
        load_root(tmp_copy)


def load_root(root: Path) -> DFC2020:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return DFC2020(root)


# -- datamodule ---------------------------------------------------------------------------


def make_dm(**kw) -> DFC2020DataModule:
    kw.setdefault("batch_size", 4)
    return DFC2020DataModule(str(ROOT), **kw)


def setup_fit(dm: DFC2020DataModule) -> tuple[list[int], list[int]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dm.setup("fit")
    return list(dm.datasets["train"].indices), list(dm.datasets["val"].indices)


def test_datamodule_split_is_disjoint_stratified_seeded() -> None:
    dm = make_dm()
    train, val = setup_fit(dm)
    release = dm.datasets["train"].dataset
    assert release.split == "val" and dm.datasets["val"].dataset is release
    assert not set(train) & set(val)
    assert sorted(train + val) == list(range(len(release)))
    y = release.targets()
    # 5 patches per class -> 4 train + 1 held out per class (80/20 within each class)
    assert Counter(y[train].tolist()) == {0: 4, 2: 4, 7: 4}
    assert Counter(y[val].tolist()) == {0: 1, 2: 1, 7: 1}
    again, _ = setup_fit(make_dm())
    assert again == train
    other = [setup_fit(make_dm(seed=s))[0] for s in (1, 2, 3)]
    assert any(o != train for o in other)


def test_datamodule_label_fraction_applies_to_train_part() -> None:
    full_train, val = setup_fit(make_dm())
    dm = make_dm(label_fraction=0.5)
    setup_fit(dm)
    sub = dm.datasets["train"]
    kept = [sub.dataset.indices[i] for i in sub.indices]
    assert len(kept) == 6 and set(kept) <= set(full_train)
    assert list(dm.datasets["val"].indices) == val


def test_datamodule_batches_and_test_release() -> None:
    dm = make_dm(num_classes=10, modalities=("s1",), eval_batch_size=2)
    setup_fit(dm)
    assert len(dm.datasets["train"]) + len(dm.datasets["val"]) == 17
    batch = next(iter(dm.train_dataloader()))
    assert batch["s1"].shape == (4, 2, 256, 256) and "s2" not in batch
    assert batch["label"].dtype == torch.int64
    dm.setup("test")
    assert dm.datasets["test"].split == "test" and len(dm.datasets["test"]) == 5
    batch = next(iter(dm.test_dataloader()))
    assert batch["s1"].shape == (2, 2, 256, 256)
    assert dm.num_classes == 10
    with pytest.raises(ValueError, match="holdout_fraction"):
        make_dm(holdout_fraction=1.0)


def test_datamodule_holdout_zero_trains_on_the_whole_validation_release() -> None:
    """``holdout_fraction=0``: every validation-release pair is a training pair (the
    thesis fine-tunes on all 986), and there is no validation loader."""
    dm = make_dm(holdout_fraction=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dm.setup("fit")
    assert "val" not in dm.datasets and dm.val_dataloader() == []
    whole = make_dm()
    setup_fit(whole)
    assert len(dm.datasets["train"]) == len(whole.datasets["train"].dataset)
