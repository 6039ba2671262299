"""The grid spec: pre-training rows x downstream protocols x seeds, parsed and validated."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsmm.errors import GridError
from rsmm.grid.subsets import modality_order, split_metric, tested_subsets, trained_modalities
from rsmm.grid.subsets import within as subset_within
from rsmm.parsing import read_yaml

DOWNSTREAM_COMMANDS = ("finetune", "linear-probe")
_SPEC_KEYS = {"name", "out", "seeds", "metrics", "scale", "data_root", "pretrain_per_seed"}
_SPEC_KEYS |= {"overrides", "blocks", "pretrain", "downstream", "published"}
_SPEC_KEYS |= {"table", "runs", "layout", "labels", "tested_with"}
#: How a thesis grid's cells are laid out as the printed table (see :class:`Grid`).
LAYOUTS = ("rows", "metrics_as_rows", "protocols_as_rows")
_SPREAD = re.compile(r"^\s*([-+]?[0-9.]+)\s*(?:±|\+-|\+/-)\s*([0-9.]+)\s*$")
_ROW_KEYS = {"name", "config", "overrides", "downstream_overrides", "key"}
_PROTOCOL_KEYS = {"name", "command", "config", "overrides", "key"}


@dataclass(frozen=True)
class Row:
    """A pre-training (a row of the table); ``config=None`` = random initialisation."""

    name: str
    key: str
    config: Path | None
    overrides: dict[str, Any] = field(default_factory=dict)
    downstream_overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Protocol:
    """A downstream protocol (a column of the table)."""

    name: str
    key: str
    command: str
    config: Path
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Published:
    """A published result: ``{protocol: {metric: value}}``, values as the table shows
    them (already scaled), and where they come from.

    Without ``row`` it is a row of its own beside rsmm's rows (a published anchor that
    rsmm does not run). With ``row`` it holds the numbers reported for the grid row of
    that name, which the grid prints beside the reproduced ones with the difference.
    ``spreads`` holds the ``±`` of a value written ``"82.55±0.68"`` (the spread over
    runs as printed; a plain number has none).
    """

    name: str
    values: dict[str, dict[str, float]]
    source: str = ""
    row: str | None = None
    spreads: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Grid:
    """A parsed grid spec (see the module docstring)."""

    name: str
    out: Path
    seeds: tuple[int, ...]
    blocks: tuple[tuple[tuple[Row, ...], tuple[Protocol, ...]], ...]
    metrics: tuple[str, ...] = ("OA", "kappa")
    scale: float = 100.0
    data_root: str | None = None
    pretrain_per_seed: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)
    published: tuple[Published, ...] = ()
    table: str | None = None
    runs: int | None = None
    layout: str = "rows"
    labels: dict[str, str] = field(default_factory=dict)
    tested_with: tuple[str, ...] = ()
    trained_with: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)

    @property
    def rows(self) -> list[str]:
        return list(dict.fromkeys(r.name for rows, _ in self.blocks for r in rows))

    @property
    def protocols(self) -> list[str]:
        return list(dict.fromkeys(p.name for _, protos in self.blocks for p in protos))

    @property
    def columns(self) -> tuple[str, ...]:
        """The metric names tabulated: ``metrics``, or with ``tested_with`` each metric
        at each tested subset (``OA@s1``, ``kappa@s1``, ``OA@s2``, ...)."""
        if not self.tested_with:
            return self.metrics
        return tuple(f"{m}@{s}" for s in self.tested_with for m in self.metrics)

    def cell_columns(self, row: str, protocol: str) -> tuple[str, ...]:
        """The tabulated metrics a (row, protocol) cell has: with ``tested_with``, those
        of the tested subsets of the modalities it is trained with (the others are –)."""
        if not self.tested_with:
            return self.metrics
        mods = self.trained_with[row, protocol]
        return tuple(c for c in self.columns if subset_within(split_metric(c)[1] or "", mods))


def slug(text: str) -> str:
    """A directory name for a row or protocol name (``"FT 1 %"`` -> ``"ft_1"``)."""
    s = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    if not s:
        raise GridError(f"cannot make a directory name from {text!r}: give a `key`")
    return s


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise GridError(f"{where}: expected a mapping of dotted options, got {value!r}")
    return dict(value)


def _check_keys(entry: Any, allowed: set[str], where: str) -> None:
    if not isinstance(entry, Mapping):
        raise GridError(f"{where}: expected a mapping, got {entry!r}")
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise GridError(f"{where}: unknown keys {unknown} (allowed: {sorted(allowed)})")


def _config(base: Path, value: Any, where: str) -> Path:
    path = (base / str(value)).resolve()
    if not path.is_file():
        raise GridError(f"{where}: config file not found: {path}")
    return path


def reported_value(value: Any) -> tuple[float, float | None]:
    """A reported number as printed: ``72.6`` or ``"72.62±1.31"`` -> (value, spread).

    Raises:
        ValueError: for anything else.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    if isinstance(value, str):
        m = _SPREAD.match(value)
        if m:
            return float(m.group(1)), float(m.group(2))
    return float(value), None


