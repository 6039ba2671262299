"""What an export records from the run folder of its checkpoint: the last logged metrics
and the resolved ``config.yaml``."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import yaml

from rsmm.report import last_logged


def run_directory(checkpoint: str | Path) -> Path | None:
    """The run folder of a checkpoint in Lightning's ``<run>/version_N/checkpoints/x.ckpt``
    layout when it holds ``metrics.csv`` or ``config.yaml``; ``None`` for a checkpoint
    anywhere else (files that merely sit beside it are not taken for its run's)."""
    ckpt = Path(checkpoint).resolve()
    if ckpt.parent.name != "checkpoints" or not ckpt.parent.parent.name.startswith("version_"):
        return None
    run = ckpt.parent.parent
    if (run / "metrics.csv").is_file() or (run / "config.yaml").is_file():
        return run
    return None


def last_logged_metrics(path: str | Path) -> dict[str, float]:
    """Last logged finite value of every ``test/*`` then ``val/*`` column of a CSVLogger
    file."""
    last = {k: v for k, v in last_logged(path, ("val/", "test/")).items() if math.isfinite(v)}
    return {k: last[k] for k in sorted(last, key=lambda k: (not k.startswith("test/"), k))}


def read_run_config(run: Path | None) -> Any:
    """The run's ``config.yaml`` as JSON-able data; ``None`` when there is none, or with a
    warning when it is not valid YAML (the weights are still worth exporting)."""
    path = None if run is None else run / "config.yaml"
    if path is None or not path.is_file():
        return None
    try:
        return jsonable(yaml.safe_load(path.read_text()))
    except yaml.YAMLError as err:
        warnings.warn(
            f"run configuration {path} not recorded: it is not valid YAML ({err})", stacklevel=3
        )
        return None


def jsonable(obj: Any) -> Any:
    """``obj`` with every value JSON cannot write replaced by its ``repr``."""
    try:
        json.dumps(obj)
        return obj
    except TypeError:
        if isinstance(obj, dict):
            return {str(k): jsonable(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [jsonable(v) for v in obj]
        return repr(obj)
