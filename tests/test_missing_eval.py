"""Missing modalities at evaluation: a model fine-tuned on S1 + S2 with modality dropout
tests through the CLI with S1 only, and reports the metrics of every modality subset."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from rsmm.cli import main
from rsmm.tasks.metrics import SubsetMetrics, modality_subsets, subset_name

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "synthetic"
TINY = [
    "--data.num_samples",
    "48",
    "--data.size",
    "8",
    "--data.batch_size",
    "16",
    "--trainer.max_epochs",
    "1",
    "--trainer.enable_progress_bar",
    "false",
    "--trainer.accelerator",
    "cpu",
]


def _test_metrics(run: Path) -> dict[str, float]:
    with open(run / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {k: float(v) for r in rows for k, v in r.items() if k.startswith("test/") and v}


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fine-tune on S1 + S2 where half the chips lack S2 (masked mean, modality dropout)."""
    root = tmp_path_factory.mktemp("missing")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        args = [
            "finetune",
            "--config",
            str(CONFIGS / "finetune.yaml"),
            *TINY,
            "--data.label_fraction",
            "1.0",
            "--data.drop_modalities",
            "{s2: 0.5}",
            "--model.fusion",
            "masked_mean",
            "--model.modality_dropout",
            "0.3",
        ]
        assert main(args) == 0
    return root


def test_finetune_with_absent_s2_reports_every_subset(finetuned: Path) -> None:
    got = _test_metrics(finetuned / "runs/finetune/version_0")
    # the test split lacks S2 on some chips: every subset is evaluated, on the chips
    # that have its modalities
    for name in ("s1", "s2", "s1+s2"):
        assert 0 <= got[f"test/OA@{name}"] <= 1
        assert -1 <= got[f"test/kappa@{name}"] <= 1
    assert 0 <= got["test/OA"] <= 1


def test_s1_only_test_of_an_s1_s2_model(finetuned: Path) -> None:
    ckpt = finetuned / "runs/finetune/version_0/checkpoints/last.ckpt"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(finetuned)
        args = ["test", "--config", str(CONFIGS / "finetune.yaml"), *TINY, "--ckpt_path", str(ckpt)]
        assert main([*args, "--model.fusion", "masked_mean", "--data.modalities", "[s1]"]) == 0
        assert main([*args, "--model.fusion", "masked_mean", "--model.subset_metrics", "true"]) == 0
    s1 = _test_metrics(finetuned / "runs/test/version_0")
    # only S1 is available: one subset, and it is the whole test
    assert {k for k in s1 if "@" in k} >= {"test/OA@s1", "test/kappa@s1"}
    assert not any("s2" in k for k in s1)
    assert s1["test/OA@s1"] == pytest.approx(s1["test/OA"])
    both = _test_metrics(finetuned / "runs/test/version_1")
    # complete test data: the S1+S2 subset is the whole test, and the S1 subset gives
    # what the S1-only data gave
    assert both["test/OA@s1+s2"] == pytest.approx(both["test/OA"])
    assert both["test/OA@s1"] == pytest.approx(s1["test/OA"])
    assert {"test/OA@s2", "test/kappa@s2"} <= set(both)


def test_subset_names_and_metrics() -> None:
    assert [subset_name(s) for s in modality_subsets(["s1", "s2", "naip"])] == [
        "s1",
        "s2",
        "naip",
        "s1+s2",
        "s1+naip",
        "s2+naip",
        "s1+s2+naip",
    ]
    m = SubsetMetrics(3)
    m.update(("s1",), torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 1, 2]))
    m.update(("s1", "s2"), torch.tensor([0, 1]), torch.tensor([0, 1]))
    m.update(("s2",), torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long))
    out = m.compute(["a", "b", "c"])
    assert out["OA@s1"] == pytest.approx(0.75)
    assert out["OA@s1+s2"] == pytest.approx(1.0)
    assert not any(k.endswith("@s2") for k in out)  # no sample had S2
    assert not any("/" in k for k in out)
    assert m.compute(["a", "b", "c"]) == {}  # reset


def test_benchmark_table_marks_missing_cells_and_seed_counts() -> None:
    from rsmm.benchmarks.missing import table

    runs = {
        ("(b) all", "fine-tuned"): [
            {"test/OA@s1": 0.5, "test/OA@s1+s2+naip": 0.75},
            {"test/OA@s1": 0.7, "test/OA@s1+s2+naip": 0.25},
        ],
        ("(c) s1 only", "linear probe"): [{"test/OA@s1": 0.5}],
    }
    lines = table(runs, "OA", seeds=2).splitlines()
    assert lines[0].startswith("| setting | protocol | OA @s1 | OA @s2 |")
    assert lines[0].endswith("| OA @s1+s2+naip |")
    b = lines[2].split(" | ")
    assert b[2] == "0.600 ± 0.141" and b[3] == "–" and b[-1] == "0.500 ± 0.354 |"
    assert "0.500 ± 0.000 (1 seeds)" in lines[3]
