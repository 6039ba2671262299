"""The chapter 3 and 5 grids (Tables 3.1, 3.2, 3.4, 5.1, 5.2, A.1) list exactly the cells
their printed tables have, with the numbers the thesis reports there (read from
``rsmm/data_manifests/thesis_tables.md``); their configs follow the stated protocols."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
import yaml
from test_thesis_grids import TABLES_MD, Cells, dry_run_cells, printed_tables

from rsmm.grid import load_grid, run_grid
from rsmm.grid.spec import reported_value

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
#: grid spec -> (printed table, runs the thesis states; chapter 3: not stated, one seed)
GRIDS = {
    "chapter3/grid_table_3_1.yaml": ("3.1", 1),
    "chapter3/grid_table_3_2.yaml": ("3.2", 1),
    "chapter3/grid_table_3_4.yaml": ("3.4", 1),
    "hyperbolic/grid_table_5_1.yaml": ("5.1", 3),
    "hyperbolic/grid_table_5_2.yaml": ("5.2", 3),
    "hyperbolic/grid_table_a_1.yaml": ("A.1", 3),
}


def chapter5_tables(text: str) -> dict[str, Cells]:
    """Tables 5.1 (three sub-tables under "CIFAR10:", "CIFAR100:", "CUB200:" lines, whose
    columns become "<dataset> d=<d>") and A.1 (its "Bias" column folded into the row,
    "<method>, bias <no|yes>", and its columns "CUB200 d=<d>")."""
    out: dict[str, Cells] = {}
    table, prefix, header = None, "", None
    for line in text.splitlines():
        heading = re.match(r"^## Table (\S+)", line)
        if heading:
            table, prefix, header = heading.group(1), "", None
        elif table not in ("5.1", "A.1"):
            continue
        elif re.match(r"^(CIFAR10|CIFAR100|CUB200):$", line):
            prefix, header = line[:-1] + " ", None
        elif not line.startswith("|"):
            header = None
        elif header is None:
            header = [c.strip() for c in line.strip().strip("|").split("|")]
        elif not set(line.strip()) <= set("|-"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            row, cols, values = cells[0], header[1:], cells[1:]
            if table == "A.1":
                row, cols, values = f"{row}, bias {cells[1]}", header[2:], cells[2:]
                prefix = "CUB200 "
            for col, value in zip(cols, values):
                printed = value.removesuffix("?").strip().replace(" ", "")
                out.setdefault(table, {})[row, prefix + col] = reported_value(printed)
    return out


TEXT = TABLES_MD.read_text(encoding="utf-8")
TABLES = {**printed_tables(TEXT, ("3.1", "3.2", "3.4", "5.2")), **chapter5_tables(TEXT)}


def test_printed_tables_parse_as_printed() -> None:
    assert len(TABLES["3.1"]) == len(TABLES["3.2"]) == 24 and len(TABLES["3.4"]) == 14
    assert TABLES["3.2"]["L_COOT", "STL10 Acc@5"] == (92.31, None)
    assert len(TABLES["5.1"]) == 72 and len(TABLES["5.2"]) == 8 and len(TABLES["A.1"]) == 8
    assert TABLES["5.1"]["Metric Guided Prototypes", "CIFAR100 d=2"] == (54.2, 0.8)
    assert TABLES["5.1"]["Hyperbolic Neural Networks", "CUB200 d=3"] == (22.3, 12.0)
    assert TABLES["A.1"]["Horospherical - Smart, bias no", "CUB200 d=2"] == (34.4, 6.2)
    # the "yes" row of Table A.1 is Table 5.1's CUB200 Horospherical - Smart row
    for d in (2, 3, 4, 50):
        yes = TABLES["A.1"]["Horospherical - Smart, bias yes", f"CUB200 d={d}"]
        assert yes == TABLES["5.1"]["Horospherical - Smart (ours)", f"CUB200 d={d}"]


@pytest.mark.parametrize("spec", sorted(GRIDS), ids=str)
def test_grid_lists_every_printed_cell_with_its_reported_value(spec: str, tmp_path: Path) -> None:
    table, runs = GRIDS[spec]
    grid = load_grid(CONFIGS / spec, out=tmp_path)
    assert grid.table == f"Table {table}"
    assert grid.seeds == tuple(range(runs))
    cells, lines = dry_run_cells(CONFIGS / spec, tmp_path)
    assert cells == TABLES[table]
    assert lines[0] == (
        f"# cells of thesis Table {table} ({len(cells)}): printed row | printed column: reported"
    ) or any(line.startswith(f"# cells of thesis Table {table} ({len(cells)})") for line in lines)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_every_printed_row_of_tables_5_1_and_5_2_is_run(tmp_path: Path) -> None:
    """Metric-Guided Prototypes (Tables 5.1, 5.2) runs with ``head: mgp`` like the other
    rows: no cell is published-only (tests/test_metric_prototypes.py checks its runs)."""
    for spec in ("hyperbolic/grid_table_5_1.yaml", "hyperbolic/grid_table_5_2.yaml"):
        _, lines = dry_run_cells(CONFIGS / spec, tmp_path)
        assert not any(line.endswith("(published, not run by rsmm)") for line in lines)
        assert any("_mgp.yaml" in line for line in lines if line.startswith("cd "))


def _configs(spec: str, tmp_path: Path) -> list[tuple[str, Path | None, list[Path]]]:
    grid = load_grid(CONFIGS / spec, out=tmp_path)
    return [
        (r.name, r.config, [p.config for p in protos]) for rows, protos in grid.blocks for r in rows
    ]


def test_chapter3_configs_follow_the_thesis_protocols(tmp_path: Path) -> None:
    """Batch 1024 and the stated loss settings (Tables 3.1, 3.2); STL10 pre-trains on
    train+unlabeled; Table 3.4: embeddings in R^3, SGD lr 0.05, wd 0.001,
    batch 512, 200 epochs, lambda = 1 (SW) / 20 (SSW) with L = 10 and 3."""
    losses = set()
    for name, pre, _ in _configs("chapter3/grid_table_3_1.yaml", tmp_path):
        cfg = yaml.safe_load(pre.read_text())
        assert (
            cfg["data"]["init_args"]["batch_size"] == 1024
            and cfg["data"]["init_args"]["views"] == 2
        )
        if "stl10" in pre.name:
            assert cfg["data"]["init_args"]["train_split"] == "train+unlabeled"
        kw = cfg["model"].get("loss_kwargs") or {}
        losses.add((name, cfg["model"]["loss"]))
        if cfg["model"]["loss"] in ("ot_sample", "ot_feature", "coot"):
            assert kw["eps"] == 0.01 and kw["n_iters"] == 5
        if cfg["model"]["loss"] == "coot":
            assert kw["lambda_samples"] == kw["lambda_features"] == 1.0
        if cfg["model"]["loss"] == "barlow_twins":
            assert kw["lambda_param"] == 0.0051
    assert {loss for _, loss in losses} == {
        "ntxent",
        "barlow_twins",
        "mmcr",
        "ot_feature",
        "ot_sample",
        "coot",
    }
    seen = {}
    for name, pre, _ in _configs("chapter3/grid_table_3_4.yaml", tmp_path):
        if pre is None:
            continue
        cfg = yaml.safe_load(pre.read_text())
        m = cfg["model"]
        assert (m["projection_dim"], m["optimizer"], m["lr"]) == (3, "sgd", 0.05)
        assert m["weight_decay"] == 0.001 and cfg["data"]["init_args"]["batch_size"] == 512
        assert cfg["trainer"]["max_epochs"] == 200
        if m["loss"] in ("sw_ssl", "ssw_ssl"):
            seen[name] = (m["loss_kwargs"]["lam"], m["loss_kwargs"]["n_projections"])
    assert seen == {
        "SW-SSL, lambda = 1, L = 10": (1.0, 10),
        "SW-SSL, lambda = 1, L = 3": (1.0, 3),
        "SSW-SSL, lambda = 20, L = 10": (20.0, 10),
        "SSW-SSL, lambda = 20, L = 3": (20.0, 3),
    }


def test_chapter5_configs_use_the_rows_heads_and_hierarchies(tmp_path: Path) -> None:
    heads = {
        "Euclidean": ("linear", None),
        "Hyperbolic Neural Networks": ("gyroplane", None),
        "Metric Guided Prototypes": ("mgp", None),
        "Busemann - Uniform": ("busemann", None),
        "Busemann - Smart (ours)": ("busemann", "hierarchical"),
        "Horospherical - Smart (ours)": ("horospherical", "hierarchical"),
    }
    grid = load_grid(CONFIGS / "hyperbolic/grid_table_5_1.yaml", out=tmp_path)
    for rows, protos in grid.blocks:
        (row,) = rows
        assert [p.overrides for p in protos] == [{"model.head_dim": d} for d in (2, 3, 4, 50)]
        dataset = protos[0].name.split()[0].lower()
        for p in protos:
            m = yaml.safe_load(p.config.read_text())["model"]
            kw = m.get("head_kwargs") or {}
            assert (m["head"], kw.get("prototypes")) == heads[row.name], p.config
            assert m["hierarchy"] == dataset and kw.get("c", 1.0) == 1.0
            assert m.get("pretrained") is None  # trained from random initialisation
    epochs = {
        p.name: yaml.safe_load(p.read_text())["trainer"]["max_epochs"]
        for p in (CONFIGS / "hyperbolic").glob("finetune_*.yaml")
    }
    assert {e for n, e in epochs.items() if "cub200" in n} == {2110}
    assert {e for n, e in epochs.items() if "cifar" in n} == {1110}


def test_every_new_config_names_its_table_row_and_reported_numbers() -> None:
    for folder in ("chapter3", "hyperbolic"):
        for path in (CONFIGS / folder).glob("*.yaml"):
            head = [line for line in path.read_text().splitlines() if line.startswith("#")]
            text = " ".join(head)
            assert head[0].startswith("# Thesis Table"), path
            assert "Not stated" in text or path.name.startswith("grid"), path
            if not path.name.startswith("grid"):
                assert re.search(r"row|column", head[0] + head[1]), path
                assert "Reported" in text and "data/" in path.read_text(), path


@pytest.mark.parametrize("spec", ["chapter3/grid_table_3_1.yaml", "chapter3/grid_table_3_2.yaml"])
def test_acc5_cells_are_reproduced_from_the_logged_top5_accuracy(spec: str, tmp_path: Path) -> None:
    """Tables 3.1 and 3.2: the Acc@5 cells read ``test/Acc@5`` (FinetuneTask's top-5
    accuracy) as the Acc@1 cells read ``test/OA``; a run prints them beside the reported
    numbers."""
    grid = load_grid(CONFIGS / spec, out=tmp_path / "out")
    assert grid.metrics == ("OA", "Acc@5")
    cells, _ = dry_run_cells(CONFIGS / spec, tmp_path / "out")
    assert sum(column.endswith(" Acc@5") for _, column in cells) == 12

    def fake(command: str, args: list[str], workdir: Path) -> None:
        run = workdir / f"runs/{command}/version_0"
        (run / "checkpoints").mkdir(parents=True)
        (run / "checkpoints/last.ckpt").write_bytes(b"weights")
        (run / "metrics.csv").write_text("test/OA,test/Acc@5,test/kappa\n0.5,0.9,0.4\n")

    out: list[str] = []
    run_grid(grid, fake, echo=out.append)
    table = "3.1" if spec.endswith("3_1.yaml") else "3.2"
    reported = TABLES[table]["SimCLR", "CIFAR10 Acc@5"][0]
    assert (
        f"SimCLR | CIFAR10 Acc@5: reported {reported:g}, reproduced 90.00 (n=1), "
        f"difference {90.0 - reported:+.2f}"
    ) in out
    with (grid.out / "comparison.csv").open() as fh:
        rows = {(r["row"], r["column"]): r for r in csv.DictReader(fh)}
    assert len(rows) == 24 and float(rows["L_COOT", "STL10 Acc@5"]["mean"]) == 90.0
