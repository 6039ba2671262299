"""The grid spec: pre-training rows x downstream protocols x seeds, parsed and validated."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsmm.errors import GridError
from rsmm.parsing import read_yaml

DOWNSTREAM_COMMANDS = ("finetune", "linear-probe")
_SPEC_KEYS = {"name", "out", "seeds", "metrics", "scale", "data_root", "pretrain_per_seed"}
_SPEC_KEYS |= {"overrides", "blocks", "pretrain", "downstream", "published"}
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
    """A published result shown beside rsmm's rows: ``{protocol: {metric: value}}``,
    values as the table shows them (already scaled), and where they come from."""

    name: str
    values: dict[str, dict[str, float]]
    source: str = ""


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

    @property
    def rows(self) -> list[str]:
        return [r.name for rows, _ in self.blocks for r in rows]

    @property
    def protocols(self) -> list[str]:
        return list(dict.fromkeys(p.name for _, protos in self.blocks for p in protos))


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


def _published(entry: Any, where: str) -> Published:
    _check_keys(entry, {"name", "values", "source"}, where)
    values = entry.get("values")
    if "name" not in entry or not isinstance(values, Mapping):
        raise GridError(f"{where}: needs `name` and `values` ({{protocol: {{metric: value}}}})")
    try:
        parsed = {str(p): {str(m): float(v) for m, v in mv.items()} for p, mv in values.items()}
    except (AttributeError, TypeError, ValueError) as err:
        raise GridError(f"{where}: values must be {{protocol: {{metric: number}}}}: {err}") from err
    return Published(str(entry["name"]), parsed, str(entry.get("source", "")))


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
    row_names: set[str] = set()
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
            if key in row_keys or r["name"] in row_names:
                raise GridError(f"{where}: duplicate row name {r['name']!r} or key {key!r}")
            row_keys.add(key)
            row_names.add(r["name"])
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
        blocks.append((tuple(rows), tuple(protos)))
    seeds = spec.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise GridError(f"{path}: seeds must be a non-empty list of integers, got {seeds!r}")
    name = str(spec.get("name") or path.stem)
    published = tuple(
        _published(p, f"{path}: published[{i}]") for i, p in enumerate(spec.get("published") or [])
    )
    return Grid(
        name=name,
        out=Path(out or spec.get("out") or Path("results") / slug(name)).resolve(),
        seeds=tuple(seeds),
        blocks=tuple(blocks),
        metrics=tuple(spec.get("metrics") or ("OA", "kappa")),
        scale=float(spec.get("scale", 100.0)),
        data_root=None if spec.get("data_root") is None else str(spec["data_root"]),
        pretrain_per_seed=bool(spec.get("pretrain_per_seed", False)),
        overrides=_mapping(spec.get("overrides"), f"{path}: overrides"),
        published=published,
    )
