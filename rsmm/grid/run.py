"""Running the cells of a grid through the ``rsmm`` command, resumably."""

from __future__ import annotations

import functools
import hashlib
import json
import shlex
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from rsmm.atomic import write_text
from rsmm.grid.reported import (
    cell_lines,
    comparison,
    format_reported,
    has_reported,
    write_comparison,
)
from rsmm.grid.spec import Grid, GridError, Protocol, Row
from rsmm.grid.subsets import canonical_metrics, modality_order
from rsmm.grid.table import Result, tabulated_lines, write_tables


def cli_value(value: Any) -> str:
    """A YAML value as a command-line string jsonargparse parses back to it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return str(value)


def _data_root(grid: Grid, config: Path) -> dict[str, str]:
    """``data.root`` made absolute, since every run has its own working directory."""
    root = grid.data_root
    if root is None:
        data = (yaml.safe_load(config.read_text()) or {}).get("data") or {}
        root = (data.get("init_args") or {}).get("root") if isinstance(data, dict) else None
        if not root or Path(root).is_absolute():
            return {}
    return {"data.root": str(Path(root).resolve())}


def command_args(config: Path, options: Mapping[str, Any]) -> list[str]:
    """``--config <file>`` followed by ``--<dotted.key> <value>`` for each option."""
    args = ["--config", str(config)]
    for k, v in options.items():
        args += [f"--{k}", cli_value(v)]
    return args


Runner = Callable[[str, list[str], Path], None]


def subprocess_runner(command: str, args: list[str], workdir: Path) -> None:
    """Run ``rsmm <command> <args>`` in a child process; its output goes to ``<command>.log``."""
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"{command}.log"
    with log.open("w") as fh:
        rc = subprocess.call(
            [sys.executable, "-m", "rsmm.cli", command, *args],
            cwd=workdir,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    if rc != 0:
        raise GridError(f"rsmm {command} failed in {workdir} (exit {rc}); see {log}")


def read_test_metrics(metrics_csv: Path) -> dict[str, float]:
    """The ``test/<metric>`` values of a CSVLogger ``metrics.csv`` (last logged wins)."""
    from rsmm.report import last_logged

    if not metrics_csv.is_file():
        return {}
    return {k.removeprefix("test/"): v for k, v in last_logged(metrics_csv, ("test/",)).items()}


def _write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2))


def inputs_of(config: Path, checkpoint: Path | None = None) -> dict[str, Any]:
    """What a cell's result depends on beyond its command line: the SHA-256 of the
    config file and, downstream, of the pre-training checkpoint it starts from (so an
    edited config or a re-run pre-training invalidates the cells built on them)."""
    out: dict[str, Any] = {"config_sha256": _sha256(config)}
    if checkpoint is not None:
        out["checkpoint_sha256"] = _sha256(checkpoint) if checkpoint.is_file() else None
    return out


def _sha256(path: Path) -> str:
    """SHA-256 of a file, cached per (path, size, mtime) within the process (a grid
    hashes the same pre-training checkpoint for each of its downstream cells)."""
    st = path.stat()
    return _sha256_cached(str(path.resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _recorded(
    path: Path, command: str, args: list[str], inputs: Mapping[str, Any]
) -> dict[str, Any]:
    """The record of a done cell, checked to come from the same command, options,
    config contents and pre-training checkpoint."""
    data = json.loads(path.read_text())
    if data.get("command") != command or data.get("args") != args:
        raise GridError(
            f"{path} records another run (rsmm {data.get('command')} "
            f"{shlex.join(data.get('args') or [])}) than this grid asks for (rsmm {command} "
            f"{shlex.join(args)}): remove that cell or choose another output directory"
        )
    if "inputs" not in data:  # recorded by rsmm before cells were fingerprinted
        warnings.warn(
            f"{path} predates input fingerprints: reused without checking that its config "
            "and pre-training checkpoint are unchanged",
            stacklevel=2,
        )
        return data
    changed = [k for k, v in inputs.items() if data["inputs"].get(k) != v]
    if changed:
        what = {
            "config_sha256": "the config file",
            "checkpoint_sha256": "the pre-training checkpoint",
        }
        raise GridError(
            f"{path} was computed from another version of "
            f"{' and '.join(what[k] for k in changed)}: remove that cell (or the whole row) "
            "to recompute it, or choose another output directory"
        )
    return data


def _fresh(workdir: Path) -> None:
    """Remove the ``runs/`` left in a cell by an interrupted attempt."""
    if (workdir / "runs").exists():
        shutil.rmtree(workdir / "runs")


def _checkpoint(workdir: Path, command: str) -> Path:
    return workdir / "runs" / command / "version_0" / "checkpoints" / "last.ckpt"


class _GridRun:
    """Runs the cells of a grid in order, skipping those done, collecting results."""

    def __init__(
        self,
        grid: Grid,
        runner: Runner,
        dry_run: bool,
        keep_going: bool,
        echo: Callable[[str], None],
    ) -> None:
        self.grid, self.runner, self.dry_run = grid, runner, dry_run
        self.keep_going, self.echo = keep_going, echo
        self.failures: list[str] = []
        self.results: list[Result] = []

    def execute(self, command: str, args: list[str], workdir: Path) -> bool:
        """Echo and run one command; ``False`` when it failed and ``keep_going`` is on."""
        self.echo(f"cd {shlex.quote(str(workdir))} && rsmm {command} {shlex.join(args)}")
        if self.dry_run:
            return True
        try:
            self.runner(command, args, workdir)
        except GridError as err:
            self.fail(err)
            return False
        return True

    def fail(self, err: GridError) -> None:
        """Raise ``err``, or with ``keep_going`` record it and carry on."""
        if not self.keep_going:
            raise err
        self.failures.append(str(err))
        self.echo(f"# FAILED: {err}")

    def options(self, config: Path, *layers: Mapping[str, Any]) -> dict[str, Any]:
        out = {**self.grid.overrides, **_data_root(self.grid, config)}
        for layer in layers:
            out |= layer
        weights = out.get("model.weights")
        if isinstance(weights, str) and not Path(weights).is_absolute() and Path(weights).exists():
            # a local weights file (e.g. ImageNet timm weights) named relative to where the
            # grid is started: every run has its own working directory
            out["model.weights"] = str(Path(weights).resolve())
        return out

    def pretrain(self, row: Row, seed: int | None) -> Path | None:
        """The checkpoint of a row's pre-training (run unless done); ``None`` if failed."""
        assert row.config is not None
        wd = self.grid.out / row.key / "pretrain"
        seeding: dict[str, Any] = {}
        if seed is not None:
            wd, seeding = wd / f"seed_{seed}", {"seed_everything": seed, "data.seed": seed}
        ckpt, marker = _checkpoint(wd, "pretrain"), wd / "done.json"
        args = command_args(row.config, self.options(row.config, row.overrides, seeding))
        if marker.is_file():
            self.echo(f"# done, skipped: rsmm pretrain in {wd}")
            return Path(_recorded(marker, "pretrain", args, inputs_of(row.config))["checkpoint"])
        if not self.dry_run:
            _fresh(wd)
        if not self.execute("pretrain", args, wd):
            return None
        if not self.dry_run:
            if not ckpt.is_file():
                self.fail(GridError(f"rsmm pretrain in {wd} wrote no {ckpt}"))
                return None
            record = {"command": "pretrain", "args": args, "checkpoint": str(ckpt)}
            _write_json(marker, {**record, "inputs": inputs_of(row.config)})
        return ckpt

    def downstream(self, row: Row, proto: Protocol, seed: int, ckpt: Path | None) -> None:
        """One downstream cell: fit (and test), then record its test metrics."""
        wd = self.grid.out / row.key / proto.key / f"seed_{seed}"
        result_file = wd / "result.json"
        seeding = {"seed_everything": seed, "data.seed": seed}
        pretrained = {"model.pretrained": None if ckpt is None else str(ckpt)}
        # tested with every subset of its modalities: test/<metric>@<subset>
        subsets = {"model.subset_metrics": True} if self.grid.tested_with else {}
        options = self.options(
            proto.config, row.downstream_overrides, proto.overrides, subsets, seeding, pretrained
        )
        args = command_args(proto.config, options)
        if not result_file.is_file():
            if not self.dry_run:
                _fresh(wd)
            if not self.execute(proto.command, args, wd) or self.dry_run:
                return
            metrics = read_test_metrics(wd / "runs" / proto.command / "version_0" / "metrics.csv")
            if not metrics:  # the datamodule has no test split tested after fitting
                test_args = [*args, "--ckpt_path", str(_checkpoint(wd, proto.command))]
                if proto.command == "linear-probe":  # the same head as the probe's
                    test_args += ["--model.freeze_backbone", "true"]
                if not self.execute("test", test_args, wd):
                    return
                metrics = read_test_metrics(wd / "runs" / "test" / "version_0" / "metrics.csv")
            metrics = self.canonical(metrics)
            missing = [m for m in self.grid.cell_columns(row.name, proto.name) if m not in metrics]
            if missing:
                self.fail(GridError(f"the run in {wd} logged no test metrics {missing}"))
                return
            record = {"command": proto.command, "args": args, "metrics": metrics}
            _write_json(result_file, {**record, "inputs": inputs_of(proto.config, ckpt)})
        else:
            self.echo(f"# done, skipped: rsmm {proto.command} in {wd}")
        data = _recorded(result_file, proto.command, args, inputs_of(proto.config, ckpt))
        self.results.append(Result(row.name, proto.name, seed, self.canonical(data["metrics"])))

    def canonical(self, metrics: dict[str, float]) -> dict[str, float]:
        """``<metric>@<subset>`` names in the grid's modality order (``OA@s1+s2``)."""
        if not self.grid.tested_with:
            return metrics
        return canonical_metrics(metrics, modality_order(self.grid.trained_with.values()))

    def echo_comparison(self) -> None:
        """Print reported beside reproduced (mean ± std over seeds) and the difference."""
        for c, got, diff in comparison(self.grid, self.results):
            if got is None:
                reproduced = "not run"
            else:
                mean, std, n = got
                spread = "" if n < 2 else f" ± {std:.2f}"
                reproduced = f"{mean:.2f}{spread} (n={n})"
            delta = "" if diff is None else f", difference {diff:+.2f}"
            self.echo(
                f"{c.table_row} | {c.table_column}: reported "
                f"{format_reported(c.reported, c.spread)}, reproduced {reproduced}{delta}"
            )

    def run(self) -> list[Result]:
        grid = self.grid
        for rows, protos in grid.blocks:
            for row in rows:
                pre_seeds = list(grid.seeds) if grid.pretrain_per_seed else [None]
                ckpts: dict[int | None, Path | None] = {}
                failed: set[int | None] = set()
                for s in pre_seeds:
                    ckpts[s] = None if row.config is None else self.pretrain(row, s)
                    if row.config is not None and ckpts[s] is None:
                        failed.add(s)
                for proto in protos:
                    for seed in grid.seeds:
                        s = seed if grid.pretrain_per_seed else None
                        if s not in failed:
                            self.downstream(row, proto, seed, ckpts[s])
        if self.dry_run:
            for line in tabulated_lines(grid) + (cell_lines(grid) if has_reported(grid) else []):
                self.echo(line)
        if not self.dry_run:
            md, table = write_tables(grid, self.results)
            if has_reported(grid):
                self.echo_comparison()
                table = write_comparison(grid, self.results)[1]
            self.echo(f"results: {md} and {table}")
        if self.failures:
            raise GridError(f"{len(self.failures)} run(s) failed:\n" + "\n".join(self.failures))
        return self.results


def run_grid(
    grid: Grid,
    runner: Runner | None = None,
    dry_run: bool = False,
    keep_going: bool = False,
    echo: Callable[[str], None] = print,
) -> list[Result]:
    """Run (or with ``dry_run`` only print) every cell not yet done; write the tables.

    Args:
        grid: the parsed spec (:func:`load_grid`).
        runner: how a command runs (default :func:`subprocess_runner`; the ``rsmm``
            command passes ``rsmm.cli.grid.in_process_runner`` for ``--in-process``).
        dry_run: print the commands of the cells not done, run nothing, write nothing.
        keep_going: after a failed run carry on with the cells that do not depend on it
            (the error is raised at the end).
        echo: where the commands are printed.

    Returns:
        The results of every done cell (those found on disk included).
    """
    return _GridRun(grid, runner or subprocess_runner, dry_run, keep_going, echo).run()
