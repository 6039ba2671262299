"""The thesis grids list exactly the cells their printed table has, with the numbers
the thesis reports there (read from the thesis' tables as data:
``rsmm/data_manifests/thesis_tables.md``, a copy of ``../shared/thesis-tables.md``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from rsmm.grid import load_grid, run_grid
from rsmm.grid.spec import reported_value

REPO = Path(__file__).resolve().parents[1]
TABLES_MD = REPO / "rsmm" / "data_manifests" / "thesis_tables.md"
SHARED_MD = REPO.parent / "shared" / "thesis-tables.md"
#: grid spec -> (printed table, runs the thesis states; Table 4.3: not stated, one seed)
GRIDS = {
    "eurosat/grid.yaml": ("4.1", 3),
    "eurosat/grid_finetune.yaml": ("4.2", 3),
    "meterml/grid.yaml": ("4.3", 1),
    "sen12ms_dfc2020/grid.yaml": ("4.4", 5),
    "meterml/grid_table_4_5.yaml": ("4.5", 5),
    "meterml/grid_losses.yaml": ("4.6", 5),
}
Cells = dict[tuple[str, str], tuple[float, float | None]]


def printed_tables(text: str, wanted: tuple[str, ...]) -> dict[str, Cells]:
    """``{table id: {(printed row, printed column): (value, spread)}}`` of the Markdown
    table under each ``## Table X.Y`` heading in ``wanted``; empty (``-``) cells are left
    out and a trailing ``?`` (an uncertain value, explained under its table) is dropped."""
    out: dict[str, Cells] = {}
    table, header = None, None
    for line in text.splitlines():
        heading = re.match(r"^## Table (\S+)", line)
        if heading:
            table, header = heading.group(1), None
        elif table not in wanted or not line.startswith("|"):
            header = None
        elif header is None:
            header = [c.strip() for c in line.strip().strip("|").split("|")]
        elif not set(line.strip()) <= set("|-"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            for col, value in zip(header[1:], cells[1:]):
                if value != "-":
                    printed = value.removesuffix("?").strip().replace(" ", "")
                    out.setdefault(table, {})[cells[0], col] = reported_value(printed)
    return out


def dry_run_cells(spec: Path, out: Path) -> tuple[Cells, list[str]]:
    """The ``# cell`` lines of a dry run, parsed; and every line."""
    lines: list[str] = []
    run_grid(load_grid(spec, out=out), dry_run=True, echo=lines.append)
    cells: Cells = {}
    for line in lines:
        m = re.match(
            r"^# cell (.+?) \| (.+?): reported (.+?)( \(published, not run by rsmm\))?$", line
        )
        if m:
            assert (m.group(1), m.group(2)) not in cells, line
            cells[m.group(1), m.group(2)] = (
                (None, None) if m.group(3) == "none" else reported_value(m.group(3))
            )
    return cells, lines


TABLES = printed_tables(
    TABLES_MD.read_text(encoding="utf-8"), tuple(table for table, _ in GRIDS.values())
)


@pytest.mark.skipif(not SHARED_MD.is_file(), reason="../shared/thesis-tables.md not present")
def test_packaged_tables_are_the_shared_ones() -> None:
    assert TABLES_MD.read_text(encoding="utf-8") == SHARED_MD.read_text(encoding="utf-8")


def test_printed_tables_parse_as_printed() -> None:
    assert len(TABLES["4.3"]) == 42  # the Meter-ML table's printed cells
    assert TABLES["4.1"]["Random initialization", "RESISC-45 Acc."] == (45.65, 0.84)
    assert TABLES["4.3"]["S2+NAIP ⋆", "S2+NAIP"] == (72.93, None)
    assert TABLES["4.4"]["Barren", "CE (our impl.)"] == (43.91, 2.7)
    assert len(TABLES["4.4"]) == 30 and len(TABLES["4.5"]) == 14 and len(TABLES["4.6"]) == 4