def _published(entry: Any, where: str) -> Published:
    _check_keys(entry, {"name", "values", "source", "row"}, where)
    values = entry.get("values")
    if "name" not in entry or not isinstance(values, Mapping):
        raise GridError(f"{where}: needs `name` and `values` ({{protocol: {{metric: value}}}})")
    parsed: dict[str, dict[str, float]] = {}
    spreads: dict[str, dict[str, float]] = {}
    try:
        for p, mv in values.items():
            for m, v in mv.items():
                value, spread = reported_value(v)
                parsed.setdefault(str(p), {})[str(m)] = value
                if spread is not None:
                    spreads.setdefault(str(p), {})[str(m)] = spread
    except (AttributeError, TypeError, ValueError) as err:
        raise GridError(
            f'{where}: values must be {{protocol: {{metric: number or "mean±spread"}}}}: {err}'
        ) from err
    row = None if entry.get("row") is None else str(entry["row"])
    return Published(str(entry["name"]), parsed, str(entry.get("source", "")), row, spreads)


def _check_reported(grid: Grid, where: str) -> None:
    """Reported values of a grid row must name cells the grid runs."""
    cells = {(r.name, p.name) for rows, protos in grid.blocks for r in rows for p in protos}
    for i, pub in enumerate(grid.published):
        if pub.row is None:
            continue
        if pub.row not in grid.rows:
            raise GridError(f"{where}: published[{i}]: row {pub.row!r} is not a row of the grid")
        for p, mv in pub.values.items():
            if (pub.row, p) not in cells:
                raise GridError(
                    f"{where}: published[{i}]: the grid runs no cell ({pub.row!r}, {p!r})"
                )
            unknown = sorted(set(mv) - set(grid.cell_columns(pub.row, p)))
            if unknown:
                raise GridError(f"{where}: published[{i}]: metrics {unknown} are not reported")


