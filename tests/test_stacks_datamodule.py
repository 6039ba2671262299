"""CoRegisteredStack datasets and datamodule: stats, label fraction, one pre-training step."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning import Trainer

from rsmm.datamodules import CoRegisteredStackDataModule
from rsmm.datasets import CoRegisteredStack
from rsmm.stacks import build_manifest, spec_from_dirs, write_manifest
from rsmm.stacks.spec import LabelSpec
from rsmm.tasks import PretrainTask

SCENE = Path(__file__).parent / "data" / "stacks" / "scene"


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = spec_from_dirs(
        {"s2": SCENE / "s2", "s1": SCENE / "s1"},
        chip_size="160m",
        stride="80m",
        block_size="320m",
        split=(0.6, 0.2, 0.2),
        seed=1,
        labels=LabelSpec(str(SCENE / "labels.gpkg"), "landcover", "points"),
        crs="EPSG:32618",  # the one-CRS grid these counts were taken on
    )
    return write_manifest(build_manifest(spec), tmp_path_factory.mktemp("dm") / "chips.parquet")


def test_train_stats_match_a_naive_computation(manifest: Path) -> None:
    ds = CoRegisteredStack(manifest, split="train")
    assert len(ds) > 0
    pix: dict[str, list[np.ndarray]] = {"s1": [], "s2": []}
    for i in range(len(ds)):
        for m, (arr, _) in ds.read_raw(i).items():
            pix[m].append(arr.reshape(len(arr), -1))
    for m, parts in pix.items():
        x = np.concatenate(parts, axis=1).astype(np.float64)
        mean, std = ds.band_stats()[m]
        np.testing.assert_allclose(mean.numpy(), np.nanmean(x, 1), rtol=1e-4)
        np.testing.assert_allclose(std.numpy(), np.nanstd(x, 1), rtol=1e-3)


def test_dataset_selects_splits_modalities_and_bands(manifest: Path) -> None:
    everything = CoRegisteredStack(manifest)
    parts = [CoRegisteredStack(manifest, split=s) for s in ("train", "val", "test")]
    assert sum(len(p) for p in parts) == len(everything)
    ids = [set(p.chips["chip_id"]) for p in parts]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    ds = CoRegisteredStack(manifest, modalities=["s2"], bands={"s2": ["B08", "B04"]})
    full = everything[0]
    sample = ds[0]
    assert set(sample) == {"s2", "label", "meta"}
    order = everything.bands["s2"]
    idx = [order.index("B08"), order.index("B04")]
    torch.testing.assert_close(sample["s2"], full["s2"][idx])
    assert sample["label"].dtype == torch.int64
    np.testing.assert_array_equal(everything.targets(), everything.chips["label"].to_numpy())
    with pytest.raises(ValueError, match="split must be one of"):
        CoRegisteredStack(manifest, split="training")
    with pytest.raises(ValueError, match="bands"):
        CoRegisteredStack(manifest, bands={"s1": ["HH"]})
    with pytest.raises(FileNotFoundError, match="chip manifest not found"):
        CoRegisteredStack(manifest.with_name("missing.parquet"))


def test_label_fraction_and_pretraining_step(manifest: Path, tmp_path: Path) -> None:
    dm = CoRegisteredStackDataModule(str(manifest), batch_size=4, views=2, label_fraction=0.5)
    dm.setup("fit")
    train = CoRegisteredStack(manifest, split="train")
    labels = train.targets()
    picked = labels[np.asarray(dm.datasets["train"].indices)]
    for c in np.unique(labels[labels >= 0]):
        n = int((labels == c).sum())
        assert int((picked == c).sum()) == max(1, round(0.5 * n))
    mean, _ = dm.stats["s1"]
    torch.testing.assert_close(mean, train.band_stats()["s1"][0])
    dm = CoRegisteredStackDataModule(str(manifest), batch_size=4, views=2)
    task = PretrainTask(backbone="tiny_cnn", projection_dim=8, hidden_dim=16)
    trainer = Trainer(
        accelerator="cpu",
        fast_dev_run=True,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(task, dm)
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    assert task.hparams.in_channels == {"s2": 13, "s1": 2}
