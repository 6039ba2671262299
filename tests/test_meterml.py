"""Tests of the METER-ML dataset and datamodule on the fake tree in tests/data/meterml."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from rsmm.datamodules import MeterMLDataModule
from rsmm.datasets import DatasetFileError, DatasetNotFoundError, MeterML
from rsmm.manifests import load_manifest

ROOT = Path(__file__).resolve().parent / "data" / "meterml"
SKIP_WARNING = "ignore:METER-ML .* left out"
STATS_WARNING = "ignore:no published band statistics"

_spec = importlib.util.spec_from_file_location("meterml_data", ROOT / "data.py")
assert _spec is not None and _spec.loader is not None
GEN = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(GEN)

# Hand-written class ids of every Type the generator uses (classes: CAFOs 0, WWTreatment 1,
# RefineriesAndTerminals 2, Landfills 3, Mines 4, ProcessingPlants 5, Negative 6).
SINGLE = {
    "CAFOs": 0,
    "CAFOs-Landfills": 0,
    "Landfills": 3,
    "RefineriesAndTerminals": 2,
    "Negative": 6,
    "Roundabout": 6,
    "Mines": 4,
    "WWTreatment": 1,
    "ProcessingPlants": 5,
    "WWTreatment-RefineriesAndTerminals": 1,
    "ProcessingPlants-CAFOs": 5,
}
MULTI = {
    "CAFOs": [1, 0, 0, 0, 0, 0],
    "CAFOs-Landfills": [1, 0, 0, 1, 0, 0],
    "Landfills": [0, 0, 0, 1, 0, 0],
    "RefineriesAndTerminals": [0, 0, 1, 0, 0, 0],
    "Negative": [0, 0, 0, 0, 0, 0],
    "Roundabout": [0, 0, 0, 0, 0, 0],
    "Mines": [0, 0, 0, 0, 1, 0],
    "WWTreatment": [0, 1, 0, 0, 0, 0],
    "ProcessingPlants": [0, 0, 0, 0, 0, 1],
    "WWTreatment-RefineriesAndTerminals": [0, 1, 1, 0, 0, 0],
    "ProcessingPlants-CAFOs": [1, 0, 0, 0, 0, 1],
}
S2_FILES = {
    "10m": ("sentinel-2-10m.npy", ["B04", "B03", "B02", "B08"]),
    "20m": ("sentinel-2-20m.npy", ["B05", "B06", "B07", "B8A", "B11", "B12"]),
    "60m": ("sentinel-2-60m.npy", ["B01", "B09", "B10"]),
}


def expected(split: str, needed: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(folder relative to root, Type) of the complete locations, in geojson order."""
    out = []
    for split_dir, loc, type_, _bare, left_out in GEN.LOCATIONS[split]:
        if "*" in left_out or any(n in left_out for n in needed):
            continue
        out.append((f"{split_dir}/{loc}", type_))
    return out


ALL_FILES = ("naip.png", "sentinel-1.npy", *(f for f, _ in S2_FILES.values()))


def load(split: str = "train", **kwargs) -> MeterML:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "METER-ML .* left out")
        return MeterML(ROOT, split, **kwargs)


def bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """1-D bilinear interpolation weights, half-pixel centres, edges clamped."""
    w = np.zeros((n_out, n_in))
    for i in range(n_out):
        src = max((i + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = int(np.floor(src))
        i1 = min(i0 + 1, n_in - 1)
        frac = src - i0
        w[i, i0] += 1 - frac
        w[i, i1] += frac
    return w


def upsample(chw: np.ndarray, size: int) -> np.ndarray:
    w = bilinear_matrix(chw.shape[-1], size)
    return np.stack([w @ c @ w.T for c in chw.astype(np.float64)])


def s2_reference(folder: Path, bands: list[str], size: int) -> np.ndarray:
    """The chosen S2 bands read with numpy and upsampled by the naive formula."""
    channels = {}
    for name, file_bands in S2_FILES.values():
        arr = np.load(folder / name).transpose(2, 0, 1)
        if arr.shape[-1] != size:
            arr = upsample(arr, size)
        channels.update(zip(file_bands, arr))
    return np.stack([channels[b] for b in bands])


def copy_root(tmp_path: Path) -> Path:
    root = tmp_path / "meterml"
    shutil.copytree(ROOT, root, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return root


# -- manifest --------------------------------------------------------------------------


def test_manifest() -> None:
    m = load_manifest("meterml")
    assert m.classes[6] == "Negative" and len(m.classes) == 7
    assert list(m.modality("s2").bands) == [b for _, bands in S2_FILES.values() for b in bands]
    assert m.modality("s1").bands == ("VV", "VH")
    assert m.modality("naip").bands == ("R", "G", "B", "NIR")
    assert {m.modality(k).units for k in ("s1", "s2", "naip")} == {"dn"}
    assert all(m.modality(k).stats is None for k in ("s1", "s2", "naip"))


# -- samples ---------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_sample_structure(split: str) -> None:
    ds = load(split)
    assert len(ds) == len(expected(split, ALL_FILES))
    sample = ds[0]
    assert list(sample) == ["s1", "s2", "naip", "label", "meta"]
    assert sample["s1"].shape == (2, 72, 72)
    assert sample["s2"].shape == (13, 72, 72)
    assert sample["naip"].shape == (4, 720, 720)
    for m in ("s1", "s2", "naip"):
        assert sample[m].dtype == torch.float32
    assert sample["label"].dtype == torch.int64 and sample["label"].ndim == 0
    assert sample["meta"]["nodata"] == {"s1": 0, "s2": 0, "naip": 0}


def test_values_and_band_order() -> None:
    ds = load("train")
    assert ds.bands["s2"] == tuple(b for _, bands in S2_FILES.values() for b in bands)
    for i, (folder, _) in enumerate(expected("train", ALL_FILES)):
        sample = ds[i]
        d = ROOT / folder
        assert sample["meta"]["id"] == folder
        s1 = np.load(d / "sentinel-1.npy")
        assert s1.dtype == np.uint16 and s1.shape == (72, 72, 2)
        np.testing.assert_array_equal(sample["s1"].numpy(), s1.transpose(2, 0, 1))
        naip = np.asarray(Image.open(d / "naip.png"))
        assert naip.dtype == np.uint8 and naip.shape == (720, 720, 4)
        np.testing.assert_array_equal(sample["naip"].numpy(), naip.transpose(2, 0, 1))
        s2 = sample["s2"].numpy()
        # 10 m bands are copied exactly; coarser bands follow the bilinear formula.
        np.testing.assert_array_equal(s2[:4], np.load(d / "sentinel-2-10m.npy").transpose(2, 0, 1))
        ref = s2_reference(d, list(ds.bands["s2"]), 72)
        np.testing.assert_allclose(s2, ref, rtol=1e-5, atol=1e-2)
        b10 = np.load(d / "sentinel-2-60m.npy")[..., 2]
        # Bilinear upsampling by an integer factor with clamped edges keeps the mean.
        assert s2[12].mean() == pytest.approx(b10.mean(), rel=1e-5)


# -- labels ----------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_single_labels(split: str) -> None:
    ds = load(split, modalities=("s1",))
    rows = expected(split, ("sentinel-1.npy",))
    assert ds.targets().dtype == np.int64
    assert ds.targets().tolist() == [SINGLE[t] for _, t in rows]
    for i, (folder, type_) in enumerate(rows):
        sample = ds[i]
        assert int(sample["label"]) == SINGLE[type_]
        assert sample["meta"]["id"] == folder and sample["meta"]["type"] == type_


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_multi_labels(split: str) -> None:
    ds = load(split, multilabel=True, modalities=("s1",))
    rows = expected(split, ("sentinel-1.npy",))
    targets = ds.targets()
    assert targets.dtype == np.float32 and targets.shape == (len(rows), 6)
    np.testing.assert_array_equal(targets, [MULTI[t] for _, t in rows])
    label = ds[0]["label"]
    assert label.dtype == torch.float32
    assert label.tolist() == MULTI[rows[0][1]]


def test_bare_and_relative_folders_both_found() -> None:
    ds = load("train", modalities=("s1",))
    ids = [ds[i]["meta"]["id"] for i in range(len(ds))]
    given = {
        (d, loc): bare
        for d, loc, _, bare, left in GEN.LOCATIONS["train"]
        if "*" not in left and f"{d}/{loc}" in ids
    }
    assert any(given.values()) and not all(given.values())
    assert len(given) == len(ids)
    dirs = {i.rsplit("/", 1)[0] for i in ids}
    assert dirs == {f"train_images/train_images_{k}" for k in (1, 2, 3)}


def test_roundabout_is_negative_and_property() -> None:
    ds = load("test", modalities=("s1",))
    assert ds.negative_class == 6 == ds.classes.index("Negative")
    types = [ds[i]["meta"]["type"] for i in range(len(ds))]
    k = types.index("Roundabout")
    assert int(ds[k]["label"]) == ds.negative_class


def test_keep_negative() -> None:
    full = load("train")
    kept = load("train", keep_negative=False)
    assert 6 not in kept.targets().tolist()
    assert len(kept) == len(full) - int((full.targets() == 6).sum())
    assert len(kept) < len(full)


def test_multilabel_keep_negative_drops_all_zero_rows() -> None:
    kept = load("train", multilabel=True, keep_negative=False)
    assert (kept.targets().sum(1) > 0).all()


# -- incomplete locations ---------------------------------------------------------------


def test_incomplete_locations_left_out_with_one_warning() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = MeterML(ROOT, "train")
    msgs = [str(w.message) for w in caught if "METER-ML" in str(w.message)]
    assert len(msgs) == 1
    assert "left out 2 of 10" in msgs[0]
    assert "train_images/train_images_1/40.4406_-79.9959" in msgs[0]
    assert "32.7767_-96.7970" in msgs[0]
    reasons = dict(ds.skipped)
    assert reasons["train_images/train_images_1/40.4406_-79.9959"] == "missing sentinel-2-60m.npy"
    assert reasons["32.7767_-96.7970"].startswith("folder not found")
    assert "1 left out: missing sentinel-2-60m.npy" in ds.skipped_summary()


def test_complete_split_does_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = MeterML(ROOT, "val")
    assert ds.skipped == []


def test_only_needed_files_are_required() -> None:
    # The Mines location lacks only its 60 m file: with 10 m bands alone it is complete.
    ds = load("train", modalities=("s2",), s2_bands=["10m"])
    ids = [ds[i]["meta"]["id"] for i in range(len(ds))]
    assert "train_images/train_images_1/40.4406_-79.9959" in ids
    assert len(ds) == len(expected("train", ("sentinel-2-10m.npy",)))
    assert [s[0] for s in ds.skipped] == ["32.7767_-96.7970"]


# -- band selection --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "bands", "size"),
    [
        (["10m"], ["B04", "B03", "B02", "B08"], 72),
        (["20m"], ["B05", "B06", "B07", "B8A", "B11", "B12"], 36),
        (["60m"], ["B01", "B09", "B10"], 12),
        (["B05", "10m"], ["B05", "B04", "B03", "B02", "B08"], 72),
        (["60m", "B11"], ["B01", "B09", "B10", "B11"], 36),
        (["B10", "B01"], ["B10", "B01"], 12),
        (["B12", "B02", "B09"], ["B12", "B02", "B09"], 72),
    ],
)
def test_s2_bands(spec: list[str], bands: list[str], size: int) -> None:
    ds = load("val", modalities=("s2",), s2_bands=spec)
    assert ds.bands["s2"] == tuple(bands)
    x = ds[1]["s2"]
    assert x.shape == (len(bands), size, size)
    ref = s2_reference(ROOT / ds[1]["meta"]["id"], bands, size)
    np.testing.assert_allclose(x.numpy(), ref, rtol=1e-5, atol=1e-2)


def test_s2_bands_via_bands_mapping() -> None:
    a = load("val", modalities=("s2",), bands={"s2": ["B8A", "B04"]})
    b = load("val", modalities=("s2",), s2_bands=["B8A", "B04"])
    assert torch.equal(a[0]["s2"], b[0]["s2"])


def test_band_subsets_of_s1_and_naip() -> None:
    ds = load("val", modalities=("naip", "s1"), bands={"naip": ["NIR", "R"], "s1": ["VH"]})
    sample = ds[0]
    assert list(sample)[:2] == ["naip", "s1"]
    d = ROOT / sample["meta"]["id"]
    naip = np.asarray(Image.open(d / "naip.png"))
    np.testing.assert_array_equal(sample["naip"].numpy(), naip[..., [3, 0]].transpose(2, 0, 1))
    np.testing.assert_array_equal(sample["s1"][0].numpy(), np.load(d / "sentinel-1.npy")[..., 1])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"s2_bands": ["30m"]}, "30m"),
        ({"s2_bands": ["10m", "B04"]}, "B04"),
        ({"s2_bands": []}, "empty"),
        ({"s2_bands": ["B01"], "bands": {"s2": ["B01"]}}, "either"),
        ({"split": "validation"}, "validation"),
        ({"modalities": ("rgb",)}, "rgb"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    kwargs = {"split": "val", **kwargs}
    with pytest.raises(ValueError, match=match):
        MeterML(ROOT, **kwargs)


# -- errors ----------------------------------------------------------------------------


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=re.escape(str(tmp_path / "nowhere"))):
        MeterML(tmp_path / "nowhere")


