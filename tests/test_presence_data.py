"""The presence data path: simulated absence (drop_modalities), stacks with
min_modalities, loaders with batch["presence"], and pre-training on every chip."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import cpu_trainer

from rsmm.datamodules import CoRegisteredStackDataModule
from rsmm.datamodules.absence import dataset_presence, may_lack_modalities
from rsmm.datamodules.synthetic import SyntheticDataModule
from rsmm.datasets import CoRegisteredStack
from rsmm.errors import ConfigError
from rsmm.stacks import build_manifest, read_manifest, spec_from_dirs, write_manifest
from rsmm.tasks import PretrainTask

SCENE = Path(__file__).parent / "data" / "stacks" / "scene"


def _synthetic(**kw):
    kw = {"num_samples": {"train": 40, "val": 16, "test": 16}, "size": 8, "batch_size": 8, **kw}
    dm = SyntheticDataModule(**kw)
    dm.setup(None)
    return dm


def test_drop_modalities_is_seeded_per_split_and_batches_carry_presence():
    dm = _synthetic(drop_modalities={"s2": 0.3})
    again = _synthetic(drop_modalities={"s2": 0.3})
    other_seed = _synthetic(drop_modalities={"s2": 0.3}, seed=1)
    masks = {k: dataset_presence(dm.datasets[k]) for k in ("train", "val", "test")}
    for k, p in masks.items():
        assert p["s1"].all()
        np.testing.assert_array_equal(p["s2"], dataset_presence(again.datasets[k])["s2"])
    assert 0.1 < 1 - masks["train"]["s2"].mean() < 0.5
    assert not np.array_equal(masks["val"]["s2"], masks["test"]["s2"])
    assert not np.array_equal(
        masks["train"]["s2"], dataset_presence(other_seed.datasets["train"])["s2"]
    )
    # the samples lack the key; the loader zero-fills it and flags it
    absent = int(np.flatnonzero(~masks["train"]["s2"])[0])
    assert "s2" not in dm.datasets["train"][absent] and "s1" in dm.datasets["train"][absent]
    seen = {"s1": 0, "s2": 0}
    for batch in dm.val_dataloader():
        assert set(batch["presence"]) == {"s1", "s2"}
        p = batch["presence"]["s2"]
        assert batch["s2"][~p].abs().sum() == 0
        for m in seen:
            seen[m] += int(batch["presence"][m].sum())
    assert seen == {"s1": 16, "s2": int(masks["val"]["s2"].sum())}
    # device-side augmentation keeps absent rows zero and passes presence on
    batch = next(iter(dm.val_dataloader()))
    out = dm.apply_augment(batch, train=False)
    assert torch.equal(out["presence"]["s2"], batch["presence"]["s2"])
    assert out["s2"][0][~batch["presence"]["s2"]].abs().sum() == 0


def test_no_presence_without_absence_and_rates_are_checked():
    dm = _synthetic()
    assert not may_lack_modalities(dm.datasets["train"])
    assert "presence" not in next(iter(dm.val_dataloader()))
    with pytest.raises(ConfigError, match=r"drop_modalities.s2"):
        _synthetic(drop_modalities={"s2": 1.0})
    with pytest.raises(ConfigError, match="'naip' is not a loaded modality"):
        _synthetic(drop_modalities={"naip": 0.2})


def test_a_sample_never_loses_every_modality():
    dm = _synthetic(drop_modalities={"s1": 0.6, "s2": 0.6})
    p = dataset_presence(dm.datasets["train"])
    assert (p["s1"] | p["s2"]).all()
    assert not p["s1"].all() and not p["s2"].all()


@pytest.fixture(scope="module")
def lacking_s2(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    """A stack manifest of the generated scene where 40 % of the chips lack S2."""
    tmp = tmp_path_factory.mktemp("presence")
    spec = spec_from_dirs(
        {"s2": SCENE / "s2", "s1": SCENE / "s1"}, chip_size="160m", split=(1.0, 0.0, 0.0)
    )
    chips = read_manifest(write_manifest(build_manifest(spec), tmp / "full.parquet"))
    n = len(chips.chips)
    lack = np.zeros(n, dtype=bool)
    lack[np.random.default_rng(0).choice(n, size=round(0.4 * n), replace=False)] = True
    table = chips.chips.copy()
    table.loc[lack, "modalities"] = "s1"
    table.loc[lack, "files_s2"] = "[]"
    chips.chips = table
    chips.meta["modalities"]["s2"]["required"] = False
    return write_manifest(chips, tmp / "chips.parquet"), n, int(lack.sum())


def test_stack_min_modalities_keeps_chips_lacking_s2(lacking_s2):
    path, n, lack = lacking_s2
    with pytest.warns(UserWarning, match=f"{n - lack} of the {n} chips"):
        assert len(CoRegisteredStack(path, split="train")) == n - lack
    ds = CoRegisteredStack(path, split="train", min_modalities=1)
    assert len(ds) == n and ds.may_lack_modalities
    assert int((~ds.presence()["s2"]).sum()) == lack
    absent = int(np.flatnonzero(~ds.presence()["s2"])[0])
    sample = ds[absent]
    assert "s2" not in sample and sample["s1"].shape[0] == 2
    assert set(sample["meta"]["nodata"]) == {"s1"}
    assert ds.modality_shape("s2") == tuple(
        ds[int(np.flatnonzero(ds.presence()["s2"])[0])]["s2"].shape
    )
    with pytest.raises(ConfigError, match="min_modalities"):
        CoRegisteredStack(path, min_modalities=3)


def test_pretraining_on_a_stack_where_40_percent_lack_s2_uses_every_chip(lacking_s2, tmp_path):
    path, n, lack = lacking_s2
    dm = CoRegisteredStackDataModule(str(path), batch_size=n, views=2, min_modalities=1)
    task = PretrainTask(backbone="tiny_cnn", projection_dim=8, hidden_dim=16)
    trainer = cpu_trainer(tmp_path, max_epochs=1, limit_val_batches=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(task, dm)
    metrics = trainer.callback_metrics
    assert torch.isfinite(metrics["train/loss"])
    assert int(metrics["train/samples_s1"]) == n
    assert int(metrics["train/samples_s2"]) == n - lack


def test_objectives_that_do_not_handle_absence_refuse_it(lacking_s2, tmp_path):
    path, n, _ = lacking_s2
    dm = CoRegisteredStackDataModule(str(path), batch_size=n, views=2, min_modalities=1)
    task = PretrainTask(backbone="tiny_cnn", projection_dim=8, hidden_dim=16, loss="vicreg")
    trainer = cpu_trainer(tmp_path, max_epochs=1, limit_val_batches=0)
    with warnings.catch_warnings(), pytest.raises(ConfigError, match="'vicreg' does not handle"):
        warnings.simplefilter("ignore")
        trainer.fit(task, dm)
