"""Fusions that tolerate a missing modality, and modality dropout in fine-tuning."""

from __future__ import annotations

import pytest
import torch

from rsmm.errors import ConfigError
from rsmm.models.fusion import FUSIONS, build_fusion, masked_mean, modality_dropout
from rsmm.tasks.finetune import FinetuneTask

DIMS = {"s1": 3, "s2": 5}


def _features(b: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {m: torch.randn(b, d, generator=g) for m, d in DIMS.items()}


PRESENCE = {
    "s1": torch.tensor([True, True, False, True]),
    "s2": torch.tensor([True, False, True, False]),
}


def test_concat_is_torch_cat_with_nothing_missing_and_zero_for_absent_blocks() -> None:
    f = _features()
    fusion = build_fusion("concat", DIMS)
    assert not list(fusion.parameters())
    assert torch.equal(fusion(f), torch.cat([f["s1"], f["s2"]], 1))
    out = fusion(f, PRESENCE)
    assert torch.equal(out[1, 3:], torch.zeros(5)) and torch.equal(out[1, :3], f["s1"][1])
    assert torch.equal(out[2, :3], torch.zeros(3)) and torch.equal(out[2, 3:], f["s2"][2])
    # a modality the batch does not carry is absent for every sample
    only_s1 = fusion({"s1": f["s1"]})
    assert torch.equal(only_s1, torch.cat([f["s1"], torch.zeros(4, 5)], 1))


@pytest.mark.parametrize("name", FUSIONS)
def test_absent_rows_are_never_read(name: str) -> None:
    torch.manual_seed(0)
    fusion = build_fusion(name, DIMS)
    f = _features()
    poisoned = {m: torch.where(PRESENCE[m][:, None], v, float("nan")) for m, v in f.items()}
    out = fusion(poisoned, PRESENCE)
    assert torch.isfinite(out).all()
    assert torch.equal(out, fusion(f, PRESENCE))


def test_masked_mean_averages_the_present_projections() -> None:
    torch.manual_seed(0)
    fusion = build_fusion("masked_mean", DIMS, dim=4)
    assert fusion.out_dim == 4
    f = _features()
    p = {m: fusion.projections[m](f[m]) for m in DIMS}
    out = fusion(f, PRESENCE)
    torch.testing.assert_close(out[0], (p["s1"][0] + p["s2"][0]) / 2)
    torch.testing.assert_close(out[1], p["s1"][1])
    torch.testing.assert_close(out[2], p["s2"][2])
    # without presence: the plain mean
    torch.testing.assert_close(fusion(f), (p["s1"] + p["s2"]) / 2)
    none = masked_mean(p, {m: torch.zeros(4, dtype=torch.bool) for m in DIMS})
    assert torch.equal(none, torch.zeros(4, 4))


def test_concat_missing_learns_the_missing_embedding() -> None:
    fusion = build_fusion("concat_missing", DIMS)
    f = _features()
    assert torch.equal(fusion(f, PRESENCE), build_fusion("concat", DIMS)(f, PRESENCE))
    fusion(f, PRESENCE).sum().backward()
    # s2 is missing on samples 1 and 3, s1 on sample 2
    assert torch.equal(fusion.missing["s2"].grad, torch.full((5,), 2.0))
    assert torch.equal(fusion.missing["s1"].grad, torch.full((3,), 1.0))


def test_fusion_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="fusion"):
        build_fusion("sum", DIMS)
    with pytest.raises(ConfigError, match="fusion_dim"):
        build_fusion("concat", DIMS, dim=8)
    with pytest.raises(ConfigError, match="fusion"):
        FinetuneTask(fusion="sum")
    with pytest.raises(ConfigError, match="projector"):
        FinetuneTask(fusion="masked_mean", head_input="projector")
    with pytest.raises(ConfigError, match="modality_dropout"):
        FinetuneTask(modality_dropout=1.0)


