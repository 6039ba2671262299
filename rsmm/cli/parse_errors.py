"""A training command's option mistakes in one line naming the option or the config file.

jsonargparse (inside LightningCLI) reports a mistake in a few hundred characters spread
over lines, names a YAML file it could not parse ``<unicode string>``, and does not say
which ``--config`` file holds an unknown key. The config files are therefore read here
first (:func:`check_config_files`: missing, YAML syntax with line and column, not a
mapping), and a parse error is reduced to one line (:func:`explain`): the option, the
file that sets it when it does not come from the command line, and the closest valid
option name for a typo (``unknown option --trainer.max_epoch; did you mean
--trainer.max_epochs?``).
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import inspect
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rsmm.cli.errors import _readable
from rsmm.errors import ConfigError
from rsmm.parsing import describe, read_yaml


def config_files(args: Sequence[str]) -> list[str]:
    """The ``--config`` files of a command line, in order."""
    files = []
    for i, a in enumerate(args):
        if a == "--config" and i + 1 < len(args):
            files.append(args[i + 1])
        elif a.startswith("--config="):
            files.append(a.split("=", 1)[1])
    return files


def check_config_files(args: Sequence[str]) -> None:
    """Read each ``--config`` file of ``args`` as jsonargparse will.

    Raises:
        FileNotFoundError: a file does not exist.
        ConfigError: ``<file>:<line>:<col>: <problem>`` for a YAML syntax error, or a
            file that is not a mapping of options.
    """
    for path in config_files(args):
        if not Path(path).is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        data = read_yaml(path, "config file")
        if data is not None and not isinstance(data, dict):
            raise ConfigError(
                f"{path}: a config file is a mapping of options (model:, data:, trainer: ...), "
                f"got {describe(data)}"
            )


def _lookup(data: Any, key: str) -> bool:
    """Whether the dotted ``key`` is set in a config's data (``init_args`` levels of a
    ``class_path`` are looked through)."""
    for part in key.split("."):
        if not isinstance(data, dict):
            return False
        if part not in data and isinstance(data.get("init_args"), dict):
            data = data["init_args"]
        if part not in data:
            return False
        data = data[part]
    return True


def _on_command_line(key: str, args: Sequence[str]) -> bool:
    for a in args:
        name = a.split("=", 1)[0].replace(".init_args.", ".")
        if name == f"--{key}":
            return True
    return False


def _source(key: str, args: Sequence[str]) -> str | None:
    """The config file that sets ``key`` (the last one, as it wins), unless the command
    line does; ``None`` when neither is known."""
    if _on_command_line(key, args):
        return None
    found = None
    for path in config_files(args):
        try:
            if _lookup(read_yaml(path, "config file"), key):
                found = path
        except ConfigError:
            continue
    return found


def _class_arguments(class_path: str) -> list[str]:
    """The ``__init__`` arguments of a class and of its bases (jsonargparse follows
    ``**kwargs`` up the bases), for suggestions; empty when it cannot be imported."""
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return []
    names: list[str] = []
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    for base in inspect.getmro(cls):
        init = base.__dict__.get("__init__")
        if init is None:
            continue
        try:
            params = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            continue
        names += [p.name for p in params if p.kind in kinds and p.name != "self"]
    return list(dict.fromkeys(names))


def _options(parser: argparse.ArgumentParser) -> list[str]:
    names = [s[2:] for s in parser._option_string_actions if s.startswith("--")]
    return [n for n in names if not n.endswith(".help")] + ["ckpt_path"]  # rsmm's own


def _unknown(key: str, raw: str, parser: argparse.ArgumentParser, args: Sequence[str]) -> str:
    """``unknown option --key; did you mean --other?``, or with the config file that
    holds the key: ``<file>: unknown option key; ...``."""
    group = key.rsplit(".", 1)[0] if "." in key else ""
    class_path = re.search(r"class_path '([\w.]+)'", raw)
    if class_path and group:
        candidates = [f"{group}.{a}" for a in _class_arguments(class_path[1])]
    else:
        candidates = [o for o in _options(parser) if o.rsplit(".", 1)[0] == group] or _options(
            parser
        )
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    source = _source(key, args)
    dashes = "" if source else "--"
    hint = f"; did you mean {dashes}{close[0]}?" if close else ""
    where = f"{source}: " if source else ""
    return f"{where}unknown option {dashes}{key}{hint}"


_UNRECOGNIZED = re.compile(r"^unrecognized arguments: (?P<rest>.*)$")
_GROUP = re.compile(r"^Group '(?P<group>[\w.]+)' does not accept option '(?P<option>[\w.]+)'$")
_NOT_ACCEPTED = re.compile(r"^(?:(?P<group>[\w.]+): )?Option '(?P<option>[\w.]+)' is not accepted$")
_KEYED = re.compile(r"^(?P<key>[\w.]+): (?P<detail>.+)$")


def explain(
    err: argparse.ArgumentError, parser: argparse.ArgumentParser, args: Sequence[str]
) -> str:
    """jsonargparse's parse error as one line naming the option, and the config file
    that sets it when it does not come from the command line."""
    raw = str(err)
    line = " ".join(_readable(raw).split())
    match = _UNRECOGNIZED.match(line)
    if match is not None:
        option = next((t for t in match["rest"].split() if t.startswith("-")), None)
        if option is None:
            return f"unexpected argument {match['rest'].split()[0]!r}"
        return _unknown(option.lstrip("-").split("=", 1)[0], raw, parser, [])
    match = _GROUP.match(line) or _NOT_ACCEPTED.match(line)
    if match is not None:
        key = ".".join(k for k in (match["group"], match["option"]) if k)
        return _unknown(key, raw, parser, args)
    match = _KEYED.match(line)
    if match is not None:
        source = _source(match["key"], args)
        if source is not None:
            return f"{source}: {line}"
    if line.startswith("Problems parsing config"):  # a --config given as a YAML string
        return line.replace('"<unicode string>", ', "")
    return line
