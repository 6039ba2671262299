"""Reading what a user hands rsmm besides rasters, with one-line errors naming it.

* command lines: :class:`OptionParser`, an :class:`argparse.ArgumentParser` that takes
  no abbreviated option (``--overwrit`` is not ``--overwrite``) and reports a mistake in
  one line;
* JSON and YAML metadata files: :func:`read_json` and :func:`read_yaml` name the file,
  and the line and column of a syntax error (``spec.yaml:3:7: mapping values are not
  allowed here``); :func:`field` and :func:`mapping` check one field of what they read
  and name the file and the field (``rsmm-encoders.json: modalities.s2.in_chans:
  expected an integer, got str '13'``);
* weights-only torch files: :func:`load_weights_only` never unpickles arbitrary objects
  and explains a refusal without torch's advice to load the file with
  ``weights_only=False`` (which would run whatever code an untrusted file holds).

Each reader takes the :class:`~rsmm.errors.RsmmError` subclass its caller documents.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

from rsmm.errors import CheckpointError, ConfigError, RsmmError

_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "a mapping",
    type(None): "null",
}


class OptionParser(argparse.ArgumentParser):
    """An argument parser for rsmm's commands: exact option names, one-line errors.

    Abbreviations are refused unless ``allow_abbrev=True`` is given (argparse would take
    ``--overwrit`` for ``--overwrite``, and a typo for the option it is a prefix of), and
    its sub-command parsers inherit both behaviours. A mistake is printed as one line
    ``rsmm: error: <message> (see `<prog> --help`)`` and exits with status 2.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def option_names(self) -> list[str]:
        """Every ``--option`` of this parser and of its sub-command parsers."""
        names = [s for s in self._option_string_actions if s.startswith("--")]
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    names += sub.option_names() if isinstance(sub, OptionParser) else []
        return list(dict.fromkeys(names))

    def error(self, message: str) -> NoReturn:
        """Print ``message`` as one line (an unknown option with the closest valid one)
        and exit with status 2."""
        line = " ".join(message.split())
        unknown = re.match(r"unrecognized arguments: (.*)", line)
        option = (
            next((t for t in unknown[1].split() if t.startswith("-")), None) if unknown else None
        )
        if option is not None:
            name = option.split("=", 1)[0]
            close = difflib.get_close_matches(name, self.option_names(), n=1, cutoff=0.6)
            line = f"unknown option {name}" + (f"; did you mean {close[0]}?" if close else "")
        print(f"rsmm: error: {line} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


# -- JSON and YAML -------------------------------------------------------------------------


def yaml_problem(err: Exception, source: str | Path) -> str:
    """A YAML syntax error as ``<source>:<line>:<col>: <problem>`` (one line).

    PyYAML names the stream ``<unicode string>`` when it parses text; the position of
    the problem (1-based, as editors count) and what was being parsed are kept.
    """
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err)
    where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(source)
    context, context_mark = getattr(err, "context", None), getattr(err, "context_mark", None)
    if context:
        problem += f" ({context}"
        problem += f" started at line {context_mark.line + 1})" if context_mark else ")"
    return " ".join(f"{where}: {problem}".split())


def read_text(path: str | Path, what: str, error: type[RsmmError] = ConfigError) -> str:
    """The text of a metadata file, or ``error`` naming it when it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} not found: {path}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise error(f"{path}: not a text file ({what}): {err.reason} at byte {err.start}") from None
    except OSError as err:
        raise error(f"cannot read {what} {path}: {err.strerror or err}") from None


def read_json(path: str | Path, what: str, error: type[RsmmError] = ConfigError) -> Any:
    """The content of a JSON file; ``error`` names the file (and the line and column of
    a syntax error) for a missing, unreadable or invalid one."""
    try:
        return json.loads(read_text(path, what, error))
    except json.JSONDecodeError as err:
        raise error(f"{path}:{err.lineno}:{err.colno}: invalid JSON ({what}): {err.msg}") from None


def read_yaml(path: str | Path, what: str, error: type[RsmmError] = ConfigError) -> Any:
    """The content of a YAML file (``None`` when empty); ``error`` names the file (and
    the line and column of a syntax error) for a missing, unreadable or invalid one."""
    import yaml

    text = read_text(path, what, error)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise error(yaml_problem(err, path)) from None


def describe(value: Any) -> str:
    """``str '13'``: a value's type and a short repr, for 'expected X, got Y' messages."""
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _expected(types: tuple[type, ...]) -> str:
    return " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)


