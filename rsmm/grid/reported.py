"""The cells of a thesis grid: where each sits in the printed table, what was reported
there, and reported vs reproduced (mean ± std over seeds) with the difference.

A grid spec with ``table:`` reproduces a printed table. Its ``published:`` entries with
``row:`` hold the numbers reported for that grid row (entries without ``row`` are
published rows rsmm does not run, such as numbers quoted from another paper), and its
``layout`` says how (row, protocol, metric) cells map to the printed rows and columns:

* ``rows`` (default): printed row = grid row, printed column = protocol followed by the
  metric's label (``labels: {kappa: "100×κ"}``; an empty label leaves the protocol alone);
* ``metrics_as_rows``: printed row = metric label (per-class accuracies, Overall,
  Average), printed column = protocol (prefixed by the grid row when there are several);
* ``protocols_as_rows``: printed row = protocol, printed column = metric label.

With ``tested_with`` the metrics are ``<metric>@<subset>`` (:mod:`rsmm.grid.subsets`);
a cell whose row is not trained with the subset is not a cell (the printed table has –).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rsmm.atomic import atomic_open, write_text
from rsmm.grid.spec import Grid
from rsmm.grid.table import Result, aggregate, markdown_table


@dataclass(frozen=True)
class Cell:
    """One cell of the printed table.

    Attributes:
        row, protocol, metric: the grid cell (``row`` is a published entry's name when
            ``run`` is false).
        table_row, table_column: where the printed table has it.
        reported: the printed value (``None``: the table prints none there).
        spread: the printed ``±`` (``None`` when the table prints none).
        run: whether rsmm runs the cell (false for published-only entries).
    """

    row: str
    protocol: str
    metric: str
    table_row: str
    table_column: str
    reported: float | None
    spread: float | None
    run: bool = True


def _position(
    grid: Grid, row: str, protocol: str, metric: str, published: bool = False
) -> tuple[str, str]:
    """(printed row, printed column) of a cell; a published-only entry is a printed
    column of its own in ``metrics_as_rows`` and a printed row otherwise."""
    label = grid.labels.get(metric, metric)
    if grid.layout == "metrics_as_rows":
        if published:
            return label, row
        return label, protocol if len(grid.rows) == 1 else f"{row}, {protocol}"
    if grid.layout == "protocols_as_rows":
        return (row if published else protocol), label
    return row, f"{protocol} {label}".strip()


def table_cells(grid: Grid) -> list[Cell]:
    """Every cell of the grid's table in grid order, then the published-only cells
    (with ``tested_with``: the subsets each row is trained with)."""
    linked = {
        (pub.row, p, m): (v, pub.spreads.get(p, {}).get(m))
        for pub in grid.published
        if pub.row is not None
        for p, mv in pub.values.items()
        for m, v in mv.items()
    }
    cells = []
    for rows, protos in grid.blocks:
        for r in rows:
            for p in protos:
                for m in grid.cell_columns(r.name, p.name):
                    value, spread = linked.get((r.name, p.name, m), (None, None))
                    cells.append(
                        Cell(r.name, p.name, m, *_position(grid, r.name, p.name, m), value, spread)
                    )
    for pub in grid.published:
        if pub.row is None:
            for p, mv in pub.values.items():
                for m, v in mv.items():
                    spread = pub.spreads.get(p, {}).get(m)
                    pos = _position(grid, pub.name, p, m, published=True)
                    cells.append(Cell(pub.name, p, m, *pos, v, spread, run=False))
    return cells


def format_reported(value: float | None, spread: float | None) -> str:
    """``72.62 ± 1.31``, ``67``, or ``none``."""
    if value is None:
        return "none"
    text = f"{value:g}"
    return text if spread is None else f"{text} ± {spread:g}"


def cell_lines(grid: Grid) -> list[str]:
    """The dry-run listing: one line per cell of the table with its reported value."""
    title = f"thesis {grid.table}" if grid.table else grid.name
    cells = table_cells(grid)
    lines = [f"# cells of {title} ({len(cells)}): printed row | printed column: reported"]
    for c in cells:
        note = "" if c.run else " (published, not run by rsmm)"
        reported = format_reported(c.reported, c.spread)
        lines.append(f"# cell {c.table_row} | {c.table_column}: reported {reported}{note}")
    return lines


def comparison(
    grid: Grid, results: Iterable[Result]
) -> list[tuple[Cell, tuple[float, float, int] | None, float | None]]:
    """``(cell, (mean, std, n) reproduced or None, reproduced - reported or None)`` for
    every cell rsmm runs; means and differences in the table's scale (x ``grid.scale``)."""
    agg = aggregate(results, grid.columns)
    out = []
    for c in table_cells(grid):
        if not c.run:
            continue
        got = agg.get((c.row, c.protocol, c.metric))
        if got is None:
            out.append((c, None, None))
            continue
        mean, std, n = got[0] * grid.scale, got[1] * grid.scale, got[2]
        diff = None if c.reported is None else mean - c.reported
        out.append((c, (mean, std, n), diff))
    return out