def test_modality_dropout_keeps_a_present_modality_and_is_seeded() -> None:
    n = 4000
    g = torch.Generator().manual_seed(1)
    presence = {
        "s1": torch.rand(n, generator=g) < 0.8,
        "s2": torch.rand(n, generator=g) < 0.6,
        "naip": torch.rand(n, generator=g) < 0.3,
    }
    presence["s1"] |= ~(presence["s2"] | presence["naip"])  # every sample has one
    out = modality_dropout(presence, 0.3, torch.Generator().manual_seed(7))
    again = modality_dropout(presence, 0.3, torch.Generator().manual_seed(7))
    assert all(torch.equal(out[m], again[m]) for m in presence)
    kept = torch.stack([out[m] for m in presence])
    had = torch.stack([presence[m] for m in presence])
    assert not (kept & ~had).any()  # never adds a modality
    assert kept.any(0).all()  # never drops all of a sample's modalities
    # the drop rate of samples with two or more modalities is close to p
    multi = had.sum(0) >= 2
    rate = 1 - kept[:, multi].sum() / had[:, multi].sum()
    assert 0.2 < float(rate) < 0.3
    # the same draws whatever is present: samples present everywhere in both calls agree
    full = {m: torch.ones(n, dtype=torch.bool) for m in presence}
    out_full = modality_dropout(full, 0.3, torch.Generator().manual_seed(7))
    all3 = had.all(0)
    assert all(torch.equal(out_full[m][all3], out[m][all3]) for m in presence)


def _batch(b: int = 6) -> dict:
    g = torch.Generator().manual_seed(3)
    return {
        "s1": torch.randn(b, 2, 8, 8, generator=g),
        "s2": torch.randn(b, 3, 8, 8, generator=g),
        "label": torch.arange(b) % 3,
    }


def test_default_finetune_outputs_are_todays_concat() -> None:
    torch.manual_seed(0)
    task = FinetuneTask(in_channels={"s1": 2, "s2": 3}, num_classes=3, backbone="tiny_cnn").eval()
    batch = _batch()
    expected = task.head(torch.cat([task.encoder.backbones[m](batch[m]) for m in ("s1", "s2")], 1))
    assert torch.equal(task(batch), expected)
    assert not any(k.startswith("fusion.") for k in task.state_dict())


@pytest.mark.parametrize("fusion", FUSIONS)
def test_presence_equals_leaving_the_modality_out(fusion: str) -> None:
    torch.manual_seed(0)
    task = FinetuneTask(
        in_channels={"s1": 2, "s2": 3}, num_classes=3, backbone="tiny_cnn", fusion=fusion
    ).eval()
    batch = _batch()
    none = torch.zeros(6, dtype=torch.bool)
    lacking = dict(batch, presence={"s1": ~none, "s2": none})
    s1_only = {"s1": batch["s1"], "label": batch["label"]}
    torch.testing.assert_close(task(lacking), task(s1_only))
    assert not torch.allclose(task(lacking), task(batch))


def test_modality_dropout_only_while_training() -> None:
    torch.manual_seed(0)
    task = FinetuneTask(
        in_channels={"s1": 2, "s2": 3},
        num_classes=3,
        backbone="tiny_cnn",
        fusion="masked_mean",
        modality_dropout=0.5,
    )
    task.eval()
    assert task.dropped(None, 6) is None
    task.train()
    dropped = task.dropped(None, 64)
    kept = torch.stack(list(dropped.values()))
    assert kept.any(0).all() and not kept.all()
    again = task.dropped(None, 64)  # same step, same seed: same draws
    assert all(torch.equal(dropped[m], again[m]) for m in dropped)


@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_training_loss_never_reads_absent_rows(alpha: float) -> None:
    """Training mode (batch-norm statistics of the batch): what the zero-filled rows of an
    absent modality hold changes neither the loss nor the logits."""
    torch.manual_seed(0)
    task = FinetuneTask(
        in_channels={"s1": 2, "s2": 3},
        num_classes=3,
        backbone="tiny_cnn",
        fusion="masked_mean",
        alpha=alpha,
        projection_dim=8,
        hidden_dim=8,
    ).train()
    batch = _batch()
    has_s2 = torch.tensor([True, False, True, True, False, True])
    batch["presence"] = {"s1": torch.ones(6, dtype=torch.bool), "s2": has_s2}
    batch["s2"] = batch["s2"] * has_s2[:, None, None, None]
    loss, logits = task._loss(batch)
    noisy = dict(batch, s2=torch.where(has_s2[:, None, None, None], batch["s2"], 1e3))
    loss2, logits2 = task._loss(noisy)
    torch.testing.assert_close(loss, loss2)
    torch.testing.assert_close(logits, logits2)
    assert torch.isfinite(loss)