def test_missing_geojson(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"val_dataset\.geojson"):
        MeterML(tmp_path, "val")


def test_malformed_geojson(tmp_path: Path) -> None:
    (tmp_path / "val_dataset.geojson").write_text('{"type": "FeatureCollection"')
    with pytest.raises(DatasetFileError, match=r"val_dataset\.geojson"):
        MeterML(tmp_path, "val")
    (tmp_path / "val_dataset.geojson").write_text('{"features": [{"properties": {}}]}')
    with pytest.raises(DatasetFileError, match="Image_Folder"):
        MeterML(tmp_path, "val")


def test_unknown_type(tmp_path: Path) -> None:
    root = copy_root(tmp_path)
    path = root / "val_dataset.geojson"
    data = json.loads(path.read_text())
    data["features"][1]["properties"]["Type"] = "CAFOs-Pipelines"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="Pipelines") as err:
        MeterML(root, "val")
    assert str(path) in str(err.value)


def _corrupt(folder: Path, name: str, how: str) -> None:
    path = folder / name
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    elif how == "shape":
        np.save(path, np.zeros((72, 72, 3), np.uint16))
    elif how == "garbage":
        path.write_bytes(b"definitely not an image")
    elif how == "small":
        Image.fromarray(np.zeros((360, 360, 4), np.uint8)).save(path)
    elif how == "rgb":
        Image.fromarray(np.zeros((720, 720, 3), np.uint8)).save(path)


