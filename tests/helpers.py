"""Shared test helpers (importable from test modules: tests/ is on the path)."""

from __future__ import annotations

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
