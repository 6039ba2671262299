"""RESISC-45 adapter, manifest and datamodule, on TorchGeo's fixture and tiny copies."""

from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torchgeo.datasets as tgd
from matplotlib.figure import Figure
from PIL import Image
from torchgeo.datamodules import RESISC45DataModule as TorchGeoRESISC45DataModule

from rsmm.datamodules import RESISC45DataModule
from rsmm.datasets import RESISC45, DatasetFileError, DatasetNotFoundError
from rsmm.manifests import load_manifest

FIXTURE_CLASSES = ["airplane", "airport", "baseball_diamond"]


@pytest.fixture
def root(torchgeo_fixtures: Path) -> Path:
    return torchgeo_fixtures / "resisc45"


def published_classes() -> list[str]:
    """The numbered class list of torchgeo's RESISC45 docstring (``35. sea_ice``).

    Python >= 3.13 strips the docstring's indentation when compiling, so the lines may start
    with the number itself (requiring indentation found only ``0.``, through the blank line
    above it).
    """
    found = re.findall(r"^[ \t]*(\d+)\. (\w+)$", tgd.RESISC45.__doc__ or "", re.MULTILINE)
    assert [int(i) for i, _ in found] == list(range(45))
    return [name for _, name in found]


def make_copy(root: Path, tmp: Path, counts: dict[str, int]) -> Path:
    """A RESISC-45 copy holding ``counts[c]`` images of class ``c`` (fixture JPEGs reused)."""
    names = []
    sources = sorted((root / "NWPU-RESISC45").glob("*/*.jpg"))
    for cls, count in counts.items():
        (tmp / "NWPU-RESISC45" / cls).mkdir(parents=True)
        for n in range(1, count + 1):
            name = f"{cls}_{n:03d}.jpg"
            shutil.copy(sources[(n - 1) % len(sources)], tmp / "NWPU-RESISC45" / cls / name)
            names.append(name)
    for split in ("train", "val", "test"):
        (tmp / f"resisc45-{split}.txt").write_text("\n".join(names) + "\n")
    return tmp


# -- manifest ------------------------------------------------------------------------------


def test_manifest_classes_and_stats() -> None:
    m = load_manifest("resisc45")
    assert list(m.classes) == published_classes()
    assert list(m.classes) == sorted(m.classes)
    rgb = m.modality("rgb")
    assert (rgb.sensor, rgb.bands, rgb.units) == ("rgb", ("R", "G", "B"), "dn")
    mean, std = rgb.mean_std(("R", "G", "B"))
    torch.testing.assert_close(mean, TorchGeoRESISC45DataModule.mean.float())
    torch.testing.assert_close(std, TorchGeoRESISC45DataModule.std.float())
    assert "torchgeo/datamodules/resisc45.py" in rgb.stats_source


# -- samples on the fixture ----------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_fixture_samples(root: Path, split: str) -> None:
    ds = RESISC45(root, split=split)
    assert len(ds) == 9
    assert ds.classes == published_classes()
    ref = tgd.RESISC45(str(root), split=split)
    for i in range(len(ds)):
        sample = ds[i]
        assert set(sample) == {"rgb", "label", "meta"}
        x = sample["rgb"]
        assert x.dtype == torch.float32 and x.shape == (3, 256, 256)
        cls = sample["meta"]["id"].rsplit("_", 1)[0]
        assert int(sample["label"]) == published_classes().index(cls)
        assert sample["label"].dtype == torch.int64
        assert sample["meta"]["nodata"] == {"rgb": 0}
        path = root / "NWPU-RESISC45" / cls / f"{sample['meta']['id']}.jpg"
        expected = np.asarray(Image.open(path).convert("RGB")).transpose(2, 0, 1)
        assert np.array_equal(x.numpy(), expected.astype(np.float32))
        assert torch.equal(x, ref[i]["image"])
    np.testing.assert_array_equal(ds.targets(), [0, 0, 0, 1, 1, 1, 2, 2, 2])


def test_band_subset(root: Path) -> None:
    full = RESISC45(root)[4]["rgb"]
    for bands in (("B", "R"), {"rgb": ["B", "R"]}):
        ds = RESISC45(root, bands=bands)
        assert ds.bands == {"rgb": ("B", "R")}
        assert torch.equal(ds[4]["rgb"], full[[2, 0]])
    with pytest.raises(ValueError, match="NIR"):
        RESISC45(root, bands=("R", "NIR"))


