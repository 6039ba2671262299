"""Results grids: pre-training configs x downstream protocols x seeds -> one table.

A grid spec (YAML) lists pre-training configs (the table's rows) and downstream
protocols (its columns: linear probe, fine-tuning at a label fraction, ...), each a
config of the ``rsmm`` command plus dotted overrides, and the seeds to repeat the
downstream runs with. :func:`run_grid` runs every cell through the ``rsmm`` command
(``rsmm pretrain``, then ``rsmm finetune|linear-probe --model.pretrained <ckpt>``, then
``rsmm test`` when the downstream run logged no test metrics), skips cells whose
results exist (a grid is resumable), and writes the test metrics as one table
(Markdown and CSV, mean ± std over seeds).

Spec keys (paths of configs are relative to the spec file, ``out`` and ``data_root``
to the working directory)::

    name: eurosat                  # the table's title; default: the spec's file name
    out: results/eurosat           # default: results/<name>
    seeds: [0, 1, 2]               # seed_everything and data.seed of each downstream run
    metrics: [OA, kappa]           # test metrics reported (the task logs test/<metric>:
                                   # OA, Acc@5, kappa, AA, ...)
    scale: 100                     # Markdown shows metric x scale (the CSV is unscaled)
    data_root: data/eurosat        # optional: --data.root of every run
    pretrain_per_seed: false       # also repeat the pre-training per seed
    overrides: {trainer.accelerator: gpu}   # every run
    published:                     # optional rows of published numbers (as displayed)
      - {name: "SoftCon RN50 (S2)", values: {"linear 10 %": {mAP_micro: 84.8}}, source: ...}
      # with `row`: the numbers reported for that grid row ("mean±spread" or a number),
      # printed beside the reproduced ones with the difference
      - {name: SimCLR, row: SimCLR, values: {EuroSAT: {OA: "92.59±0.05"}}, source: ...}
    table: Table 4.1               # the printed table the grid reproduces (thesis grids)
    runs: 3                        # the reported run count; seeds default to range(runs)
    layout: rows                   # rows | metrics_as_rows | protocols_as_rows: how the
                                   # cells sit in the printed table (rsmm.grid.reported)
    labels: {OA: Acc., kappa: 100×κ}   # a metric's name in the printed table
    tested_with: all               # optional: test every run with each subset of the
                                   # modalities it is trained with (or a list: [s1, s1+s2]);
                                   # one column per tested subset and metric (OA@s1, ...)
    blocks:                        # or pretrain/downstream at the top level (one block)
      - pretrain:                  # rows; config null = random initialisation
          - {name: SimCLR, config: pretrain_ms_simclr.yaml, overrides: {}, key: simclr,
             downstream_overrides: {}}
        downstream:                # columns, shared by name across blocks
          - {name: FT 1 %, command: finetune, config: finetune_ms.yaml,
             overrides: {data.label_fraction: 0.01}}

Every run writes into its own cell folder (``runs/<command>/version_0`` there: a child
process runs in that folder, an in-process run is given it as its run directory)::

    <out>/<row key>/pretrain[/seed_<s>]/runs/pretrain/version_0/checkpoints/last.ckpt
    <out>/<row key>/<protocol key>/seed_<s>/runs/<command>/version_0/metrics.csv
    <out>/<row key>/<protocol key>/seed_<s>/result.json     (written when the cell is done)
    <out>/results.md, <out>/results.csv
    <out>/comparison.csv         (grids with reported numbers: reported vs reproduced)

A grid with reported numbers (``table`` or ``published`` entries with ``row``) lists,
with ``--dry-run``, every cell of its printed table with the reported value, and after
a run prints and writes (``results.md``, ``comparison.csv``) reported beside reproduced
(mean ± std over seeds) and their difference, and the table in its printed layout
(per-class accuracies as rows with ``layout: metrics_as_rows``).

A pre-training cell is done when its ``done.json`` exists; a cell that is not done is
started afresh (its stale ``runs/`` directory is removed first).

Trained with X, tested with Y (``tested_with``): every downstream run gets
``--model.subset_metrics true`` and so logs ``test/<metric>@<subset>`` for each non-empty
subset of its modalities (the downstream config's ``data.init_args.modalities``, or the
overrides'); the table's rows stay the grid's rows (what each is trained with), its
columns are protocol x tested subset x metric (``FT OA@s1``), cells mean ± std over seeds,
and a subset the row is not trained with is –. ``--dry-run`` lists, per row and protocol,
the subsets tabulated and those left – (see :mod:`rsmm.grid.subsets`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from rsmm.grid.reported import Cell, cell_lines, comparison, table_cells
from rsmm.grid.run import (
    Runner,
    cli_value,
    command_args,
    read_test_metrics,
    run_grid,
    subprocess_runner,
)
from rsmm.grid.spec import (
    DOWNSTREAM_COMMANDS,
    Grid,
    GridError,
    Protocol,
    Published,
    Row,
    load_grid,
)
from rsmm.grid.subsets import subset_names
from rsmm.grid.table import (
    Result,
    aggregate,
    markdown_table,
    mean_std,
    tabulated_lines,
    write_tables,
)
from rsmm.parsing import OptionParser

__all__ = [
    "DOWNSTREAM_COMMANDS",
    "Cell",
    "Grid",
    "GridError",
    "Protocol",
    "Published",
    "Result",
    "Row",
    "Runner",
    "aggregate",
    "cell_lines",
    "cli_value",
    "command_args",
    "comparison",
    "load_grid",
    "main",
    "markdown_table",
    "mean_std",
    "read_test_metrics",
    "run_grid",
    "subprocess_runner",
    "subset_names",
    "table_cells",
    "tabulated_lines",
    "write_tables",
]


def main(argv: Sequence[str] | None = None, in_process_runner: Runner | None = None) -> int:
    """``rsmm grid grid.yaml [--dry-run] [--in-process] ...``

    Args:
        argv: the command line (default ``sys.argv[1:]``).
        in_process_runner: the runner of ``--in-process`` (the ``rsmm`` command gives
            ``rsmm.cli.grid.in_process_runner``; this package does not import the CLI).
    """
    p = OptionParser(
        prog="rsmm grid",
        description="Run a results grid (pre-training configs x downstream protocols x "
        "seeds) through the rsmm command and write one table (Markdown + CSV, mean ± std "
        "over seeds). Cells already done are skipped.",
    )
    p.add_argument("spec", help="grid spec YAML (e.g. configs/eurosat/grid.yaml)")
    p.add_argument("--out", help="output directory (default: the spec's `out`)")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument("--in-process", action="store_true", help="run in this process, not one per run")
    p.add_argument("--keep-going", action="store_true", help="continue after a failed run")
    a = p.parse_args(argv)
    if a.in_process and in_process_runner is None:
        p.error("--in-process runs through the rsmm command: use `rsmm grid ... --in-process`")
    try:
        grid = load_grid(a.spec, a.out)
        runner = (in_process_runner if a.in_process else None) or subprocess_runner
        run_grid(grid, runner, dry_run=a.dry_run, keep_going=a.keep_going)
    except GridError as err:
        print(f"{p.prog}: error: {err}", file=sys.stderr)
        return 2
    return 0
