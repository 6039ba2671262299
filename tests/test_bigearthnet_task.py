"""The multi-label target and metrics of fine-tuning: BCE, mAP micro/macro, F1, per-class AP.

The data are the six real BigEarthNet example patches of ``bigearthnet-common``'s wheel
(code Apache-2.0, data CDLA-Permissive-1.0), arranged by ``tests/bigearthnet_examples.py``.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import pytest
import torch
from bigearthnet_common.constants import OLD2NEW_LABELS_DICT
from bigearthnet_examples import SPLITS, arrange_v1, s2_labels
from helpers import cpu_trainer
from lightning.pytorch.loggers import CSVLogger

from rsmm.datamodules import BigEarthNetDataModule, MeterMLDataModule
from rsmm.errors import ConfigError
from rsmm.tasks.finetune import FinetuneTask
from rsmm.tasks.metrics import MULTILABEL_SCALARS, classification_metrics, summarise

METERML = Path(__file__).resolve().parent / "data" / "meterml"


def reference_ap(scores: torch.Tensor, target: torch.Tensor) -> float:
    """Average precision as the mean of the precision at each positive (no ties)."""
    t = target[torch.argsort(scores, descending=True)].double()
    precision = t.cumsum(0) / torch.arange(1, len(t) + 1)
    return float((precision * t).sum() / t.sum())


def reference_f1(pred: torch.Tensor, target: torch.Tensor) -> float:
    tp = float((pred * target).sum())
    return 2 * tp / max(1.0, float(pred.sum() + target.sum()))


def test_multilabel_metrics_match_their_definitions() -> None:
    gen = torch.Generator().manual_seed(0)
    y = (torch.rand(60, 5, generator=gen) < 0.3).long()
    y[:, 4] = 0  # a class without positives in this split
    p = torch.rand(60, 5, generator=gen)
    metrics = classification_metrics(5, multilabel=True)
    metrics.update(p[:25], y[:25])  # two batches
    metrics.update(p[25:], y[25:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchmetrics warns about the empty class
        out = summarise(metrics.compute(), list("abcde"))
    per_class = [reference_ap(p[:, k], y[:, k]) for k in range(4)]
    assert set(MULTILABEL_SCALARS) <= set(out)
    assert out["mAP_macro"] == out["mAP"] == pytest.approx(sum(per_class) / 4, abs=1e-6)
    assert out["mAP_micro"] == pytest.approx(reference_ap(p.flatten(), y.flatten()), abs=1e-6)
    pred = (p > 0.5).long()
    assert out["F1_micro"] == pytest.approx(reference_f1(pred, y), abs=1e-6)
    f1s = [reference_f1(pred[:, k], y[:, k]) for k in range(5)]
    assert out["F1_macro"] == pytest.approx(sum(f1s) / 5, abs=1e-6)
    for k, name in enumerate("abcd"):
        assert out[f"AP/{name}"] == pytest.approx(per_class[k], abs=1e-6)
    assert "AP/e" not in out  # undefined without positives: left out, as acc/ is


def test_single_label_metrics_are_unchanged() -> None:
    metrics = classification_metrics(3)
    metrics.update(torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 1, 2]))
    out = summarise(metrics.compute(), ["x", "y", "z"])
    assert out["OA"] == pytest.approx(0.75) and "mAP" not in out and "F1_micro" not in out


@pytest.fixture(scope="module")
def v1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return arrange_v1(tmp_path_factory.mktemp("ben") / "v1")


@pytest.mark.parametrize("freeze", [False, True], ids=["finetune", "linear_probe"])
def test_bigearthnet_turns_on_multilabel_and_logs_per_class_ap(
    v1: Path, tmp_path: Path, freeze: bool
) -> None:
    dm = BigEarthNetDataModule(str(v1), batch_size=2, eval_batch_size=2)
    ft = FinetuneTask(backbone="tiny_cnn", freeze_backbone=freeze)  # multilabel not given
    logger = CSVLogger(str(tmp_path), name="run", version=0)
    tr = cpu_trainer(tmp_path, max_steps=2, limit_val_batches=1, logger=logger)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        tr.fit(ft, dm)
        res = tr.test(ft, dm, verbose=False)[0]
    assert ft.hparams.multilabel and ft.hparams.num_classes == 19
    assert {f"test/{m}" for m in MULTILABEL_SCALARS} <= set(res)
    assert all(0 <= res[f"test/{m}"] <= 1 for m in MULTILABEL_SCALARS)
    # one AP per 19-class label of the (one) test patch, from its JSON file
    (patch,) = SPLITS["test"]
    names = {OLD2NEW_LABELS_DICT[n] for n in s2_labels(v1, patch)} - {None}
    assert len(names) >= 2
    assert {k for k in res if k.startswith("test/AP/")} == {f"test/AP/{n}" for n in names}
    with (tmp_path / "run" / "version_0" / "metrics.csv").open() as fh:
        header = next(csv.reader(fh))
    assert f"test/AP/{min(names)}" in header and "test/mAP_micro" in header


def test_multilabel_model_on_single_label_data_is_refused(tmp_path: Path) -> None:
    dm = MeterMLDataModule(str(METERML), modalities=["s1"], batch_size=4)
    ft = FinetuneTask(backbone="tiny_cnn", multilabel=True)
    with pytest.raises(ConfigError, match="multilabel is true but MeterML gives single labels"):
        cpu_trainer(tmp_path, max_steps=1).fit(ft, dm)


def test_supcon_mixture_on_multilabel_data_is_refused(v1: Path, tmp_path: Path) -> None:
    dm = BigEarthNetDataModule(str(v1), batch_size=2)
    ft = FinetuneTask(backbone="tiny_cnn", alpha=0.5)
    with pytest.raises(ConfigError, match="needs single-label targets"), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        cpu_trainer(tmp_path, max_steps=1).fit(ft, dm)
