"""The results table of a grid: mean ± std over seeds, as Markdown and CSV."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rsmm.atomic import atomic_open, write_text
from rsmm.grid.spec import Grid
from rsmm.grid.subsets import split_metric


@dataclass
class Result:
    """Test metrics of one downstream run."""

    row: str
    protocol: str
    seed: int
    metrics: dict[str, float]


def mean_std(values: Iterable[float]) -> tuple[float, float, int]:
    """Mean, sample standard deviation (ddof = 1; NaN for one value) and count."""
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0:
        return math.nan, math.nan, 0
    std = float(v.std(ddof=1)) if v.size > 1 else math.nan
    return float(v.mean()), std, int(v.size)


def aggregate(
    results: Iterable[Result], metrics: Sequence[str]
) -> dict[tuple[str, str, str], tuple[float, float, int]]:
    """``{(row, protocol, metric): (mean, std, n)}`` over the seeds of each cell."""
    values: dict[tuple[str, str, str], list[float]] = {}
    for r in results:
        for m in metrics:
            if m in r.metrics:
                values.setdefault((r.row, r.protocol, m), []).append(r.metrics[m])
    return {k: mean_std(v) for k, v in values.items()}


def markdown_table(grid: Grid, results: Iterable[Result]) -> str:
    """Rows = pre-trainings, columns = protocol x metric, cells ``mean ± std``."""
    cells = aggregate(results, grid.columns)
    cols = [(p, m) for p in grid.protocols for m in grid.columns]
    scale = f" ×{grid.scale:g}" if grid.scale != 1 else ""
    lines = [
        f"## {grid.name}",
        "",
        f"Test metrics{scale}, mean ± sample std over seeds {', '.join(map(str, grid.seeds))}"
        " (n = seeds done when fewer); "
        + (
            "each seed has its own pre-training."
            if grid.pretrain_per_seed
            else "the seeds vary the downstream runs only (one pre-training per row), so the"
            " ± leaves out the variance of pre-training."
        ),
        *_tested_with_note(grid),
        "",
        "| method | " + " | ".join(f"{p} {m}" for p, m in cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for row in grid.rows:
        out = []
        for p, m in cols:
            if (row, p, m) not in cells:
                out.append("–")
                continue
            mean, std, n = cells[row, p, m]
            text = f"{mean * grid.scale:.2f}"
            if n > 1:
                text += f" ± {std * grid.scale:.2f}"
            if n < len(grid.seeds):
                text += f" (n={n})"
            out.append(text)
        lines.append(f"| {row} | " + " | ".join(out) + " |")
    for pub in grid.published:  # published numbers, as reported (already scaled)
        out = [f"{pub.values[p][m]:.1f}" if m in pub.values.get(p, {}) else "–" for p, m in cols]
        lines.append(f"| {pub.name} (published) | " + " | ".join(out) + " |")
    sources = [f"{pub.name}: {pub.source}" for pub in grid.published if pub.source]
    if sources:
        lines += ["", "Published rows: " + "; ".join(sources) + "."]
    return "\n".join(lines) + "\n"


def _tested_with_note(grid: Grid) -> list[str]:
    if not grid.tested_with:
        return []
    return [
        "",
        "Trained with the row's modalities, tested with each subset: a column "
        "`<metric>@<subset>` is the model tested with only those modalities (on the test "
        "samples that have them); – : the row is not trained with that subset.",
    ]


def tabulated_lines(grid: Grid) -> list[str]:
    """The dry-run listing of a ``tested_with`` grid: the tested subsets, then for each
    (row, protocol) cell the subsets tabulated and those left –."""
    if not grid.tested_with:
        return []
    lines = [
        f"# tabulated: {', '.join(grid.metrics)} of every run tested with each subset of "
        f"its modalities ({len(grid.columns)} columns per protocol): " + ", ".join(grid.columns)
    ]
    for rows, protos in grid.blocks:
        for r in rows:
            for p in protos:
                mods = grid.trained_with[r.name, p.name]
                have = {split_metric(c)[1] for c in grid.cell_columns(r.name, p.name)}
                tested = [s for s in grid.tested_with if s in have]
                none = [s for s in grid.tested_with if s not in have]
                lines.append(
                    f"# {r.name} | {p.name}: trained with {'+'.join(mods)}, tested with "
                    f"{', '.join(tested) or 'nothing'}"
                    + (f"; – for {', '.join(none)}" if none else "")
                )
    return lines


def csv_rows(grid: Grid, results: Iterable[Result]) -> list[list[Any]]:
    """The wide CSV table (unscaled): one row per method, ``<protocol>/<metric>/mean|std|n``."""
    cells = aggregate(results, grid.columns)
    cols = [(p, m) for p in grid.protocols for m in grid.columns]
    header = ["method"] + [f"{p}/{m}/{s}" for p, m in cols for s in ("mean", "std", "n")]
    table: list[list[Any]] = [header]
    for row in grid.rows:
        line: list[Any] = [row]
        for p, m in cols:
            mean, std, n = cells.get((row, p, m), (math.nan, math.nan, 0))
            line += ["" if math.isnan(mean) else mean, "" if math.isnan(std) else std, n]
        table.append(line)
    return table


def write_tables(grid: Grid, results: Sequence[Result]) -> tuple[Path, Path]:
    """Write ``results.md`` and ``results.csv`` under the grid's output directory."""
    grid.out.mkdir(parents=True, exist_ok=True)
    md, table = grid.out / "results.md", grid.out / "results.csv"
    write_text(md, markdown_table(grid, results))
    with atomic_open(table, "w", newline="") as fh:
        csv.writer(fh).writerows(csv_rows(grid, results))
    return md, table
