"""Shared test helpers (importable from test modules: tests/ is on the path)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from lightning import Trainer


def cpu_trainer(root: str | Path, **kwargs: Any) -> Trainer:
    """A quiet single-process CPU Trainer: no logger, checkpoints, progress bar, model
    summary or sanity validation; ``kwargs`` add to or override these."""
    options: dict[str, Any] = {
        "accelerator": "cpu",
        "default_root_dir": str(root),
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
    }
    options.update(kwargs)
    return Trainer(**options)


def fresh_python(code: str, cwd: str | Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a new interpreter that imports this checkout's rsmm (without
    ``RSMM_DEBUG``); its exit status, stdout and stderr are returned, not checked."""
    repo = Path(__file__).resolve().parents[1]
    path = os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")])
    env = {k: v for k, v in os.environ.items() if k != "RSMM_DEBUG"} | {"PYTHONPATH": path}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