@pytest.mark.parametrize(
    ("name", "how", "match"),
    [
        ("sentinel-1.npy", "truncated", "cannot read"),
        ("sentinel-2-20m.npy", "truncated", "cannot read"),
        ("sentinel-2-10m.npy", "shape", "shape"),
        ("naip.png", "garbage", "cannot read"),
        ("naip.png", "small", "360 x 360"),
        ("naip.png", "rgb", "channels"),
    ],
)
def test_bad_files_name_the_path(tmp_path: Path, name: str, how: str, match: str) -> None:
    root = copy_root(tmp_path)
    ds = MeterML(root, "val")
    folder = root / ds[1]["meta"]["id"]
    _corrupt(folder, name, how)
    ds[0]  # other locations are unaffected
    with pytest.raises(DatasetFileError, match=match) as err:
        ds[1]
    assert str(folder / name) in str(err.value)


# -- plotting --------------------------------------------------------------------------


@pytest.mark.parametrize("multilabel", [False, True])
def test_plot(multilabel: bool) -> None:
    ds = load("val", multilabel=multilabel)
    sample = ds[1]
    fig = ds.plot(sample, suptitle="val")
    try:
        assert isinstance(fig, Figure)
        # S1 false colour, S2 true colour, NAIP RGB and NIR.
        assert len(fig.axes) == 4
        title = fig.axes[0].get_title()
        assert ("WWTreatment" in title) and (("RefineriesAndTerminals" in title) == multilabel)
    finally:
        plt.close(fig)