def field(
    data: Mapping[str, Any],
    key: str,
    types: type | tuple[type, ...],
    source: str | Path,
    where: str = "",
    error: type[RsmmError] = ConfigError,
    required: bool = True,
) -> Any:
    """``data[key]``, checked to be of ``types`` (``bool`` is not an ``int`` here).

    Args:
        data: the mapping read from ``source``.
        key: the field.
        types: the accepted types; ``float`` accepts an ``int`` too.
        source: the file, named in the error.
        where: the dotted path of ``data`` in the file (``modalities.s2``).
        error: the error to raise.
        required: a missing field is an error (else ``None`` is returned).

    Raises:
        RsmmError: ``error`` naming ``source`` and the field.
    """
    types = types if isinstance(types, tuple) else (types,)
    name = f"{where}.{key}" if where else key
    if key not in data:
        if required:
            raise error(f"{source}: {name}: missing (expected {_expected(types)})")
        return None
    value = data[key]
    accepted = types + ((int,) if float in types else ())
    if (isinstance(value, bool) and bool not in types) or not isinstance(value, accepted):
        raise error(f"{source}: {name}: expected {_expected(types)}, got {describe(value)}")
    return value


def mapping(
    value: Any, source: str | Path, where: str = "", error: type[RsmmError] = ConfigError
) -> dict[str, Any]:
    """``value`` as a ``dict``, or ``error`` naming ``source`` and the field ``where``
    (the whole file when empty) that should have been a mapping."""
    if not isinstance(value, Mapping):
        name = f"{where}: " if where else ""
        raise error(f"{source}: {name}expected a mapping, got {describe(value)}")
    return dict(value)


# -- weights-only torch files --------------------------------------------------------------

_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")
_OPERAND = re.compile(r"Unsupported operand (\d+)")


def torch_load_problem(err: BaseException) -> tuple[bool, str]:
    """Why ``torch.load(..., weights_only=True)`` failed, in a few words: ``(refused,
    reason)``, ``refused`` when the file names a Python object to build (which rsmm
    never unpickles). torch's own text, with its advice to load the file with
    ``weights_only=False``, is not repeated."""
    text = str(err)
    found = _GLOBAL.search(text)
    if found:
        return True, f"it refers to the Python object {found[1]}"
    operand = _OPERAND.search(text)
    if operand:
        return False, f"unsupported pickle operation {operand[1]}"
    if isinstance(err, EOFError):
        return False, "the file ends early"
    if "legacy .tar format" in text:
        return False, "neither a zip archive nor a pickle"
    if isinstance(err, KeyError | IndexError | UnicodeDecodeError) or "weights_only" in text:
        return False, "unknown content"
    first = re.split(r"(?<=\w)\. ", " ".join(text.split()), maxsplit=1)[0]
    return False, first.rstrip(".") or type(err).__name__


def folder_checkpoint_message(path: Path, what: str = "checkpoint") -> str:
    """Why a folder is not a checkpoint file, and how to get one: a distributed checkpoint
    (one shard per rank plus ``meta.pt``, what ``ModelParallelStrategy`` writes with
    ``save_distributed_checkpoint=True``) is merged by Lightning's consolidation tool."""
    if not (path / "meta.pt").is_file():
        return f"{what} {path} is a folder, not a checkpoint file"
    return (
        f"{what} {path} is a distributed checkpoint (one shard per rank, from "
        "ModelParallelStrategy with save_distributed_checkpoint=True), not a checkpoint "
        "file: merge the shards into one file with `python -m "
        f"lightning.fabric.utilities.consolidate_checkpoint {path}` (writes "
        f"{path}.consolidated), or train with --trainer.strategy fsdp2, which saves single files"
    )


def load_weights_only(
    path: str | Path, what: str = "checkpoint", error: type[RsmmError] = CheckpointError
) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with errors naming the file.

    Only tensors and plain data are read; a file that needs anything else (a pickled
    object, possibly code) is refused, and so is a truncated, empty or foreign one.

    Raises:
        RsmmError: ``error`` (``cannot read <what> <path>: ...``): the file is missing,
            is not a weights-only torch file or is corrupt.
    """
    import torch

    path = Path(path)
    if path.is_dir():
        raise error(folder_checkpoint_message(path, what))
    if not path.is_file():
        raise error(f"{what} not found: {path}")
    try:
        with warnings.catch_warnings():  # "Detected pickle protocol 4 ...": not the user's
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        refused, reason = torch_load_problem(err)
        if refused:
            raise error(
                f"cannot read {what} {path}: {reason}; rsmm loads only weights-only files "
                "(tensors and plain data) and never unpickles other objects: this file is "
                "not one, or is corrupt"
            ) from err
        raise error(
            f"cannot read {what} {path}: corrupt, truncated or not a torch file ({reason})"
        ) from err