def comparison_markdown(grid: Grid, results: Iterable[Result]) -> str:
    """Reported beside reproduced (mean ± std over seeds) and their difference."""
    title = f"thesis {grid.table}" if grid.table else "the reported numbers"
    lines = [
        f"### Reported ({title}) vs reproduced",
        "",
        "| row | column | reported | reproduced (mean ± std over seeds) | difference |",
        "|---|---|---|---|---|",
    ]
    for c, got, diff in comparison(grid, results):
        if got is None:
            reproduced = "not run yet"
        else:
            mean, std, n = got
            reproduced = f"{mean:.2f}" + ("" if math.isnan(std) else f" ± {std:.2f}")
            reproduced += f" (n={n})"
        delta = "–" if diff is None else f"{diff:+.2f}"
        reported = format_reported(c.reported, c.spread)
        lines.append(f"| {c.table_row} | {c.table_column} | {reported} | {reproduced} | {delta} |")
    return "\n".join(lines) + "\n"


def layout_markdown(grid: Grid, results: Iterable[Result]) -> str:
    """The table as printed in the thesis (its rows and columns), reproduced values."""
    agg = aggregate(results, grid.columns)
    cells = table_cells(grid)
    rows = list(dict.fromkeys(c.table_row for c in cells))
    cols = list(dict.fromkeys(c.table_column for c in cells))
    text: dict[tuple[str, str], str] = {}
    for c in cells:
        if not c.run:
            text[c.table_row, c.table_column] = format_reported(c.reported, c.spread) + " (pub.)"
            continue
        got = agg.get((c.row, c.protocol, c.metric))
        if got is not None:
            mean, std, _ = got
            value = f"{mean * grid.scale:.2f}"
            text[c.table_row, c.table_column] = (
                value if math.isnan(std) else f"{value} ± {std * grid.scale:.2f}"
            )
    lines = ["| | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for r in rows:
        lines.append(f"| {r} | " + " | ".join(text.get((r, c), "–") for c in cols) + " |")
    return "\n".join(lines) + "\n"


def has_reported(grid: Grid) -> bool:
    """Whether the grid reproduces a printed table (``table:`` or reported rows)."""
    return grid.table is not None or any(p.row is not None for p in grid.published)


def write_comparison(grid: Grid, results: Sequence[Result]) -> tuple[Path, Path]:
    """Append the printed-layout table and the comparison to ``results.md``; write
    ``comparison.csv`` (table row, table column, reported, spread, mean, std, n,
    difference; in the table's scale)."""
    md, table = grid.out / "results.md", grid.out / "comparison.csv"
    text = markdown_table(grid, results)
    text += "\n### As printed in the thesis (reproduced values)\n\n" + layout_markdown(
        grid, results
    )
    text += "\n" + comparison_markdown(grid, results)
    write_text(md, text)
    header = ["row", "column", "reported", "reported_spread", "mean", "std", "n", "difference"]
    with atomic_open(table, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for c, got, diff in comparison(grid, results):
            mean, std, n = got if got is not None else (math.nan, math.nan, 0)
            w.writerow(
                [c.table_row, c.table_column]
                + ["" if v is None or math.isnan(v) else v for v in (c.reported, c.spread)]
                + ["" if math.isnan(v) else v for v in (mean, std)]
                + [n, "" if diff is None else diff]
            )
    return md, table