@pytest.mark.parametrize("spec", sorted(GRIDS), ids=str)
def test_grid_lists_every_printed_cell_with_its_reported_value(spec: str, tmp_path: Path) -> None:
    table, runs = GRIDS[spec]
    grid = load_grid(REPO / "configs" / spec, out=tmp_path)
    assert grid.table == f"Table {table}"
    assert grid.seeds == tuple(range(runs))  # seeds default to the thesis' run count
    cells, lines = dry_run_cells(REPO / "configs" / spec, tmp_path)
    assert cells == TABLES[table]
    title = next(line for line in lines if line.startswith("# cells of"))
    assert (
        title
        == f"# cells of thesis Table {table} ({len(cells)}): printed row | printed column: reported"
    )
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_alpha_sweep_lists_its_cells_without_reported_numbers(tmp_path: Path) -> None:
    """Fig. 4.6 has no numbers: ten alphas on S1 + S2, five runs, nothing reported."""
    spec = REPO / "configs/meterml/grid_alpha.yaml"
    grid = load_grid(spec, out=tmp_path)
    assert grid.seeds == (0, 1, 2, 3, 4)
    cells, lines = dry_run_cells(spec, tmp_path)
    assert len(cells) == 10 and set(cells.values()) == {(None, None)}
    alphas = [
        float(line.split("--model.alpha ")[1].split()[0]) for line in lines if "alpha " in line
    ]
    assert sorted(set(alphas)) == [a / 10 for a in range(10)] and len(alphas) == 50


def test_meterml_grids_are_on_the_thesis_modalities(tmp_path: Path) -> None:
    """Tables 4.5, 4.6 and the alpha sweep use S1 + S2 only; Table 4.3 fine-tunes each
    pre-training on subsets of its modalities (the printed columns of its row)."""
    for name in ("grid_table_4_5.yaml", "grid_losses.yaml", "grid_alpha.yaml"):
        grid = load_grid(REPO / "configs/meterml" / name, out=tmp_path)
        for rows, protos in grid.blocks:
            for cfg in [r.config for r in rows] + [p.config for p in protos]:
                assert yaml.safe_load(cfg.read_text())["data"]["init_args"]["modalities"] == [
                    "s1",
                    "s2",
                ], cfg
    grid = load_grid(REPO / "configs/meterml/grid.yaml", out=tmp_path)
    subsets = 0
    for rows, protos in grid.blocks:
        for row in rows:
            pre = None if row.config is None else yaml.safe_load(row.config.read_text())
            for p in protos:
                down = yaml.safe_load(p.config.read_text())["data"]["init_args"]["modalities"]
                assert "+".join(down).upper() == p.name
                if pre is not None:
                    mods = pre["data"]["init_args"]["modalities"]
                    assert set(down) <= set(mods)
                    subsets += set(down) < set(mods)
    assert subsets == 42 - 7 - 11  # all but the None row and the 11 diagonal cells


def test_table_4_1_and_4_2_rows_and_imagenet_weights(tmp_path: Path) -> None:
    """Both datasets, the random-init and ImageNet-supervised rows (a local weights file
    per dataset), and one pre-training per method and dataset shared by both grids."""
    t41 = load_grid(REPO / "configs/eurosat/grid.yaml", out=tmp_path)
    t42 = load_grid(REPO / "configs/eurosat/grid_finetune.yaml", out=tmp_path)
    rows = [r for rows, _ in t41.blocks for r in rows]
    assert [r.key for r in rows] == [r.key for rows, _ in t42.blocks for r in rows]
    imagenet = [r for r in rows if r.name == "ImageNet supervised"]
    assert [r.config for r in imagenet] == [None, None]
    assert [r.downstream_overrides["model.weights"] for r in imagenet] == [
        "weights/resnet18_imagenet_resisc45.pth",
        "weights/resnet18_imagenet_eurosat.pth",
    ]
    for r in rows:
        if r.config is not None:
            data = yaml.safe_load(r.config.read_text())["data"]["init_args"]
            assert data["batch_size"] == 512 and data.get("bands", ["R", "G", "B"]) in (
                ["B04", "B03", "B02"],
                ["R", "G", "B"],
            )


def test_imagenet_row_loads_a_local_timm_file(tmp_path: Path) -> None:
    """The ImageNet-supervised row's `model.weights`: a timm ResNet-18 state dict (with
    its 1000-class fc) plus a sidecar naming RESISC-45's bands starts the encoder."""
    import timm
    import torch

    from rsmm.models.weights_info import write_sidecar
    from rsmm.tasks import FinetuneTask

    src = timm.create_model("resnet18", pretrained=False)
    path = tmp_path / "resnet18_imagenet_resisc45.pth"
    torch.save(src.state_dict(), path)
    write_sidecar(path, ["R", "G", "B"], architecture="resnet18")
    task = FinetuneTask(
        in_channels={"rgb": 3},
        backbone="resnet18",
        weights=str(path),
        num_classes=45,
        data_info={"bands": {"rgb": ["R", "G", "B"]}},
    )
    net = task.encoder.backbones["rgb"]
    assert torch.equal(net.conv1.weight, src.conv1.weight)
    assert torch.equal(net.layer4[1].bn2.running_var, src.layer4[1].bn2.running_var)
