"""The baseline SSL methods inside Lightning: a few steps on fake EuroSAT and on fake
multimodal Meter-ML, the EMA schedule during a run, and a bit-exact checkpoint/resume."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from helpers import cpu_trainer
from lightly.utils.scheduler import cosine_schedule
from lightning import Callback, Trainer, seed_everything
from torch.utils.data import DataLoader, Dataset

from rsmm.datamodules import EuroSATDataModule, MeterMLDataModule
from rsmm.tasks import PretrainTask
from rsmm.tasks.objectives import objective_names
from rsmm.tasks.objectives.ssl import SSLMethod

METERML = Path(__file__).parent / "data" / "meterml"

OPTIONS = {"moco": {"queue_size": 16}}
SSL_METHODS = objective_names(SSLMethod)


def trainer(tmp: Path, max_steps: int, callbacks: list[Callback] | None = None) -> Trainer:
    warnings.filterwarnings("ignore", message=".*(estimated them|num_workers|log_every_n).*")
    return cpu_trainer(
        tmp, max_steps=max_steps, limit_val_batches=0, deterministic=True, callbacks=callbacks
    )


def tiny_task(loss: str, **kw) -> PretrainTask:
    return PretrainTask(
        backbone="tiny_cnn",
        projection_dim=8,
        hidden_dim=16,
        loss=loss,
        loss_kwargs=OPTIONS.get(loss),
        **kw,
    )


@pytest.mark.parametrize("loss", SSL_METHODS)
def test_each_method_trains_on_fake_eurosat(
    tmp_path: Path, torchgeo_fixtures: Path, loss: str
) -> None:
    dm = EuroSATDataModule(
        str(torchgeo_fixtures / "eurosat"), batch_size=2, views=2, augment="mm_pretrain"
    )
    task = tiny_task(loss)
    assert not task._built  # built from the datamodule's bands
    tr = trainer(tmp_path, 2)
    tr.fit(task, dm)
    assert task.hparams.in_channels == {"s2": 13}
    assert torch.isfinite(tr.callback_metrics["train/loss"])
    assert tr.global_step == 2


@pytest.mark.parametrize("loss", SSL_METHODS)
def test_each_method_trains_on_fake_multimodal_meterml(tmp_path: Path, loss: str) -> None:
    dm = MeterMLDataModule(
        str(METERML), modalities=["s1", "s2"], s2_bands=["10m"], batch_size=4, views=1
    )
    task = tiny_task(loss)
    tr = trainer(tmp_path, 2)
    tr.fit(task, dm)
    assert torch.isfinite(tr.callback_metrics["train/loss"])
    assert task.hparams.in_channels == {"s1": 2, "s2": 4}
    if loss in ("moco", "byol"):  # one target per modality
        assert set(task.method.target.net.backbones) == {"s1", "s2"}


class Pairs(Dataset):
    """Fixed two-modality samples (no randomness in loading)."""

    def __init__(self, n: int = 8) -> None:
        g = torch.Generator().manual_seed(1)
        self.s1 = torch.randn(n, 2, 12, 12, generator=g)
        self.s2 = torch.randn(n, 3, 12, 12, generator=g)

    def __len__(self) -> int:
        return len(self.s1)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"s1": self.s1[i], "s2": self.s2[i], "label": torch.tensor(-1)}


def loader() -> DataLoader:
    """One batch per epoch: Lightning restarts a non-stateful loader's epoch from its
    first batch on resume, so this keeps the data of both runs the same."""
    return DataLoader(Pairs(4), batch_size=4, shuffle=False, num_workers=0)


def paired_task(loss: str, **options) -> PretrainTask:
    return PretrainTask(
        in_channels={"s1": 2, "s2": 3},
        backbone="tiny_cnn",
        projection_dim=8,
        hidden_dim=16,
        loss=loss,
        loss_kwargs=options,
        lr=1e-2,
    )


class EMARecorder(Callback):
    """Online and target weights right before each training step."""

    def __init__(self) -> None:
        self.online: list[list[torch.Tensor]] = []
        self.target: list[list[torch.Tensor]] = []

    def on_train_batch_start(self, trainer, task, *args) -> None:
        self.online.append([p.detach().clone() for p in task.encoder.parameters()])
        self.target.append([p.detach().clone() for p in task.method.target.net.parameters()])


@pytest.mark.parametrize("loss", ["moco", "byol"])
def test_target_follows_the_cosine_momentum_schedule(tmp_path: Path, loss: str) -> None:
    """Before step s+1 the target is ``m_s * target + (1 - m_s) * online`` of step s,
    with m_s lightly's cosine schedule over the run's 6 optimiser steps."""
    rec = EMARecorder()
    task = paired_task(loss, momentum=0.6, momentum_end=0.9)
    trainer(tmp_path, 6, [rec]).fit(task, loader())
    assert len(rec.online) == 6
    for s in range(5):
        m = cosine_schedule(s, 6, 0.6, 0.9)
        for t0, o0, t1 in zip(rec.target[s], rec.online[s], rec.target[s + 1]):
            torch.testing.assert_close(t1, m * t0 + (1 - m) * o0, rtol=0, atol=1e-6)
    moved = sum((a - b).abs().sum() for a, b in zip(rec.target[0], rec.target[-1]))
    assert moved > 0
    opt = task.trainer.optimizers[0]
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert not in_opt & {id(p) for p in task.method.target.parameters()}
    if loss == "byol":
        assert {id(p) for p in task.method.predictors.parameters()} <= in_opt


class StopAfter(Callback):
    def __init__(self, steps: int) -> None:
        self.steps = steps

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step >= self.steps:
            trainer.should_stop = True


@pytest.mark.parametrize(
    ("loss", "options"),
    [("moco", {"queue_size": 12, "momentum": 0.9}), ("byol", {"momentum": 0.9})],
)
def test_checkpoint_resume_is_bit_exact(tmp_path: Path, loss: str, options: dict) -> None:
    """4 steps in one go == 2 steps, checkpoint, 2 more in a fresh Trainer (the 12-key
    queue wraps around: 8 keys a step)."""
    n = 4
    seed_everything(0)
    whole = paired_task(loss, **options)
    trainer(tmp_path / "whole", n).fit(whole, loader())

    seed_everything(0)
    first = paired_task(loss, **options)
    tr = trainer(tmp_path / "first", n, [StopAfter(n // 2)])
    tr.fit(first, loader())
    assert tr.global_step == n // 2
    ckpt = tmp_path / "half.ckpt"
    tr.save_checkpoint(ckpt)

    seed_everything(123)  # a different start: everything must come from the checkpoint
    resumed = paired_task(loss, **options)
    tr2 = trainer(tmp_path / "resumed", n)
    tr2.fit(resumed, loader(), ckpt_path=str(ckpt))
    assert tr2.global_step == n

    a, b = whole.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys()
    names = [k for k in a if k.startswith("method.")]
    assert any(k.startswith("method.target.net.") for k in names)
    if loss == "moco":
        assert {"method.keys.queue", "method.keys.queue_ptr"} <= set(names)
        assert int(a["method.keys.queue_ptr"]) == (n * 8) % 12
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # and the halfway state really differed from the end state
    half = torch.load(ckpt, weights_only=True)["state_dict"]
    for prefix in ("encoder.backbones.s1.", "method.target.net.backbones.s1."):
        key = next(k for k in half if k.startswith(prefix) and k.endswith("weight"))
        assert not torch.equal(half[key], a[key]), key
