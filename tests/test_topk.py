"""Top-k accuracy (``Acc@k``) of the single-label metrics: the thesis' Tables 3.1 and
3.2 report Acc@5 beside Acc@1."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import cpu_trainer
from torchmetrics.functional.classification import multiclass_accuracy

from rsmm.datamodules import CIFAR100DataModule
from rsmm.errors import ConfigError
from rsmm.hyperbolic import build_head
from rsmm.tasks.finetune import FinetuneTask
from rsmm.tasks.metrics import SubsetMetrics, classification_metrics, summarise, top_k_values

DATA = Path(__file__).parent / "data"


def naive_top_k(scores: torch.Tensor, target: torch.Tensor, k: int) -> tuple[float, float]:
    """(pessimistic, optimistic) top-k accuracy over the rows with a target >= 0, by a
    loop: a row is surely a hit when fewer than k other scores reach its class's score,
    possibly a hit when fewer than k exceed it (the two agree without ties)."""
    sure = possible = n = 0
    for row, t in zip(scores.tolist(), target.tolist()):
        if t < 0:
            continue
        n += 1
        others = [s for j, s in enumerate(row) if j != t]
        sure += sum(s >= row[t] for s in others) < k
        possible += sum(s > row[t] for s in others) < k
    return sure / n, possible / n


def scores_and_targets(n: int, classes: int, seed: int, levels: int = 0):
    g = torch.Generator().manual_seed(seed)
    if levels:  # integer scores: many ties, also at the k-th place
        scores = torch.randint(0, levels, (n, classes), generator=g).float()
    else:
        scores = torch.randn(n, classes, generator=g)
    target = torch.randint(0, classes, (n,), generator=g)
    target[::7] = -1  # ignored rows (a dataset's negative-only class)
    return scores, target


def computed(collection, batches) -> dict[str, float]:
    for scores, target in batches:
        collection.update(scores, target)
    return summarise(collection.compute(), [str(i) for i in range(12)])


def test_acc5_is_the_fraction_of_targets_among_the_five_largest_scores() -> None:
    scores, target = scores_and_targets(40, 12, seed=0)
    batches = [(scores[:17], target[:17]), (scores[17:], target[17:])]
    out = computed(classification_metrics(12, top_k=[5]), batches)
    sure, possible = naive_top_k(scores, target, 5)
    assert sure == possible  # no ties in continuous scores
    assert out["Acc@5"] == pytest.approx(sure)
    assert 0.3 < out["Acc@5"] < 0.7  # a random draw: neither all nor no rows hit
    # the other metrics keep the values they had when fed argmax class ids
    ids = computed(classification_metrics(12), [(s.argmax(1), t) for s, t in batches])
    assert "Acc@5" not in ids
    assert {k: v for k, v in out.items() if k != "Acc@5"} == pytest.approx(ids)


def test_tied_scores_are_counted_as_torchmetrics_counts_them() -> None:
    scores, target = scores_and_targets(60, 12, seed=1, levels=3)
    out = computed(classification_metrics(12, top_k=[5]), [(scores, target)])
    sure, possible = naive_top_k(scores, target, 5)
    assert sure < possible  # ties at the fifth place do occur here
    assert sure <= out["Acc@5"] <= possible
    expected = multiclass_accuracy(
        scores, target, num_classes=12, top_k=5, average="micro", ignore_index=-1
    )
    assert out["Acc@5"] == pytest.approx(float(expected))


def test_top_k_states_are_not_merged_with_per_class_accuracy() -> None:
    """torchmetrics' compute groups would merge Acc@5 with per-class accuracy after a
    first batch whose top-1 predictions are all right (their states agree then)."""
    first = (torch.eye(12)[:3] * 5, torch.tensor([0, 1, 2]))
    second = (torch.arange(12.0).repeat(2, 1), torch.tensor([10, 9]))  # top-5, not top-1
    out = computed(classification_metrics(12, top_k=[5]), [first, second])
    assert out["Acc@5"] == 1.0 and out["OA"] == pytest.approx(3 / 5)
    assert out["acc/9"] == out["acc/10"] == 0.0 and out["acc/0"] == 1.0


def test_which_k_are_reported() -> None:
    assert top_k_values(10, [5, 1, 3, 5, 10, 12]) == (3, 5)  # 1 is OA; k >= K always hits
    assert set(classification_metrics(4, top_k=[5]).keys()) == {
        "OA",
        "per_class",
        "kappa",
        "confusion",
    }
    assert "Acc@5" not in classification_metrics(12, multilabel=True, top_k=[5])
    with pytest.raises(ConfigError, match="top_k"):
        classification_metrics(12, top_k=[0])
    with pytest.raises(ConfigError, match="top_k"):
        FinetuneTask(num_classes=12, top_k=[-1])


def test_subset_metrics_report_acc5_per_subset() -> None:
    scores, target = scores_and_targets(20, 12, seed=2)
    m = SubsetMetrics(12, top_k=[5])
    m.update(("s1",), scores, target)
    m.update(("s2",), scores[:0], target[:0])
    out = m.compute([str(i) for i in range(12)])
    assert out["Acc@5@s1"] == pytest.approx(naive_top_k(scores, target, 5)[0])
    assert not any(k.endswith("@s2") for k in out)


@pytest.mark.parametrize("head", ["busemann", "horospherical"])
def test_hyperbolic_head_scores_rank_the_nearest_prototypes_first(head: str) -> None:
    """The hyperbolic heads' scores are larger for more likely classes: a point's five
    largest scores are the five prototypes closest to its direction (Busemann function
    ``log(|p - x|^2 / (1 - |x|^2))``; zero biases at initialisation)."""
    torch.manual_seed(0)
    model = build_head(head, 4, 12)
    protos = model[1].prototypes.detach()
    x = torch.randn(30, 4)
    scores = model(x).detach()
    target = torch.randint(0, 12, (30,))
    nearest = (x @ protos.T).topk(5, dim=1).indices  # Euclidean features keep direction
    expected = (nearest == target[:, None]).any(1).float().mean()
    out = computed(classification_metrics(12, top_k=[5]), [(scores, target)])
    assert out["Acc@5"] == pytest.approx(float(expected))


def test_finetune_on_fake_cifar100_logs_acc5(tmp_path: Path) -> None:
    """One step of a CIFAR-100 fine-tuning (fast_dev_run); its test
    logs the Acc@5 (and the Acc@50 asked for) of the model's scores on the three test
    images."""
    dm = CIFAR100DataModule(str(DATA / "cifar100"), batch_size=4, num_workers=0)
    task = FinetuneTask(backbone="tiny_cnn", top_k=[5, 50])
    trainer = cpu_trainer(tmp_path, fast_dev_run=True)
    trainer.fit(task, dm)
    logged = trainer.test(task, dm, verbose=False)[0]
    (batch,) = list(dm.test_dataloader())
    task.eval()
    with torch.no_grad():
        scores = task(batch)
    assert scores.shape == (3, 100)
    for k in (5, 50):
        assert logged[f"test/Acc@{k}"] == pytest.approx(naive_top_k(scores, batch["label"], k)[0])
    assert logged["test/OA"] <= logged["test/Acc@5"] <= logged["test/Acc@50"]