# -- datamodule ------------------------------------------------------------------------


def _dm(**kwargs) -> MeterMLDataModule:
    kwargs = {"batch_size": 3, "s2_bands": ["10m"], **kwargs}
    return MeterMLDataModule(str(ROOT), **kwargs)


@pytest.mark.filterwarnings(SKIP_WARNING, STATS_WARNING)
def test_datamodule_batches_and_eval_augment() -> None:
    dm = _dm()
    dm.setup("fit")
    assert dm.negative_class == 6
    batch = next(iter(dm.train_dataloader()))
    assert batch["s1"].shape == (3, 2, 72, 72)
    assert batch["s2"].shape == (3, 4, 72, 72)
    assert batch["naip"].shape == (3, 4, 720, 720)
    assert batch["label"].shape == (3,) and batch["label"].dtype == torch.int64
    assert len(batch["meta"]["id"]) == 3

    # Statistics estimated on every training location, checked against numpy. With
    # only 10 m Sentinel-2 bands, the location lacking its 60 m file is complete.
    rows = expected("train", ("sentinel-1.npy", "sentinel-2-10m.npy", "naip.png"))
    assert len(dm.datasets["train"]) == len(rows) == 9
    ref = {
        "s1": np.stack([np.load(ROOT / f / "sentinel-1.npy") for f, _ in rows]),
        "s2": np.stack([np.load(ROOT / f / "sentinel-2-10m.npy") for f, _ in rows]),
        "naip": np.stack([np.asarray(Image.open(ROOT / f / "naip.png")) for f, _ in rows]),
    }
    stats = dm.stats
    for m, arr in ref.items():
        flat = arr.reshape(-1, arr.shape[-1]).astype(np.float64)
        np.testing.assert_allclose(stats[m][0].numpy(), flat.mean(0), rtol=1e-5)
        np.testing.assert_allclose(stats[m][1].numpy(), flat.std(0), rtol=1e-4)

    out = dm.apply_augment(batch, train=False)
    assert torch.equal(out["label"], batch["label"])
    for m in ("s1", "s2", "naip"):
        assert isinstance(out[m], list) and len(out[m]) == 1
        mean, std = stats[m]
        want = (batch[m] - mean[None, :, None, None]) / std[None, :, None, None]
        torch.testing.assert_close(out[m][0], want, rtol=1e-4, atol=1e-4)


@pytest.mark.filterwarnings(SKIP_WARNING)
def test_datamodule_forwards_dataset_options() -> None:
    dm = _dm(modalities=("s2",), s2_bands=["60m", "B02"], multilabel=True, keep_negative=False)
    assert dm.hparams["s2_bands"] == ["60m", "B02"]
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    assert set(batch) == {"s2", "label", "meta"}
    assert batch["s2"].shape[1:] == (4, 72, 72)
    assert batch["label"].dtype == torch.float32 and batch["label"].shape[1] == 6
    assert (batch["label"].sum(1) > 0).all()
    dm.setup("test")
    assert len(dm.datasets["test"]) == 2  # the Roundabout location is dropped


@pytest.mark.filterwarnings(SKIP_WARNING)
@pytest.mark.parametrize("multilabel", [False, True])
def test_label_fraction_stratified_seeded_nested(multilabel: bool) -> None:
    full = load("train", modalities=("s1",)).targets()  # single labels = strata here
    subsets = {}
    for fraction in (0.3, 0.5, 0.75, 1.0):
        dm = _dm(modalities=("s1",), label_fraction=fraction, seed=7, multilabel=multilabel)
        dm.setup("fit")
        ds = dm.datasets["train"]
        idx = list(getattr(ds, "indices", range(len(ds))))
        subsets[fraction] = set(idx)
        again = _dm(modalities=("s1",), label_fraction=fraction, seed=7, multilabel=multilabel)
        again.setup("fit")
        assert list(getattr(again.datasets["train"], "indices", range(len(ds)))) == idx
        counts = {c: int((full[idx] == c).sum()) for c in np.unique(full)}
        for c in np.unique(full):
            n = int((full == c).sum())
            assert counts[c] == max(1, round(fraction * n)), (fraction, c)
    assert len(subsets[0.5]) < len(subsets[1.0]) == len(full)
    assert subsets[0.3] <= subsets[0.5] <= subsets[0.75] <= subsets[1.0]


