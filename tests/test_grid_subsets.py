"""A grid that tabulates "trained with X, tested with Y" (``tested_with``, rsmm.grid.subsets)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from rsmm.grid import GridError, load_grid, run_grid, subset_names
from rsmm.grid.reported import table_cells

REPO = Path(__file__).resolve().parents[1]
MISSING = REPO / "configs" / "missing"
SCENE = Path(__file__).parent / "data" / "stacks" / "scene"
ALL3 = ("s1", "s2", "naip")


def subsets_spec(path: Path, **extra: object) -> Path:
    """Rows trained with S1+S2+NAIP and with S2+S1 (that order, to check that the
    grid names ``s2+s1`` as ``s1+s2``), one fine-tuning protocol, two seeds."""
    spec = {
        "name": "subsets",
        "out": str(path.parent / "out"),
        "seeds": [0, 1],
        "tested_with": "all",
        "pretrain": [
            {"name": "S1+S2+NAIP", "key": "all3", "config": None},
            {
                "name": "S1+S2",
                "key": "s1_s2",
                "config": None,
                "downstream_overrides": {"data.init_args.modalities": ["s2", "s1"]},
            },
        ],
        "downstream": [
            {
                "name": "FT",
                "command": "finetune",
                "config": str(MISSING / "finetune_scene_presence.yaml"),
            }
        ],
        **extra,
    }
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def oa(seed: int, subset: str) -> float:
    """The OA the fake runs log for ``subset``: 0.5 + 0.1 x seed + 0.01 x its modality
    count (so every cell of the table is known)."""
    return 0.5 + 0.1 * seed + 0.01 * len(subset.split("+"))


def fake_run(command: str, args: list[str], workdir: Path) -> None:
    """A downstream run that logs test/OA@<subset> and test/kappa@<subset> for every
    subset of its modalities, named in the order the run has them (as the task does)."""
    mods = ALL3
    if "--data.init_args.modalities" in args:
        mods = tuple(json.loads(args[args.index("--data.init_args.modalities") + 1]))
    assert args[args.index("--model.subset_metrics") + 1] == "true"
    seed = int(args[args.index("--seed_everything") + 1])
    run = workdir / f"runs/{command}/version_0"
    run.mkdir(parents=True)
    names = subset_names(mods)
    header = ["epoch", "test/OA", *(f"test/{m}@{s}" for s in names for m in ("OA", "kappa"))]
    values = [0, 0.99, *(v for s in names for v in (oa(seed, s), oa(seed, s) - 0.4))]
    (run / "metrics.csv").write_text(",".join(header) + "\n" + ",".join(map(str, values)) + "\n")


def test_subset_names_are_the_task_metric_names() -> None:
    from rsmm.tasks.metrics import modality_subsets, subset_name

    for mods in (("s1",), ("s1", "s2"), ALL3, ("s2", "naip", "s1")):
        assert subset_names(mods) == [subset_name(s) for s in modality_subsets(mods)]


def test_table_has_a_column_per_tested_subset_and_dashes_where_not_trained(
    tmp_path: Path,
) -> None:
    grid = load_grid(subsets_spec(tmp_path / "g.yaml"))
    assert grid.tested_with == ("s1", "s2", "naip", "s1+s2", "s1+naip", "s2+naip", "s1+s2+naip")
    assert grid.trained_with == {("S1+S2+NAIP", "FT"): ALL3, ("S1+S2", "FT"): ("s1", "s2")}
    results = run_grid(grid, fake_run, echo=lambda _: None)
    assert len(results) == 4
    # the S1+S2 runs logged OA@s2+s1: tabulated as OA@s1+s2
    assert sorted(results[2].metrics) == sorted(
        ["OA"] + [f"{m}@{s}" for s in ("s1", "s2", "s1+s2") for m in ("OA", "kappa")]
    )

    md = (grid.out / "results.md").read_text().splitlines()
    header = [f"FT {m}@{s}" for s in grid.tested_with for m in ("OA", "kappa")]
    assert md[6] == "| method | " + " | ".join(header) + " |"
    std = f"{100 * np.std([0.5, 0.6], ddof=1):.2f}"  # seeds 0 and 1: OA and OA + 0.1

    def cell(k: int, kappa: bool) -> str:
        return f"{100 * (0.55 + 0.01 * k - (0.4 if kappa else 0)):.2f} ± {std}"

    sizes = [1, 1, 1, 2, 2, 2, 3]
    full = [cell(k, kappa) for k in sizes for kappa in (False, True)]
    assert md[8] == "| S1+S2+NAIP | " + " | ".join(full) + " |"
    assert md[9] == (
        "| S1+S2 | 56.00 ± 7.07 | 16.00 ± 7.07 | 56.00 ± 7.07 | 16.00 ± 7.07 | – | – | "
        "57.00 ± 7.07 | 17.00 ± 7.07 | – | – | – | – | – | – |"
    )
    assert "–" not in md[8]
    assert "`<metric>@<subset>`" in md[4]

    with (grid.out / "results.csv").open(newline="") as fh:
        table = {r["method"]: r for r in csv.DictReader(fh)}
    assert float(table["S1+S2"]["FT/OA@s1+s2/mean"]) == pytest.approx(0.57)
    assert float(table["S1+S2"]["FT/OA@s1+s2/std"]) == pytest.approx(np.std([0.52, 0.62], ddof=1))
    assert table["S1+S2"]["FT/OA@s1+s2/n"] == "2"
    assert table["S1+S2"]["FT/OA@naip/mean"] == "" and table["S1+S2"]["FT/OA@naip/n"] == "0"
    assert float(table["S1+S2+NAIP"]["FT/kappa@s1+s2+naip/mean"]) == pytest.approx(0.18)
    assert "FT/OA/mean" not in table["S1+S2"]  # the columns are the tested subsets

    # a done grid is read back, subsets named the same way
    again = run_grid(grid, lambda c, a, w: pytest.fail("re-ran a done cell"), echo=lambda _: None)
    assert again == results


def test_dry_run_listing_exact(tmp_path: Path) -> None:
    spec = subsets_spec(tmp_path / "g.yaml", tested_with=["s2+s1", ["naip"], "s1"], metrics=["OA"])
    grid = load_grid(spec)
    assert grid.tested_with == ("s1+s2", "naip", "s1")
    lines: list[str] = []
    run_grid(grid, dry_run=True, echo=lines.append)
    assert lines[4:] == [
        "# tabulated: OA of every run tested with each subset of its modalities (3 columns per "
        "protocol): OA@s1+s2, OA@naip, OA@s1",
        "# S1+S2+NAIP | FT: trained with s1+s2+naip, tested with s1+s2, naip, s1",
        "# S1+S2 | FT: trained with s1+s2, tested with s1+s2, s1; – for naip",
    ]
    assert not (tmp_path / "out").exists()
    # the table then has exactly those columns
    run_grid(grid, fake_run, echo=lambda _: None)
    md = (grid.out / "results.md").read_text().splitlines()
    assert md[6] == "| method | FT OA@s1+s2 | FT OA@naip | FT OA@s1 |"
    assert md[9] == "| S1+S2 | 57.00 ± 7.07 | – | 56.00 ± 7.07 |"


def test_grid_without_tested_with_is_unchanged(tmp_path: Path) -> None:
    spec = subsets_spec(tmp_path / "g.yaml")
    data = yaml.safe_load(spec.read_text())
    del data["tested_with"]
    spec.write_text(yaml.safe_dump(data))
    grid = load_grid(spec)
    assert grid.tested_with == () and grid.columns == ("OA", "kappa")
    lines: list[str] = []
    run_grid(grid, dry_run=True, echo=lines.append)
    assert len(lines) == 4 and not any("subset_metrics" in line for line in lines)


@pytest.mark.parametrize(
    ("tested_with", "message"),
    [
        (["s1+s3"], "'s1+s3' is not a subset of the modalities the runs are trained with"),
        (["s1", "s1+s1"], "is not a subset"),
        (["s1", "s1"], "names a subset twice"),
        ([], "must be `all` or a non-empty list"),
        ("every", "must be `all` or a non-empty list"),
    ],
)
def test_bad_tested_with_names_the_problem(
    tmp_path: Path, tested_with: object, message: str
) -> None:
    with pytest.raises(GridError) as err:
        load_grid(subsets_spec(tmp_path / "g.yaml", tested_with=tested_with))
    assert message in str(err.value) and "g.yaml" in str(err.value)


def test_tested_with_needs_the_modalities_of_each_run(tmp_path: Path) -> None:
    config = tmp_path / "finetune_nomods.yaml"
    config.write_text("model: {backbone: tiny_cnn}\ndata: {class_path: x, init_args: {}}\n")
    spec = subsets_spec(tmp_path / "g.yaml")
    data = yaml.safe_load(spec.read_text())
    data["downstream"][0]["config"] = str(config)
    spec.write_text(yaml.safe_dump(data))
    with pytest.raises(GridError, match=r"sets no data\.init_args\.modalities") as err:
        load_grid(spec)
    assert "row 'S1+S2+NAIP', downstream 'FT'" in str(err.value)
    # an override naming them is enough
    data["overrides"] = {"data.init_args.modalities": ["s1"]}
    spec.write_text(yaml.safe_dump(data))
    grid = load_grid(spec)
    assert grid.trained_with[("S1+S2+NAIP", "FT")] == ("s1",)
    assert grid.trained_with[("S1+S2", "FT")] == ("s1", "s2")  # the row's wins
    assert grid.tested_with == ("s1", "s2", "s1+s2")


def test_a_run_without_subset_metrics_fails_naming_them(tmp_path: Path) -> None:
    grid = load_grid(subsets_spec(tmp_path / "g.yaml", seeds=[0]))

    def plain(command: str, args: list[str], workdir: Path) -> None:
        (workdir / f"runs/{command}/version_0").mkdir(parents=True)
        (workdir / f"runs/{command}/version_0/metrics.csv").write_text("test/OA,test/kappa\n1,1\n")

    with pytest.raises(GridError, match=r"logged no test metrics \['OA@s1', 'kappa@s1'"):
        run_grid(grid, plain, echo=lambda _: None)


def test_reported_subset_cells_in_comparison_and_printed_table(tmp_path: Path) -> None:
    published = [{"name": "S1+S2", "row": "S1+S2", "values": {"FT": {"OA@s1": "50.0±1.0"}}}]
    spec = subsets_spec(tmp_path / "g.yaml", metrics=["OA"], table="Table X", published=published)
    grid = load_grid(spec)
    cells = table_cells(grid)
    assert [(c.row, c.metric) for c in cells if c.row == "S1+S2"] == [
        ("S1+S2", "OA@s1"),
        ("S1+S2", "OA@s2"),
        ("S1+S2", "OA@s1+s2"),
    ]  # no cell for a subset the row is not trained with
    assert len(cells) == 7 + 3
    run_grid(grid, fake_run, echo=lambda _: None)
    with (grid.out / "comparison.csv").open() as fh:
        rows = {(r["row"], r["column"]): r for r in csv.DictReader(fh)}
    got = rows["S1+S2", "FT OA@s1"]
    assert float(got["reported"]) == 50.0 and float(got["mean"]) == pytest.approx(56.0)
    assert float(got["difference"]) == pytest.approx(6.0)
    assert ("S1+S2", "FT OA@naip") not in rows and len(rows) == 10
    md = (grid.out / "results.md").read_text()
    printed = md.split("### As printed in the thesis (reproduced values)")[1].splitlines()
    assert printed[2].startswith("| | FT OA@s1 | FT OA@s2 | FT OA@naip |")
    s12 = next(line for line in printed if line.startswith("| S1+S2 |"))
    assert s12 == "| S1+S2 | 56.00 ± 7.07 | 56.00 ± 7.07 | – | 57.00 ± 7.07 | – | – | – |"
    # a reported value for a subset the row is not trained with is refused
    published[0]["values"]["FT"]["OA@naip"] = 40
    with pytest.raises(GridError, match=r"metrics \['OA@naip'\] are not reported"):
        load_grid(subsets_spec(tmp_path / "h.yaml", metrics=["OA"], published=published))


def test_shipped_scene_subsets_grid(tmp_path: Path) -> None:
    grid = load_grid(MISSING / "grid_scene_subsets.yaml", out=tmp_path / "out")
    assert grid.rows == ["S1+S2", "S1+S2+NAIP"] and grid.protocols == ["linear", "FT"]
    assert grid.trained_with["S1+S2", "FT"] == ("s1", "s2")
    assert grid.trained_with["S1+S2+NAIP", "linear"] == ALL3
    assert grid.tested_with == tuple(subset_names(ALL3)) and grid.seeds == (0, 1, 2)


# -- a real grid on the generated scene ---------------------------------------------------------


def test_shipped_scene_subsets_grid_runs_on_the_test_scene(tmp_path: Path) -> None:
    """configs/missing/grid_scene_subsets.yaml, its configs and the real training
    commands, on the committed generated scene (tiny: one seed, one epoch, fine-tuning
    only): each model is tested with every subset of its modalities and the table's
    cells are the logged test/OA@<subset> values."""
    from rsmm.cli.grid import in_process_runner
    from rsmm.stacks import LabelSpec, build_manifest, spec_from_dirs, write_manifest

    spec = spec_from_dirs(
        {m: SCENE / m for m in ALL3},
        chip_size="160m",
        stride="40m",  # ~130 chips; blocks of 320 m: the test split's classes are trained
        block_size="320m",
        split=(0.5, 0.2, 0.3),
        labels=LabelSpec(path=str(SCENE / "labels.tif")),
    )
    manifest = write_manifest(build_manifest(spec), tmp_path / "chips.parquet")
    data = yaml.safe_load((MISSING / "grid_scene_subsets.yaml").read_text())
    for row in data["pretrain"]:
        row["config"] = str(MISSING / row["config"])
    data["downstream"] = [p for p in data["downstream"] if p["command"] == "finetune"]
    data["downstream"][0]["config"] = str(MISSING / data["downstream"][0]["config"])
    data |= {
        "out": str(tmp_path / "out"),
        "seeds": [0],
        "data_root": str(manifest),
        "overrides": {
            "data.init_args.batch_size": 16,
            "trainer.max_epochs": 1,
            "trainer.accelerator": "cpu",
            "trainer.enable_progress_bar": False,
        },
    }
    (tmp_path / "g.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    grid = load_grid(tmp_path / "g.yaml")
    results = run_grid(grid, in_process_runner, echo=lambda _: None)
    assert [r.row for r in results] == ["S1+S2", "S1+S2+NAIP"]
    md = (grid.out / "results.md").read_text().splitlines()
    for result, line, key in zip(results, md[8:10], ("s1_s2", "s1_s2_naip"), strict=True):
        logged = tmp_path / f"out/{key}/ft/seed_0/runs/finetune/version_0/metrics.csv"
        with logged.open(newline="") as fh:
            test = {
                k: float(v)
                for r in csv.DictReader(fh)
                for k, v in r.items()
                if v and k.startswith("test/")
            }
        cells = line.strip("| ").split(" | ")[1:]
        for column, cell in zip(grid.columns, cells, strict=True):
            if column in result.metrics:
                assert cell == f"{100 * test[f'test/{column}']:.2f}"
            else:
                assert cell == "–" and column.split("@")[1] not in subset_names(("s1", "s2"))
    assert md[8].count("–") == 8 and "–" not in md[9]
    # the subsets are tested apart: the full model's cells are not all one value
    assert len(set(results[1].metrics.values())) > 1
