"""configs/bigearthnet: their headers, the grid's dry run and table, and the CLI end to end.

The CLI runs on the six real BigEarthNet example patches of ``bigearthnet-common``'s wheel
(code Apache-2.0, data CDLA-Permissive-1.0; ``tests/bigearthnet_examples.py``) with a tiny
encoder in place of ResNet-50.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import pytest
import yaml
from bigearthnet_examples import arrange_v1

from rsmm.cli import main
from rsmm.export import read_checkpoint
from rsmm.grid import GridError, Result, load_grid, markdown_table, run_grid

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "bigearthnet"
METRICS = ["mAP_micro", "mAP_macro", "F1_micro", "F1_macro"]


def test_every_config_names_its_protocol_and_published_number() -> None:
    paths = sorted(CONFIGS.glob("*.yaml"))
    assert {p.stem.split("_")[0] for p in paths} == {"pretrain", "linear", "finetune", "grid"}
    for path in paths:
        head = [line for line in path.read_text().splitlines()[:6] if line.startswith("#")]
        assert head[0].startswith("# BigEarthNet"), path
        assert any(line.startswith("# published:") for line in head), path
        if path.stem.startswith(("linear", "finetune")):
            cfg = yaml.safe_load(path.read_text())
            assert cfg["model"]["multilabel"] is True
            assert "average_precision_score" in path.read_text()  # the metric difference
    text = {p.stem: p.read_text() for p in paths}
    assert "84.8 mAP" in text["linear_probe_s2"] and "78.9 mAP" in text["linear_probe_s1"]
    assert "91.8 mAP" in text["finetune_s2"]
    assert yaml.safe_load(text["linear_probe_s1_s2"])["data"]["init_args"]["label_fraction"] == 0.1


def test_grid_dry_run_lists_its_commands(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    spec = CONFIGS / "grid.yaml"
    grid = load_grid(spec, out=tmp_path / "out")
    assert list(grid.metrics) == METRICS and grid.seeds == (0, 1, 2)
    assert grid.protocols == ["linear 10 %", "FT 1 %", "FT 10 %", "FT 100 %"]
    assert len(grid.rows) == 6  # S1, S2, S1+S2: pre-trained and random init
    lines: list[str] = []
    run_grid(grid, dry_run=True, echo=lines.append)
    assert len(lines) == 3 + 3 * 2 * 4 * 3  # pre-trainings, then rows x protocols x seeds
    assert sum(" rsmm pretrain --config " in line for line in lines) == 3
    assert sum("rsmm linear-probe" in line for line in lines) == 18
    assert sum("--data.label_fraction 0.01" in line for line in lines) == 18
    assert sum("--model.pretrained null" in line for line in lines) == 36
    assert main(["grid", str(spec), "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines() == lines
    assert not (tmp_path / "out").exists()


def test_grid_table_tabulates_map(tmp_path: Path) -> None:
    grid = load_grid(CONFIGS / "grid.yaml", out=tmp_path)
    results = [
        Result("S2 pre-training", "linear 10 %", s, {m: 0.80 + 0.01 * s for m in METRICS})
        for s in (0, 1, 2)
    ]
    table = markdown_table(grid, results)
    header = next(line for line in table.splitlines() if line.startswith("| method"))
    assert "| linear 10 % mAP_micro | linear 10 % mAP_macro |" in header
    row = next(line for line in table.splitlines() if line.startswith("| S2 pre-training"))
    assert row.split(" | ")[1] == "81.00 ± 1.00"
    # the published anchors stand beside rsmm's rows, with their sources
    soft = next(line for line in table.splitlines() if line.startswith("| SoftCon ResNet-50, S2"))
    assert "(published)" in soft and soft.split(" | ")[1:3] == ["84.8", "–"]
    moco = next(line for line in table.splitlines() if line.startswith("| SSL4EO-S12 MoCo"))
    assert moco.split(" | ")[1 + 3 * len(METRICS)] == "91.8"  # FT 100 %, mAP_micro
    assert "github.com/zhu-xlab/softcon README" in table


def test_bad_published_entries_are_refused(tmp_path: Path) -> None:
    spec = yaml.safe_load((CONFIGS / "grid.yaml").read_text())
    spec["published"] = [{"name": "x", "values": {"linear 10 %": {"mAP_micro": "high"}}}]
    bad = tmp_path / "grid.yaml"
    bad.write_text(yaml.safe_dump(spec))
    for cfg in CONFIGS.glob("*_*.yaml"):
        (tmp_path / cfg.name).write_text(cfg.read_text())
    with pytest.raises(GridError, match=r"published\[0\]: values must be"):
        load_grid(bad)


# -- the CLI on the real patches ----------------------------------------------------------------


TINY = [
    "--model.backbone",
    "tiny_cnn",
    "--data.batch_size",
    "2",
    "--data.num_workers",
    "0",
    "--trainer.max_epochs",
    "1",
    "--trainer.precision",
    "32-true",
    "--trainer.accelerator",
    "cpu",
    "--trainer.enable_progress_bar",
    "false",
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pretrain S1+S2 -> linear probe (10 % labels) -> test, on the real v1 patches."""
    work = tmp_path_factory.mktemp("cli")
    root = arrange_v1(work / "bigearthnet")
    data = ["--data.root", str(root), *TINY]
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        mp.chdir(work)
        assert main(["pretrain", "--config", str(CONFIGS / "pretrain_s1_s2.yaml"), *data]) == 0
        pre = work / "runs/pretrain/version_0/checkpoints/last.ckpt"
        probe = ["--config", str(CONFIGS / "linear_probe_s1_s2.yaml"), *data]
        assert main(["linear-probe", *probe, "--model.pretrained", str(pre)]) == 0
        ckpt = work / "runs/linear-probe/version_0/checkpoints/last.ckpt"
        # `rsmm test` builds the model from the config: the probe's head needs the flag
        test = ["--model.freeze_backbone", "true", "--ckpt_path", str(ckpt)]
        assert main(["test", *probe, *test]) == 0
    return work


def test_linear_probe_command_on_the_real_patches(runs: Path) -> None:
    probe = runs / "runs/linear-probe/version_0"
    hp, _ = read_checkpoint(probe / "checkpoints/last.ckpt")
    assert hp["multilabel"] is True and hp["freeze_backbone"] is True and hp["num_classes"] == 19
    assert hp["pretrained"].endswith("pretrain/version_0/checkpoints/last.ckpt")
    for run in (probe, runs / "runs/test/version_0"):
        with (run / "metrics.csv").open() as fh:
            rows = list(csv.DictReader(fh))
        tested = [r for r in rows if r.get("test/mAP_micro")]
        assert tested, run
        for m in METRICS:
            assert 0 <= float(tested[-1][f"test/{m}"]) <= 1
        assert any(k.startswith("test/AP/") and tested[-1][k] for k in tested[-1])


def test_linear_probe_command_on_a_v2_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same config on the fake reBEN layout (found by its metadata.parquet), random init."""
    v2 = Path(__file__).resolve().parent / "data" / "bigearthnet" / "v2"
    monkeypatch.chdir(tmp_path)
    args = ["--config", str(CONFIGS / "linear_probe_s1_s2.yaml"), "--data.root", str(v2), *TINY]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        assert main(["linear-probe", *args, "--model.pretrained", "null"]) == 0
    with (tmp_path / "runs/linear-probe/version_0/metrics.csv").open() as fh:
        tested = [r for r in csv.DictReader(fh) if r.get("test/mAP_micro")]
    assert tested and 0 <= float(tested[-1]["test/mAP_macro"]) <= 1