def test_plot_returns_figure(root: Path) -> None:
    ds = RESISC45(root)
    fig = ds.plot(ds[3])
    assert isinstance(fig, Figure)
    assert "airport" in fig.axes[0].get_title()
    plt.close(fig)


# -- class ids on partial copies ----------------------------------------------------------------


def test_copy_with_only_airport_keeps_id_1(root: Path, tmp_path: Path) -> None:
    make_copy(root, tmp_path, {"airport": 2})
    # torchgeo numbers the folders it finds: airport would become 0
    assert int(tgd.RESISC45(str(tmp_path))[0]["label"]) == 0
    ds = RESISC45(tmp_path, split="test")
    np.testing.assert_array_equal(ds.targets(), [1, 1])
    assert [int(s["label"]) for s in ds] == [1, 1]


def test_late_classes_keep_their_ids(root: Path, tmp_path: Path) -> None:
    make_copy(root, tmp_path, {"sea_ice": 1, "wetland": 2, "baseball_diamond": 1})
    ds = RESISC45(tmp_path)
    ids = {s["meta"]["id"]: int(s["label"]) for s in ds}
    assert ids == {
        "baseball_diamond_001": 2,
        "sea_ice_001": 35,
        "wetland_001": 44,
        "wetland_002": 44,
    }


# -- errors -------------------------------------------------------------------------------------


def test_missing_root_and_split_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="nowhere"):
        RESISC45(tmp_path / "nowhere")
    with pytest.raises(DatasetNotFoundError, match=r"resisc45-val\.txt"):
        RESISC45(tmp_path, split="val")
    (tmp_path / "resisc45-val.txt").write_text("airport_001.jpg\n")
    with pytest.raises(DatasetNotFoundError, match="NWPU-RESISC45"):
        RESISC45(tmp_path, split="val")


def test_split_file_listing_missing_image(root: Path, tmp_path: Path) -> None:
    make_copy(root, tmp_path, {"airport": 2})
    with open(tmp_path / "resisc45-train.txt", "a") as f:
        f.write("sea_ice_009.jpg\n")
    with pytest.raises(DatasetFileError, match=r"sea_ice/sea_ice_009\.jpg") as err:
        RESISC45(tmp_path)
    assert "resisc45-train.txt" in str(err.value)


def test_grey_image_names_file(root: Path, tmp_path: Path) -> None:
    make_copy(root, tmp_path, {"airport": 1})
    path = tmp_path / "NWPU-RESISC45" / "airport" / "airport_001.jpg"
    Image.new("L", (8, 8), 7).save(path)
    with pytest.raises(DatasetFileError, match=r"airport_001\.jpg"):
        RESISC45(tmp_path)[0]


# -- datamodule ----------------------------------------------------------------------------------


def test_datamodule_batches_and_stats(root: Path) -> None:
    dm = RESISC45DataModule(str(root), bands=("G", "R"), batch_size=4, eval_batch_size=9)
    dm.setup()
    assert dm.num_classes == 45
    batch = next(iter(dm.train_dataloader()))
    assert batch["rgb"].shape == (4, 2, 256, 256) and batch["rgb"].dtype == torch.float32
    assert batch["label"].shape == (4,) and batch["label"].dtype == torch.int64
    for loader in (dm.val_dataloader(), dm.test_dataloader()):
        batch = next(iter(loader))
        assert batch["rgb"].shape == (9, 2, 256, 256)
        assert batch["label"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    mean, std = dm.stats["rgb"]
    torch.testing.assert_close(mean, TorchGeoRESISC45DataModule.mean[[1, 0]].float())
    torch.testing.assert_close(std, TorchGeoRESISC45DataModule.std[[1, 0]].float())


def test_datamodule_label_fraction(root: Path, tmp_path: Path) -> None:
    make_copy(root, tmp_path, {"airplane": 8, "beach": 4, "wetland": 2})

    def train_ids(fraction: float, seed: int) -> list[str]:
        dm = RESISC45DataModule(str(tmp_path), label_fraction=fraction, seed=seed)
        dm.setup("fit")
        train = dm.datasets["train"]
        return [train[i]["meta"]["id"] for i in range(len(train))]

    quarter = train_ids(0.25, seed=3)
    # round(0.25 * n) per class, at least one: 2 airplane, 1 beach, 1 wetland
    assert Counter(i.rsplit("_", 1)[0] for i in quarter) == {
        "airplane": 2,
        "beach": 1,
        "wetland": 1,
    }
    assert train_ids(0.25, seed=3) == quarter
    assert set(quarter) <= set(train_ids(0.5, seed=3))