def load_grid(path: str | Path, out: str | Path | None = None) -> Grid:
    """Parse and validate a grid spec; ``out`` overrides the spec's output directory."""
    path = Path(path)
    if not path.is_file():
        raise GridError(f"grid spec not found: {path}")
    spec = read_yaml(path, "grid spec", GridError) or {}
    _check_keys(spec, _SPEC_KEYS, str(path))
    base = path.resolve().parent
    blocks_spec = spec.get("blocks")
    if blocks_spec is None:
        blocks_spec = [{"pretrain": spec.get("pretrain"), "downstream": spec.get("downstream")}]
    elif "pretrain" in spec or "downstream" in spec:
        raise GridError(f"{path}: give either `blocks` or top-level `pretrain`/`downstream`")
    blocks = []
    row_keys: set[str] = set()
    row_cells: set[tuple[str, str]] = set()  # (row name, protocol name): one block each
    for b, block in enumerate(blocks_spec):
        _check_keys(block, {"pretrain", "downstream"}, f"{path}: blocks[{b}]")
        rows, protos = [], []
        for i, r in enumerate(block.get("pretrain") or []):
            where = f"{path}: blocks[{b}].pretrain[{i}]"
            _check_keys(r, _ROW_KEYS, where)
            if "name" not in r or "config" not in r:
                raise GridError(f"{where}: needs `name` and `config` (null = random init)")
            config = None if r["config"] is None else _config(base, r["config"], where)
            key = str(r.get("key") or (config.stem if config else slug(r["name"])))
            if key in row_keys or r["name"] in {q.name for q in rows}:
                raise GridError(f"{where}: duplicate row name {r['name']!r} or key {key!r}")
            row_keys.add(key)
            rows.append(
                Row(
                    str(r["name"]),
                    key,
                    config,
                    _mapping(r.get("overrides"), f"{where}.overrides"),
                    _mapping(r.get("downstream_overrides"), f"{where}.downstream_overrides"),
                )
            )
        for i, p in enumerate(block.get("downstream") or []):
            where = f"{path}: blocks[{b}].downstream[{i}]"
            _check_keys(p, _PROTOCOL_KEYS, where)
            if not {"name", "command", "config"} <= set(p):
                raise GridError(f"{where}: needs `name`, `command` and `config`")
            if p["command"] not in DOWNSTREAM_COMMANDS:
                raise GridError(
                    f"{where}: command {p['command']!r} is not one of {DOWNSTREAM_COMMANDS}"
                )
            key = str(p.get("key") or slug(p["name"]))
            if key in {q.key for q in protos}:
                raise GridError(f"{where}: duplicate protocol key {key!r}")
            protos.append(
                Protocol(
                    str(p["name"]),
                    key,
                    p["command"],
                    _config(base, p["config"], where),
                    _mapping(p.get("overrides"), f"{where}.overrides"),
                )
            )
        if not rows or not protos:
            raise GridError(f"{path}: blocks[{b}] needs at least one pretrain and one downstream")
        for r in rows:  # a row name may recur in another block, with other protocols
            for q in protos:
                if (r.name, q.name) in row_cells:
                    raise GridError(
                        f"{path}: blocks[{b}]: duplicate row name {r.name!r} (cell "
                        f"{q.name!r} is in an earlier block)"
                    )
                row_cells.add((r.name, q.name))
        blocks.append((tuple(rows), tuple(protos)))
    runs = spec.get("runs")
    if runs is not None and (isinstance(runs, bool) or not isinstance(runs, int) or runs < 1):
        raise GridError(f"{path}: runs must be a positive integer, got {runs!r}")
    seeds = spec.get("seeds", list(range(runs)) if runs else [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise GridError(f"{path}: seeds must be a non-empty list of integers, got {seeds!r}")
    name = str(spec.get("name") or path.stem)
    published = tuple(
        _published(p, f"{path}: published[{i}]") for i, p in enumerate(spec.get("published") or [])
    )
    layout = str(spec.get("layout", "rows"))
    if layout not in LAYOUTS:
        raise GridError(f"{path}: layout must be one of {LAYOUTS}, got {layout!r}")
    labels = _mapping(spec.get("labels"), f"{path}: labels")
    overrides = _mapping(spec.get("overrides"), f"{path}: overrides")
    trained: dict[tuple[str, str], tuple[str, ...]] = {}
    tested: tuple[str, ...] = ()
    if spec.get("tested_with") is not None:
        for b, (rows, protos) in enumerate(blocks):
            for r in rows:
                for q in protos:
                    layers = (overrides, r.downstream_overrides, q.overrides)
                    where = f"{path}: blocks[{b}] row {r.name!r}, downstream {q.name!r}"
                    trained[r.name, q.name] = trained_modalities(q.config, layers, where)
        order = modality_order(trained.values())
        tested = tested_subsets(spec["tested_with"], order, str(path))
        trained = {k: tuple(sorted(v, key=order.index)) for k, v in trained.items()}
    grid = Grid(
        name=name,
        out=Path(out or spec.get("out") or Path("results") / slug(name)).resolve(),
        seeds=tuple(seeds),
        blocks=tuple(blocks),
        metrics=tuple(spec.get("metrics") or ("OA", "kappa")),
        scale=float(spec.get("scale", 100.0)),
        data_root=None if spec.get("data_root") is None else str(spec["data_root"]),
        pretrain_per_seed=bool(spec.get("pretrain_per_seed", False)),
        overrides=overrides,
        published=published,
        table=None if spec.get("table") is None else str(spec["table"]),
        runs=runs,
        layout=layout,
        labels={str(k): "" if v is None else str(v) for k, v in labels.items()},
        tested_with=tested,
        trained_with=trained,
    )
    _check_reported(grid, str(path))
    return grid
