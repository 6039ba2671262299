"""Every pre-training objective runs a few steps inside PretrainTask on fake data."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from helpers import cpu_trainer
from lightning import Trainer

from rsmm.datamodules import MeterMLDataModule, SyntheticDataModule
from rsmm.models.views import EmbeddedViews
from rsmm.tasks import PretrainTask
from rsmm.tasks.objectives import Ranks, objective_names
from rsmm.tasks.objectives.contrastive import ContrastiveObjective
from rsmm.tasks.objectives.pairwise import PairwiseObjective

CONTRASTIVE = objective_names(ContrastiveObjective)
PAIRWISE = objective_names(PairwiseObjective)

METERML = Path(__file__).parent / "data" / "meterml"


def fit(task: PretrainTask, dm, tmp: Path, steps: int = 2) -> Trainer:
    warnings.filterwarnings("ignore", message=".*estimated them.*")
    tr = cpu_trainer(tmp, max_steps=steps, limit_val_batches=0)
    tr.fit(task, dm)
    return tr


@pytest.mark.parametrize("loss", CONTRASTIVE + PAIRWISE)
def test_each_method_trains_on_fake_meterml(tmp_path: Path, loss: str) -> None:
    dm = MeterMLDataModule(
        str(METERML), modalities=["s1", "s2"], s2_bands=["10m"], batch_size=4, views=1
    )
    task = PretrainTask(backbone="tiny_cnn", projection_dim=8, hidden_dim=16, loss=loss)
    assert not task._built  # built lazily from the datamodule's bands
    tr = fit(task, dm, tmp_path)
    assert torch.isfinite(tr.callback_metrics["train/loss"])
    assert task.hparams.in_channels == {"s1": 2, "s2": 4}


def test_pairwise_loss_is_mean_over_group_pairs() -> None:
    """Three groups (two modalities, one with two views): the task averages the pairwise
    objective over the three pairs, on rows ordered (group, sample)."""
    task = PretrainTask(
        in_channels={"s1": 2}, backbone="tiny_cnn", loss="gca_ince", temperature=0.3
    )
    z = torch.nn.functional.normalize(torch.randn(3 * 5, 8), dim=1)
    fn = task.method.function
    g = z.reshape(3, 5, 8)
    expected = (fn(g[0], g[1], tau=0.3) + fn(g[0], g[2], tau=0.3) + fn(g[1], g[2], tau=0.3)) / 3
    layout = (("s1", 0), ("s1", 1), ("s2", 0))
    views = EmbeddedViews(tuple(g.unbind(0)), layout)
    assert task.method.loss(views, Ranks()).item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError, match="two views or two modalities"):
        task.method.loss(EmbeddedViews((g[0],), layout[:1]), Ranks())


def test_unknown_loss_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="loss: unknown 'simsiam'"):
        PretrainTask(loss="simsiam")


def test_synthetic_two_views_with_augmentation(tmp_path: Path) -> None:
    dm = SyntheticDataModule(
        modalities=("s1", "s2", "naip"),
        num_samples=16,
        size=8,
        batch_size=8,
        views=2,
        augment="mm_pretrain",
    )
    task = PretrainTask(backbone="tiny_cnn", projection_dim=8, hidden_dim=16, loss="ssw_ssl")
    tr = fit(task, dm, tmp_path, steps=1)
    assert torch.isfinite(tr.callback_metrics["train/loss"])


@pytest.mark.parametrize("method", ["argmax", "sinkhorn", "unbalanced"])
def test_dense_matching_with_global_loss(tmp_path: Path, method: str) -> None:
    """S1 and S2 patches at the same GSD and NAIP at 4x: dense plans pair every group,
    including cross-modal pairs of different patch counts."""
    dm = SyntheticDataModule(
        modalities=("s1", "s2", "naip"), num_samples=16, size=16, batch_size=4, views=1
    )
    task = PretrainTask(
        backbone="tiny_cnn", projection_dim=8, hidden_dim=16, dense=method, dense_dim=8
    )
    tr = fit(task, dm, tmp_path, steps=2)
    assert torch.isfinite(tr.callback_metrics["train/loss"])
    assert "s2" in task.encoder.dense_projectors


def test_dense_loss_is_global_plus_dense() -> None:
    from rsmm.losses.ot import dense_contrastive_loss

    task = PretrainTask(
        in_channels={"s1": 2, "s2": 13},
        backbone="tiny_cnn",
        projection_dim=8,
        hidden_dim=16,
        dense="uniform",
        dense_dim=8,
        dense_weight=0.25,
    )
    task.eval()
    views = {"s1": [torch.randn(3, 2, 16, 16)], "s2": [torch.randn(3, 13, 16, 16)]}
    embedded = task.encoder.embed_views(views, dense=True)
    maps = embedded.dense
    glob = task.method.objective.loss(embedded, Ranks())
    dense = dense_contrastive_loss(maps[0], maps[1], method="uniform", tau=task.hparams.temperature)
    total, _ = task.shared_step(views)
    assert total.item() == pytest.approx((0.75 * glob + 0.25 * dense).item(), rel=1e-6)
    with pytest.raises(ValueError, match="dense: unknown"):
        PretrainTask(dense="nearest")


@pytest.mark.parametrize(
    ("loss", "options", "message"),
    [
        ("ntxent", {"tau": 0.1}, r"loss 'ntxent' takes no options"),
        ("supcon", {"alpha": 0.5}, r"loss 'supcon' takes no options"),
        ("ot_sample", {"epsilon": 0.1}, r"\['epsilon'\] are not options of loss 'ot_sample'"),
        ("sw_ssl", {"sliced": "linear"}, r"\['sliced'\] are not options of loss 'sw_ssl'"),
    ],
)
def test_unknown_loss_options_fail_when_configured(loss: str, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PretrainTask(loss=loss, loss_kwargs=options)
    if loss == "ot_sample":  # a known option passes
        PretrainTask(loss=loss, loss_kwargs={"eps": 0.1, "n_iters": 5})
