"""Multi-label label fractions (nested iterative stratification) and the BigEarthNet datamodule.

The datamodule runs on the six real BigEarthNet example patches of ``bigearthnet-common``'s
wheel (code Apache-2.0, data CDLA-Permissive-1.0; ``tests/bigearthnet_examples.py``) and
on the fake v2 layout (``tests/data/bigearthnet``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from bigearthnet_examples import SNOW, SPLITS, arrange_v1

from rsmm.datamodules import BigEarthNetDataModule, multilabel_subset
from rsmm.datamodules.multilabel import iterative_stratification
from rsmm.errors import ConfigError
from rsmm.manifests import load_manifest

V2 = Path(__file__).resolve().parent / "data" / "bigearthnet" / "v2"


def skewed_targets(n: int = 6000, k: int = 12, seed: int = 0) -> np.ndarray:
    """Multi-hot targets with BigEarthNet-like imbalance and a class with 5 positives."""
    rng = np.random.default_rng(seed)
    rates = np.geomspace(0.4, 0.002, k)
    y = (rng.random((n, k)) < rates).astype(np.float32)
    y[:, -1] = 0
    y[rng.choice(n, 5, replace=False), -1] = 1
    return y


def test_iterative_stratification_keeps_each_class_share() -> None:
    y = skewed_targets()
    drawn = iterative_stratification(y, 0.1, np.random.default_rng(1))
    assert abs(len(drawn) - 600) <= 1
    want = 0.1 * y.sum(0)
    assert np.all(np.abs(y[drawn].sum(0) - want) <= 1)  # each class within one positive


def test_fractions_are_nested_seeded_and_cover_every_class() -> None:
    y = skewed_targets()
    full = multilabel_subset(y, 1.0, seed=3)
    ten = multilabel_subset(y, 0.1, seed=3)
    one = multilabel_subset(y, 0.01, seed=3)
    np.testing.assert_array_equal(full, np.arange(len(y)))
    assert set(one) < set(ten) < set(full)
    np.testing.assert_array_equal(one, multilabel_subset(y, 0.01, seed=3))  # seeded
    assert not np.array_equal(one, multilabel_subset(y, 0.01, seed=4))
    for subset in (ten, one):
        assert (y[subset].sum(0) > 0).all()  # the 5-positive class too
    # sizes: the fraction, plus at most one added positive per class
    assert 600 <= len(ten) <= 600 + y.shape[1] and 60 <= len(one) <= 60 + y.shape[1]
    # class proportions close to the full set's
    assert np.abs(y[ten].mean(0) - y.mean(0)).max() < 0.01
    assert np.abs(y[one].mean(0) - y.mean(0))[:-1].max() < 0.03
    # a fraction off the ladder is drawn from the ladder level above it
    assert set(multilabel_subset(y, 0.05, seed=3)) <= set(ten)


def test_unlabelled_rows_and_bad_fractions() -> None:
    y = skewed_targets(500)
    y[:50] = -1
    assert multilabel_subset(y, 0.2, seed=0).min() >= 50
    with pytest.raises(ConfigError, match="label_fraction"):
        multilabel_subset(y, 0.0)
    with pytest.raises(ConfigError, match="2-D"):
        multilabel_subset(y[:, 0], 0.5)
    with pytest.raises(ConfigError, match="none is labelled"):
        multilabel_subset(-np.ones((4, 3)), 0.5)


# -- the datamodule ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def v1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return arrange_v1(tmp_path_factory.mktemp("ben") / "v1")


def setup(dm: BigEarthNetDataModule, stage: str) -> BigEarthNetDataModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dm.setup(stage)
    return dm


def test_datamodule_on_the_real_patches(v1: Path) -> None:
    dm = setup(BigEarthNetDataModule(str(v1), batch_size=2), "fit")
    assert len(dm.datasets["train"]) == len(SPLITS["train"]) - 1  # the snow patch is out
    assert len(dm.datasets["val"]) == 1
    assert dm.num_classes == 19 and dm.band_names["s2"][-1] == "B12"
    manifest = load_manifest("bigearthnet")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # published statistics: nothing estimated
        stats = dm.stats
    torch.testing.assert_close(stats["s2"][0][1], torch.tensor(manifest.modality("s2").stats["B02"][0]))
    batch = next(iter(dm.train_dataloader()))
    assert batch["s1"].shape == (2, 2, 120, 120) and batch["s2"].shape == (2, 12, 120, 120)
    assert batch["label"].dtype == torch.float32 and batch["label"].shape == (2, 19)
    assert len(batch["meta"]["id"]) == 2
    out = dm.apply_augment(batch, train=False)
    mean, std = stats["s1"]
    expected = (batch["s1"] - mean[None, :, None, None]) / std[None, :, None, None]
    torch.testing.assert_close(out["s1"][0], expected)


def test_label_fraction_draws_a_covering_subset(v1: Path) -> None:
    dm = setup(BigEarthNetDataModule(str(v1), label_fraction=0.5, seed=2), "fit")
    train = dm.datasets["train"]
    full = setup(BigEarthNetDataModule(str(v1)), "fit").datasets["train"]
    y = full.targets()
    picked = y[train.indices]
    # every class of the full training split keeps a positive
    assert ((picked.sum(0) > 0) == (y.sum(0) > 0)).all()
    assert SNOW not in [full.ids[i] for i in train.indices]


def test_datamodule_on_the_v2_layout() -> None:
    dm = setup(BigEarthNetDataModule(str(V2), version=2, modalities=["s2"]), "test")
    ds = dm.datasets["test"]
    assert len(ds) == 2 and ds[0]["s2"].shape == (12, 120, 120)
    with pytest.raises(ConfigError, match="v2 labels use the 19 classes"):
        setup(BigEarthNetDataModule(str(V2), version=2, num_classes=43), "test")