# -- resized copies and shapes checked when built (issue 15, item 10) -----------------


def _resize_png(path: Path, size: int) -> None:
    with Image.open(path) as img:
        img.resize((size, size), Image.Resampling.BILINEAR).save(path)


def test_a_resized_file_is_resized_back_with_one_warning(tmp_path: Path) -> None:
    root = copy_root(tmp_path)
    odd = root / MeterML(root, "val")[0]["meta"]["id"] / "naip.png"
    _resize_png(odd, 72)
    with pytest.warns(UserWarning) as record:
        ds = MeterML(root, "val")
    messages = [str(w.message) for w in record]
    assert len(messages) == 1
    assert messages[0].startswith(
        "METER-ML val: 1 of 15 files are not the size most locations store them at "
        f"(naip.png: 1 (720 x 720 elsewhere)), e.g. {ds[0]['meta']['id']}/naip.png; "
        "they are resized to s1 72 x 72, s2 72 x 72, naip 720 x 720"
    )
    batch = torch.utils.data.default_collate([ds[i] for i in range(len(ds))])
    assert batch["naip"].shape == (3, 4, 720, 720)


def test_image_size_declares_the_size_of_each_modality(tmp_path: Path) -> None:
    root = copy_root(tmp_path)
    ds = MeterML(root, "val", image_size={"naip": 72})
    x = ds[0]["naip"]
    assert x.shape == (4, 72, 72) and ds[0]["s1"].shape == (2, 72, 72)
    with Image.open(root / ds[0]["meta"]["id"] / "naip.png") as img:
        full = torch.from_numpy(np.asarray(img).transpose(2, 0, 1).astype(np.float32))
    # NAIP is blocky in 90 px blocks: the 720 -> 72 resize keeps each block's value inside
    torch.testing.assert_close(x[:, 4, 4], full[:, 45, 45])
    assert ds.training_gsd() == {"s1": 10.0, "s2": 10.0, "naip": 10.0}
    assert MeterML.gsd_for(("naip",), {"image_size": {"naip": 72}}) == {"naip": 10.0}
    # a copy resized everywhere (as the thesis did) needs no option and gives no warning
    for png in root.glob("val_images/*/naip.png"):
        _resize_png(png, 72)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resized = MeterML(root, "val")
    assert resized[1]["naip"].shape == (4, 72, 72)
    assert resized.training_gsd()["naip"] == 10.0


@pytest.mark.parametrize(
    ("name", "how", "match"),
    [
        ("sentinel-1.npy", "truncated", "cannot read array"),
        ("sentinel-2-10m.npy", "shape", "has 3 channels, expected 4"),
        ("naip.png", "garbage", "cannot read image"),
        ("naip.png", "rgb", "has 3 channels, expected 4"),
    ],
)
def test_bad_files_fail_when_the_dataset_is_built(
    tmp_path: Path, name: str, how: str, match: str
) -> None:
    root = copy_root(tmp_path)
    folder = root / MeterML(root, "val")[1]["meta"]["id"]
    _corrupt(folder, name, how)
    with pytest.raises(DatasetFileError, match=match) as err:
        MeterML(root, "val")
    assert str(folder / name) in str(err.value)


@pytest.mark.parametrize("size", [0, -3, 7.5, {"dem": 3}])
def test_bad_image_size(size: object) -> None:
    with pytest.raises(ValueError, match="image_size"):
        MeterML(ROOT, "val", image_size=size)
