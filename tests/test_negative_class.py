"""One rule for negative-only classes (a dataset's ``negative_classes``, e.g. Meter-ML's
Negative) in pre-training, the pairwise (OT) objectives and fine-tuning: their samples
are never anchors or positives, but stay wherever samples compete (denominators, plans,
uniformity); the fine-tuning head has no output for them and the metrics leave them out
(thesis section 4.3.2), unless ``negative_head``."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import ot
import pytest
import torch
import torch.nn.functional as F

from rsmm.datamodules import MeterMLDataModule
from rsmm.errors import ConfigError
from rsmm.losses import mm_ntxent, mm_supcon
from rsmm.losses import ot as ot_losses
from rsmm.tasks import FinetuneTask, PretrainTask
from rsmm.tasks.objectives import OBJECTIVES
from rsmm.tasks.objectives.pairwise import PairwiseObjective

METERML = Path(__file__).parent / "data" / "meterml"
LABELS = torch.tensor([0, 2, 1, 2, 0, 1])  # class 2 is negative-only below


def _pretrain(loss: str, **kw) -> PretrainTask:
    task = PretrainTask(
        in_channels={"s2": 3}, backbone="tiny_cnn", projection_dim=8, hidden_dim=16, loss=loss, **kw
    )
    task.eval()
    return task


def _batch() -> dict[str, object]:
    g = torch.Generator().manual_seed(0)
    return {"s2": [torch.randn(6, 3, 16, 16, generator=g) for _ in range(2)], "label": LABELS}


def _embedded(task: PretrainTask, batch: dict[str, object]):
    return task.encoder.embed_views(task.batch_views(batch, task.modalities))


def test_pretraining_contrastive_rows_of_negatives_are_never_anchors_or_positives() -> None:
    task = _pretrain("ntxent", temperature=0.5)
    task.negative_classes = (2,)
    b = _batch()
    got = task.shared_step(b)[0]
    e = _embedded(task, b)
    keep = (LABELS != 2).repeat(2)
    expected = mm_ntxent(e.flat(), e.sample_ids(), 0.5, anchor_mask=keep)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)


def test_pairwise_ot_sample_leaves_the_negatives_twin_terms_out_but_keeps_them_in_the_plan() -> None:
    task = _pretrain("ot_sample", loss_kwargs={"eps": 0.2, "n_iters": 8})
    task.negative_classes = (2,)
    b = _batch()
    got = task.shared_step(b)[0]
    zA, zB = (z.detach().double() for z in _embedded(task, b).unit())
    z = torch.cat([zA, zB]).numpy()
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n2 = len(z)
    C = 1.0 - z @ z.T
    np.fill_diagonal(C, 1e6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        marg = np.full(n2, 1 / n2)
        P = ot.sinkhorn(marg, marg, C, 0.2, method="sinkhorn_log", numItermax=8, stopThr=0)
    rows = [i for i in range(n2) if LABELS[i % 6] != 2]  # all 12 rows are in P
    expected = -np.mean([math.log(n2 * P[i, (i + n2 // 2) % n2]) for i in rows])
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_pairwise_alignment_skips_the_negatives_and_uniformity_keeps_them() -> None:
    task = _pretrain("align_uniform")
    task.negative_classes = (2,)
    b = _batch()
    got = task.shared_step(b)[0]
    zA, zB = _embedded(task, b).unit()
    keep = LABELS != 2
    align = (zA[keep] - zB[keep]).pow(2).sum(1).mean()
    uniform = (ot_losses.uniform_loss(zA) + ot_losses.uniform_loss(zB)) / 2  # all six
    assert got.item() == pytest.approx((align + uniform).item(), rel=1e-5)


@pytest.mark.parametrize(
    "loss", [n for n, c in OBJECTIVES.items() if issubclass(c, PairwiseObjective)]
)
def test_every_pairwise_objective_reads_the_negatives(loss: str) -> None:
    cls = OBJECTIVES[loss]
    # every OT objective applies the rule (the documented negative_class now has effect)
    assert cls.uses_negatives, loss
    assert "anchors" not in cls.defaults  # filled by the objective, never a loss_kwarg
    torch.manual_seed(0)
    task = _pretrain(loss, loss_kwargs={"generator": None} if "generator" in cls.defaults else None)
    b = _batch()
    torch.manual_seed(1)
    plain = task.shared_step(b)[0]
    task.negative_classes = (2,)
    torch.manual_seed(1)
    masked = task.shared_step(b)[0]
    assert torch.isfinite(masked)
    assert masked.item() != pytest.approx(plain.item(), rel=1e-7)
    task.negative_classes = (0, 1, 2)
    with pytest.raises(ConfigError, match="every sample of the batch is negative-only"):
        task.shared_step(b)


def test_pretraining_with_the_meterml_negative_warns_only_for_objectives_without_the_rule() -> None:
    dm = _meterml()

    class FakeTrainer:
        datamodule = dm

    for loss in ("ot_sample", "coot", "ssw_ssl", "gca_uot"):
        task = PretrainTask(backbone="tiny_cnn", projection_dim=8, hidden_dim=16, loss=loss)
        task._trainer = FakeTrainer()
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=".*does not apply the negative-only rule")
            task.setup("fit")
        assert task.negative_classes == (6,)


# -- fine-tuning ---------------------------------------------------------------------------


def _meterml() -> MeterMLDataModule:
    warnings.filterwarnings("ignore", message=".*estimated them.*")
    dm = MeterMLDataModule(str(METERML), modalities=["s1"], batch_size=4, views=2)
    dm.setup("fit")
    return dm


def _finetune(dm: MeterMLDataModule, **kw) -> FinetuneTask:
    class FakeTrainer:
        datamodule = dm

    task = FinetuneTask(backbone="tiny_cnn", projection_dim=8, hidden_dim=16, **kw)
    task._trainer = FakeTrainer()
    task.setup("fit")
    task.eval()
    return task


def _meterml_batch(labels: list[int]) -> dict[str, object]:
    g = torch.Generator().manual_seed(0)
    views = [torch.randn(len(labels), 2, 16, 16, generator=g) for _ in range(2)]
    return {"s1": views, "label": torch.tensor(labels)}


def test_finetuning_head_has_the_six_facility_classes_and_negatives_only_in_supcon() -> None:
    dm = _meterml()
    classes = dm.classes
    assert classes[6] == "Negative"
    task = _finetune(dm, alpha=0.5, temperature=0.3)
    assert task.hparams.num_classes == 6 and task.hparams.head_classes == [0, 1, 2, 3, 4, 5]
    assert task.class_names == classes[:6]
    assert task.head.out_features == 6
    labels = [0, 6, 3, 6, 3, 0]
    y = task.head_targets(torch.tensor(labels))
    assert y.tolist() == [0, -1, 3, -1, 3, 0]
    b = _meterml_batch(labels)
    loss, logits = task._loss(b)
    e = task.encoder.embed_views(task.batch_views(b, task.modalities))
    rows = torch.tensor(labels).repeat(2)
    sup = mm_supcon(e.flat(), e.sample_ids(), rows, 0.3, anchor_mask=rows != 6)
    keep = torch.tensor(labels) != 6
    ce = F.cross_entropy(logits[keep].float(), torch.tensor(labels)[keep])
    assert loss.item() == pytest.approx((0.5 * sup + 0.5 * ce).item(), rel=1e-5)
    # a batch of Negative samples only: no classification term (not NaN)
    only = task._cls(logits[:2], torch.tensor([-1, -1]))
    assert only.item() == 0.0


def test_finetuning_metrics_leave_the_negatives_out() -> None:
    task = _finetune(_meterml())
    b = _meterml_batch([0, 6, 3, 6])
    task._trainer = None  # self.log is a no-op without a trainer
    with torch.no_grad():
        task._eval_step(b, task.val_metrics, "val")
    values = task.val_metrics.compute()
    assert int(values["confusion"].sum()) == 2  # the two Negative samples are not counted
    assert values["confusion"].shape == (6, 6)


def test_negative_head_keeps_the_seven_way_head() -> None:
    dm = _meterml()
    task = _finetune(dm, negative_head=True, exclude_class=6)
    assert task.hparams.num_classes == 7 and task.hparams.get("head_classes") is None
    assert task.head_targets(torch.tensor([6, 1])).tolist() == [6, 1]
    assert task._metric_exclude() == 6
    # exclude_class naming the negative-only class is moot without its output
    assert _finetune(dm, exclude_class=6)._metric_exclude() is None
    with pytest.raises(ConfigError, match="only serve as negatives"):
        _finetune(dm, num_classes=7)


def test_dense_queries_of_negative_images_are_left_out() -> None:
    g = torch.Generator().manual_seed(5)
    f1, f2 = torch.randn(4, 3, 5, generator=g), torch.randn(4, 3, 5, generator=g)
    keep = torch.tensor([True, False, True, True])
    full = ot_losses.dense_contrastive_loss(f1, f2, symmetric=False)
    kept = ot_losses.dense_contrastive_loss(f1, f2, symmetric=False, anchors=keep)
    left = ot_losses.dense_contrastive_loss(f1, f2, symmetric=False, anchors=~keep)
    # the images' terms partition the full mean; the negatives stay keys of the others
    assert (3 * kept + left).item() == pytest.approx(4 * full.item(), rel=1e-6)
    torch.manual_seed(0)  # the encoder's weights: the masked loss differs visibly from the plain one
    task = PretrainTask(
        in_channels={"s2": 3},
        backbone="tiny_cnn",
        projection_dim=8,
        hidden_dim=16,
        dense="argmax",
        dense_dim=8,
    )
    task.eval()
    with torch.no_grad():  # spread the embeddings: at init every row's loss is about the same
        for p in task.parameters():
            p.normal_(0.0, 0.5)
    b = _batch()
    plain = task.shared_step(b)[0]
    task.negative_classes = (2,)
    masked = task.shared_step(b)[0]
    e = task.encoder.embed_views(task.batch_views(b, task.modalities), dense=True)
    rows = (LABELS != 2).repeat(2)
    glob = mm_ntxent(e.flat(), e.sample_ids(), task.hparams.temperature, anchor_mask=rows)
    dense = ot_losses.dense_contrastive_loss(
        e.dense[0], e.dense[1], tau=task.hparams.temperature, anchors=LABELS != 2
    )
    assert masked.item() == pytest.approx((0.5 * glob + 0.5 * dense).item(), rel=1e-5)
    assert abs(masked.item() - plain.item()) > 1e-3
