"""The results grid (rsmm.grid): spec parsing, resumable runs, the mean ± std table."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from rsmm.cli.grid import in_process_runner
from rsmm.grid import (
    Grid,
    GridError,
    Result,
    aggregate,
    cli_value,
    load_grid,
    main,
    markdown_table,
    mean_std,
    read_test_metrics,
    run_grid,
    tabulated_lines,
)
from rsmm.grid.reported import has_reported, table_cells
from rsmm.grid.table import csv_rows

REPO = Path(__file__).resolve().parents[1]
SYNTHETIC = REPO / "configs" / "synthetic"
SHIPPED = sorted((REPO / "configs").rglob("grid*.yaml"))
TINY = {
    "data.num_samples": 64,
    "data.size": 8,
    "data.batch_size": 16,
    "trainer.max_epochs": 3,
    "trainer.enable_progress_bar": False,
    "trainer.accelerator": "cpu",
    "model.lr": 0.02,
}


def tiny_spec(path: Path, **extra: object) -> Path:
    """Two rows (NT-Xent pre-training, random init) x two protocols x two seeds."""
    spec = {
        "name": "tiny",
        "out": str(path.parent / "out"),
        "seeds": [0, 1],
        "overrides": TINY,
        "pretrain": [
            {"name": "NT-Xent", "config": str(SYNTHETIC / "pretrain.yaml")},
            {"name": "random init", "config": None, "key": "random_init"},
        ],
        "downstream": [
            {
                "name": "linear",
                "command": "linear-probe",
                "config": str(SYNTHETIC / "finetune.yaml"),
            },
            {
                "name": "FT 50 %",
                "key": "ft_50",
                "command": "finetune",
                "config": str(SYNTHETIC / "finetune.yaml"),
                "overrides": {"data.label_fraction": 0.5},
            },
        ],
        **extra,
    }
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def logged_test_value(metrics_csv: Path, name: str) -> float:
    """The value of test/<name> in a CSVLogger file, read independently of rsmm.grid."""
    with metrics_csv.open(newline="") as fh:
        values = [r[f"test/{name}"] for r in csv.DictReader(fh) if r.get(f"test/{name}")]
    assert len(values) == 1
    return float(values[0])


# -- the aggregation ------------------------------------------------------------------------


def test_mean_std_matches_numpy() -> None:
    v = [0.81, 0.87, 0.84, 0.9]
    mean, std, n = mean_std(v)
    assert mean == pytest.approx(np.mean(v)) and std == pytest.approx(np.std(v, ddof=1))
    assert n == 4
    mean, std, n = mean_std([0.5])
    assert mean == 0.5 and math.isnan(std) and n == 1


def _grid(tmp_path: Path, seeds: tuple[int, ...] = (0, 1, 2)) -> Grid:
    from rsmm.grid import Protocol, Row

    rows = (Row("A", "a", None), Row("B", "b", None))
    protos = (
        Protocol("linear", "linear", "linear-probe", SYNTHETIC / "finetune.yaml"),
        Protocol("FT 1 %", "ft_1", "finetune", SYNTHETIC / "finetune.yaml"),
    )
    return Grid("t", tmp_path, seeds, ((rows, protos),), ("OA", "kappa"))


def test_table_mean_and_std_over_seeds(tmp_path: Path) -> None:
    oa = {"A": [0.80, 0.90, 0.85], "B": [0.70, 0.72]}
    results = [
        Result(row, "linear", s, {"OA": v, "kappa": v - 0.1})
        for row, vals in oa.items()
        for s, v in enumerate(vals)
    ]
    results.append(Result("A", "FT 1 %", 0, {"OA": 0.5, "kappa": 0.25}))
    cells = aggregate(results, ("OA", "kappa"))
    assert cells["A", "linear", "OA"][0] == pytest.approx(np.mean(oa["A"]))
    assert cells["A", "linear", "OA"][1] == pytest.approx(np.std(oa["A"], ddof=1))
    assert cells["A", "linear", "kappa"][1] == pytest.approx(np.std(oa["A"], ddof=1))
    assert ("B", "FT 1 %", "OA") not in cells

    md = markdown_table(_grid(tmp_path), results).splitlines()
    assert md[4] == "| method | linear OA | linear kappa | FT 1 % OA | FT 1 % kappa |"
    assert md[6] == "| A | 85.00 ± 5.00 | 75.00 ± 5.00 | 50.00 (n=1) | 25.00 (n=1) |"
    b_std = 100 * np.std(oa["B"], ddof=1)
    assert md[7] == f"| B | 71.00 ± {b_std:.2f} (n=2) | 61.00 ± {b_std:.2f} (n=2) | – | – |"

    table = csv_rows(_grid(tmp_path), results)
    assert table[0][:4] == ["method", "linear/OA/mean", "linear/OA/std", "linear/OA/n"]
    assert table[1][1:4] == pytest.approx([0.85, 0.05, 3])
    assert table[2][-3:] == ["", "", 0]


def test_read_test_metrics_takes_test_columns(tmp_path: Path) -> None:
    f = tmp_path / "metrics.csv"
    f.write_text("epoch,step,train/loss,test/OA,test/kappa\n0,3,1.2,,\n0,4,,0.75,0.5\n")
    assert read_test_metrics(f) == {"OA": 0.75, "kappa": 0.5}
    assert read_test_metrics(tmp_path / "missing.csv") == {}


@pytest.mark.parametrize("value", [True, False, None, 0.01, 3, "s1", ["s1", "s2"], {"s1": 1}])
def test_cli_values_parse_back(value: object) -> None:
    assert yaml.safe_load(cli_value(value)) == value


# -- the spec --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": 1}, "unknown keys ['colour']"),
        ({"seeds": []}, "seeds must be a non-empty list"),
        ({"downstream": [{"name": "x", "command": "fit", "config": "finetune.yaml"}]}, "'fit'"),
        (
            {"downstream": [{"name": "x", "command": "finetune", "config": "nope.yaml"}]},
            "nope.yaml",
        ),
        (
            {
                "pretrain": [
                    {"name": "A", "config": None},
                    {"name": "A", "config": None, "key": "z"},
                ]
            },
            "duplicate row",
        ),
    ],
)
def test_bad_specs_name_the_problem(tmp_path: Path, change: dict, message: str) -> None:
    spec = tiny_spec(tmp_path / "g.yaml")
    data = yaml.safe_load(spec.read_text()) | change
    spec.write_text(yaml.safe_dump(data))
    with pytest.raises(GridError) as err:
        load_grid(spec)
    assert message in str(err.value) and "g.yaml" in str(err.value)


def test_main_missing_spec_is_one_line_and_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path / "none.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "none.yaml" in err


def test_dry_run_prints_every_command_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tiny_spec(tmp_path / "g.yaml")
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "run_grid.py"), str(spec), "--dry-run"],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = proc.stdout.splitlines()
    assert len(lines) == 1 + 2 * 2 * 2  # one pre-training, rows x protocols x seeds
    # `rsmm grid` is the same entry point
    from rsmm.cli import main

    assert main(["grid", str(spec), "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines() == lines
    assert " && rsmm pretrain --config " in lines[0]
    ckpt = tmp_path / "out/pretrain/pretrain/runs/pretrain/version_0/checkpoints/last.ckpt"
    assert sum(f"--model.pretrained {ckpt}" in line for line in lines) == 4
    assert sum("--model.pretrained null" in line for line in lines) == 4
    assert sum("--seed_everything 1 --data.seed 1" in line for line in lines) == 4
    assert sum("rsmm linear-probe" in line for line in lines) == 4
    assert sum("--data.label_fraction 0.5" in line for line in lines) == 4
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("spec", SHIPPED, ids=lambda p: str(p.relative_to(REPO / "configs")))
def test_shipped_grids_pair_matching_configs(spec: Path) -> None:
    """Each downstream config of a block fits each of its pre-trainings (same backbone,
    modalities, bands, data class) and its file name says its command."""
    grid = load_grid(spec, out="/nonexistent/out")

    def read(p: Path) -> tuple:
        c = yaml.safe_load(p.read_text())
        d = c["data"]["init_args"]
        mods = d.get("modalities")
        backbone = c["model"]["backbone"]
        if isinstance(backbone, str) and mods:
            backbone = dict.fromkeys(mods, backbone)
        s2_bands = d.get("s2_bands") if "s2" in (mods or []) else None
        return backbone, c["data"]["class_path"], mods, (d.get("bands"), s2_bands)

    prefix = {"finetune": "finetune_", "linear-probe": "linear_probe_"}
    for rows, protos in grid.blocks:
        for proto in protos:
            assert proto.config.name.startswith(prefix[proto.command])
            for row in rows:
                if row.config is not None:
                    assert row.config.name.startswith("pretrain_")
                    backbone, _, mods, bands = read(row.config)
                    # the downstream data class may differ (SEN12MS -> DFC2020); the
                    # downstream modalities may be a subset of the pre-trained ones (Table
                    # 4.3), each with the pre-trained backbone and bands
                    down_backbone, _, down_mods, down_bands = read(proto.config)
                    assert down_bands[0] == bands[0]
                    assert "s2" not in (down_mods or []) or down_bands[1] == bands[1]
                    if isinstance(backbone, dict):
                        assert down_mods is not None and set(down_mods) <= set(mods or backbone)
                        assert down_backbone == {m: backbone[m] for m in down_mods}
                    else:
                        assert (down_backbone, down_mods) == (backbone, mods)
    lines: list[str] = []
    run_grid(grid, dry_run=True, echo=lines.append)
    pre = sum(r.config is not None for rows, _ in grid.blocks for r in rows)
    cells = sum(len(rows) * len(protos) for rows, protos in grid.blocks) * len(grid.seeds)
    listed = len(table_cells(grid)) + 1 if has_reported(grid) else 0  # "# cell" lines
    listed += len(tabulated_lines(grid))  # tested_with grids: what is tabulated
    assert len(lines) == pre + cells + listed


# -- end to end ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> tuple[Grid, list[Result]]:
    root = tmp_path_factory.mktemp("grid")
    grid = load_grid(tiny_spec(root / "tiny.yaml"))
    return grid, run_grid(grid, in_process_runner, echo=lambda _: None)


def test_grid_runs_end_to_end_and_tabulates(ran: tuple[Grid, list[Result]]) -> None:
    grid, results = ran
    assert len(results) == 8
    md = (grid.out / "results.md").read_text().splitlines()
    assert md[4] == "| method | linear OA | linear kappa | FT 50 % OA | FT 50 % kappa |"
    assert [line.split(" | ")[0] for line in md[6:]] == ["| NT-Xent", "| random init"]
    with (grid.out / "results.csv").open(newline="") as fh:
        table = {r["method"]: r for r in csv.DictReader(fh)}
    for row, key in (("NT-Xent", "pretrain"), ("random init", "random_init")):
        for proto, pkey, cmd in (
            ("linear", "linear", "linear-probe"),
            ("FT 50 %", "ft_50", "finetune"),
        ):
            for metric in ("OA", "kappa"):
                v = [
                    logged_test_value(
                        grid.out / key / pkey / f"seed_{s}/runs/{cmd}/version_0/metrics.csv", metric
                    )
                    for s in (0, 1)
                ]
                assert float(table[row][f"{proto}/{metric}/mean"]) == pytest.approx(np.mean(v))
                assert float(table[row][f"{proto}/{metric}/std"]) == pytest.approx(
                    np.std(v, ddof=1)
                )
                cell = f"{100 * np.mean(v):.2f} ± {100 * np.std(v, ddof=1):.2f}"
                assert cell in md[6 if row == "NT-Xent" else 7]


def test_grid_passes_checkpoint_seed_and_label_fraction(ran: tuple[Grid, list[Result]]) -> None:
    grid, _ = ran
    pre = grid.out / "pretrain/pretrain/runs/pretrain/version_0/checkpoints/last.ckpt"
    for key, expected in (("pretrain", str(pre)), ("random_init", None)):
        ckpt = grid.out / key / "ft_50/seed_1/runs/finetune/version_0/checkpoints/last.ckpt"
        hp = torch.load(ckpt, map_location="cpu", weights_only=True)["hyper_parameters"]
        assert hp["pretrained"] == expected
        assert hp["freeze_backbone"] is False
        config = yaml.safe_load((ckpt.parents[1] / "config.yaml").read_text())
        assert config["seed_everything"] == 1
        assert config["data"]["init_args"]["seed"] == 1
        assert config["data"]["init_args"]["label_fraction"] == 0.5
    lin = grid.out / "pretrain/linear/seed_0/runs/linear-probe/version_0/checkpoints/last.ckpt"
    hp = torch.load(lin, map_location="cpu", weights_only=True)["hyper_parameters"]
    assert hp["freeze_backbone"] is True
    # the frozen encoder is exactly the pre-trained one
    pre_sd = torch.load(pre, map_location="cpu", weights_only=True)["state_dict"]
    lin_sd = torch.load(lin, map_location="cpu", weights_only=True)["state_dict"]
    key = next(k for k in lin_sd if k.startswith("encoder.backbones.") and k.endswith("weight"))
    assert torch.equal(lin_sd[key], pre_sd[key])


def test_grid_resumes_and_reruns_only_missing_cells(ran: tuple[Grid, list[Result]]) -> None:
    grid, results = ran
    calls: list[tuple[str, Path]] = []
    before = (grid.out / "results.md").read_text()
    again = run_grid(grid, lambda c, a, w: calls.append((c, w)), echo=lambda _: None)
    assert calls == [] and again == results
    assert (grid.out / "results.md").read_text() == before

    cell = grid.out / "random_init/linear/seed_1"
    (cell / "result.json").rename(cell / "result.bak")

    def replay(command: str, args: list[str], workdir: Path) -> None:
        calls.append((command, workdir))
        assert not (workdir / "runs").exists()  # an unfinished cell starts afresh
        (workdir / "runs/linear-probe/version_0").mkdir(parents=True)
        rows = "epoch,test/OA,test/kappa\n0,0.5,0.25\n"
        (workdir / "runs/linear-probe/version_0/metrics.csv").write_text(rows)

    run_grid(grid, replay, echo=lambda _: None)
    assert calls == [("linear-probe", cell)]
    assert json.loads((cell / "result.json").read_text())["metrics"] == {"OA": 0.5, "kappa": 0.25}


def test_changed_options_do_not_reuse_a_done_cell(
    ran: tuple[Grid, list[Result]], tmp_path: Path
) -> None:
    grid, _ = ran
    changed = Grid(**{**grid.__dict__, "overrides": {**grid.overrides, "model.lr": 0.5}})
    with pytest.raises(GridError, match="records another run"):
        run_grid(changed, lambda c, a, w: None, echo=lambda _: None)


def test_edited_config_or_new_pretraining_do_not_reuse_done_cells(tmp_path: Path) -> None:
    """A done cell is tied to its config's contents and to the pre-training checkpoint
    it started from, not only to its command line."""
    grid = load_grid(tiny_spec(tmp_path / "g.yaml"))

    def fake(command: str, args: list[str], workdir: Path) -> None:
        run = workdir / f"runs/{command}/version_0"
        (run / "checkpoints").mkdir(parents=True)
        (run / "checkpoints/last.ckpt").write_bytes(b"weights")
        (run / "metrics.csv").write_text("test/OA,test/kappa\n0.5,0.25\n")

    run_grid(grid, fake, echo=lambda _: None)
    assert run_grid(grid, lambda c, a, w: pytest.fail("re-ran a done cell"), echo=lambda _: None)

    # editing a downstream config invalidates its cells
    proto_config = grid.blocks[0][1][0].config
    original = proto_config.read_text()
    proto_config.write_text(original + "\n# edited\n")
    with pytest.raises(GridError, match="another version of the config file"):
        run_grid(grid, fake, echo=lambda _: None)
    proto_config.write_text(original)

    # re-running the pre-training (a new checkpoint) invalidates the cells built on it
    pre = next(r for r in grid.blocks[0][0] if r.config is not None)
    ckpt = grid.out / pre.key / "pretrain/runs/pretrain/version_0/checkpoints/last.ckpt"
    ckpt.write_bytes(b"other weights")
    with pytest.raises(GridError, match="another version of the pre-training checkpoint"):
        run_grid(grid, fake, echo=lambda _: None)

    # a copy with new timestamps but the same contents is still the same checkpoint
    ckpt.write_bytes(b"weights")
    os.utime(ckpt, ns=(1, 1))
    assert run_grid(grid, lambda c, a, w: pytest.fail("re-ran a done cell"), echo=lambda _: None)

    # records written before fingerprints existed are reused, with a warning
    for record in grid.out.rglob("result.json"):
        data = json.loads(record.read_text())
        del data["inputs"]
        record.write_text(json.dumps(data))
    with pytest.warns(UserWarning, match="predates input fingerprints"):
        run_grid(grid, lambda c, a, w: pytest.fail("re-ran a done cell"), echo=lambda _: None)


def test_keep_going_skips_what_depends_on_a_failed_run(tmp_path: Path) -> None:
    grid = load_grid(tiny_spec(tmp_path / "g.yaml"))
    calls: list[str] = []

    def runner(command: str, args: list[str], workdir: Path) -> None:
        calls.append(command)
        if command == "pretrain":
            raise GridError("pretrain broke")
        (workdir / f"runs/{command}/version_0").mkdir(parents=True)
        (workdir / f"runs/{command}/version_0/metrics.csv").write_text("test/OA,test/kappa\n1,1\n")

    with pytest.raises(GridError, match="1 run\\(s\\) failed:\npretrain broke"):
        run_grid(grid, runner, keep_going=True, echo=lambda _: None)
    assert calls == ["pretrain"] + ["linear-probe"] * 2 + ["finetune"] * 2
    md = (grid.out / "results.md").read_text()
    assert "| NT-Xent | – | – | – | – |" in md
    assert "| random init | 100.00 ± 0.00 | 100.00 ± 0.00 | 100.00 ± 0.00 | 100.00 ± 0.00 |" in md
    with pytest.raises(GridError, match="pretrain broke"):
        run_grid(load_grid(tiny_spec(tmp_path / "h.yaml")), runner, echo=lambda _: None)


def test_subprocess_runner_runs_a_cell_and_reports_failures(tmp_path: Path) -> None:
    spec = tiny_spec(tmp_path / "g.yaml", seeds=[3])
    data = yaml.safe_load(spec.read_text())
    data["pretrain"], data["downstream"] = data["pretrain"][1:], data["downstream"][1:]
    data["overrides"]["trainer.max_epochs"] = 1
    spec.write_text(yaml.safe_dump(data))
    grid = load_grid(spec)
    (result,) = run_grid(grid, echo=lambda _: None)  # the default: one process per run
    cell = grid.out / "random_init/ft_50/seed_3"
    assert (cell / "finetune.log").is_file()
    metrics = cell / "runs/finetune/version_0/metrics.csv"
    assert result.metrics["OA"] == logged_test_value(metrics, "OA")

    from rsmm.grid import subprocess_runner

    with pytest.raises(GridError, match="exit 2") as err:
        subprocess_runner("finetune", ["--config", str(tmp_path / "missing.yaml")], tmp_path / "x")
    log = tmp_path / "x" / "finetune.log"
    assert str(log) in str(err.value) and "missing.yaml" in log.read_text()


def test_shipped_eurosat_configs_run_in_a_grid(tmp_path: Path, torchgeo_fixtures: Path) -> None:
    """The Table 4.1 configs themselves (SimCLR, 13 bands) on torchgeo's fake EuroSAT."""
    spec = {
        "out": str(tmp_path / "out"),
        "seeds": [0],
        "data_root": str(torchgeo_fixtures / "eurosat"),
        "overrides": {
            "data.batch_size": 2,
            "data.num_workers": 0,
            "trainer.max_epochs": 1,
            "trainer.precision": "32-true",
            "trainer.accelerator": "cpu",
            "trainer.enable_progress_bar": False,
        },
        "pretrain": [
            {"name": "SimCLR", "config": str(REPO / "configs/eurosat/pretrain_ms_simclr.yaml")}
        ],
        "downstream": [
            {
                "name": "linear",
                "command": "linear-probe",
                "config": str(REPO / "configs/eurosat/linear_probe_ms.yaml"),
            }
        ],
    }
    (tmp_path / "g.yaml").write_text(yaml.safe_dump(spec))
    grid = load_grid(tmp_path / "g.yaml")
    (result,) = run_grid(grid, in_process_runner, echo=lambda _: None)
    cell = grid.out / "pretrain_ms_simclr/linear/seed_0/runs/linear-probe/version_0"
    assert result.metrics["OA"] == logged_test_value(cell / "metrics.csv", "OA")
    hp = torch.load(cell / "checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert hp["hyper_parameters"]["in_channels"] == {"s2": 13}
    assert "| SimCLR |" in (grid.out / "results.md").read_text()


# -- reported numbers beside reproduced ones --------------------------------------------------


def test_reported_beside_reproduced_with_difference(tmp_path: Path) -> None:
    """A grid with a printed table: the dry run lists every cell with its reported value;
    a run prints reported, reproduced mean ± std over seeds and the difference, and writes
    them to results.md and comparison.csv."""
    spec = tiny_spec(
        tmp_path / "t.yaml",
        table="Table 9.9",
        runs=2,
        metrics=["OA"],
        labels={"OA": "Acc."},
        published=[
            {"name": "NT-Xent", "row": "NT-Xent", "values": {"linear": {"OA": "50.0±1.5"}}},
            {"name": "other paper", "values": {"linear": {"OA": 40}}},
        ],
    )
    data = yaml.safe_load(spec.read_text())
    del data["seeds"]  # seeds default to the reported run count
    spec.write_text(yaml.safe_dump(data))
    grid = load_grid(spec)
    assert grid.seeds == (0, 1) and grid.runs == 2

    lines: list[str] = []
    run_grid(grid, dry_run=True, echo=lines.append)
    cells = [line for line in lines if line.startswith("# cell ")]
    assert cells == [
        "# cell NT-Xent | linear Acc.: reported 50 ± 1.5",
        "# cell NT-Xent | FT 50 % Acc.: reported none",
        "# cell random init | linear Acc.: reported none",
        "# cell random init | FT 50 % Acc.: reported none",
        "# cell other paper | linear Acc.: reported 40 (published, not run by rsmm)",
    ]

    def fake(command: str, args: list[str], workdir: Path) -> None:
        run = workdir / f"runs/{command}/version_0"
        (run / "checkpoints").mkdir(parents=True)
        (run / "checkpoints/last.ckpt").write_bytes(b"weights")
        seed = int(args[args.index("--seed_everything") + 1]) if command != "pretrain" else 0
        (run / "metrics.csv").write_text(f"test/OA,test/kappa\n{0.5 + 0.1 * seed},0.1\n")

    lines = []
    run_grid(grid, fake, echo=lines.append)
    # OA over seeds 0, 1: 0.5 and 0.6 -> 55.00 ± 7.07 (sample std x 100)
    assert (
        "NT-Xent | linear Acc.: reported 50 ± 1.5, reproduced 55.00 ± 7.07 (n=2), difference +5.00"
    ) in lines
    assert "random init | FT 50 % Acc.: reported none, reproduced 55.00 ± 7.07 (n=2)" in lines
    md = (grid.out / "results.md").read_text()
    assert "| NT-Xent | linear Acc. | 50 ± 1.5 | 55.00 ± 7.07 (n=2) | +5.00 |" in md
    assert "| other paper | 40 (pub.) | – |" in md  # the printed layout keeps the quoted row
    with (grid.out / "comparison.csv").open() as fh:
        first = next(iter(csv.DictReader(fh)))
    assert first["row"] == "NT-Xent" and float(first["reported"]) == 50.0
    assert float(first["difference"]) == pytest.approx(5.0)
    assert float(first["std"]) == pytest.approx(100 * np.std([0.5, 0.6], ddof=1))


def test_reported_values_must_name_cells_the_grid_runs(tmp_path: Path) -> None:
    for published, message in [
        ({"name": "x", "row": "nobody", "values": {"linear": {"OA": 1}}}, "not a row"),
        ({"name": "x", "row": "NT-Xent", "values": {"FT 1 %": {"OA": 1}}}, "runs no cell"),
        ({"name": "x", "row": "NT-Xent", "values": {"linear": {"AA": 1}}}, "not reported"),
        ({"name": "x", "row": "NT-Xent", "values": {"linear": {"OA": "1±"}}}, "values must be"),
    ]:
        with pytest.raises(GridError, match=message):
            load_grid(tiny_spec(tmp_path / "bad.yaml", published=[published]))
    with pytest.raises(GridError, match="layout"):
        load_grid(tiny_spec(tmp_path / "bad.yaml", layout="diagonal"))
    with pytest.raises(GridError, match="runs"):
        load_grid(tiny_spec(tmp_path / "bad.yaml", runs=0))
