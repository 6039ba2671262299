"""Checkpoints written atomically: a Lightning ``CheckpointIO`` that never leaves a
truncated ``.ckpt``.

Lightning's :class:`~lightning.fabric.plugins.io.torch_io.TorchCheckpointIO` serialises a
checkpoint to memory and then writes it over the target in place: a full disk, a
``kill -9`` or a power cut mid-write leaves a truncated ``last.ckpt`` that no resume
can load. :class:`AtomicCheckpointIO` writes through :func:`rsmm.atomic.atomic_open`
instead (a temporary file beside the target, ``fsync``, rename), so ``last.ckpt`` is
always the previous complete checkpoint or the new complete one, and a full disk is a
:class:`~rsmm.errors.DiskFullError` naming the checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from rsmm.atomic import atomic_open


def _local(path: Any) -> bool:
    text = str(path)
    return "://" not in text or text.startswith("file://")


class AtomicCheckpointIO(TorchCheckpointIO):
    """:class:`TorchCheckpointIO` whose local checkpoints are written atomically (remote
    ``fsspec`` URLs keep Lightning's own transaction)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        """Write ``checkpoint`` to ``path`` through a temporary file and a rename.

        Raises:
            DiskFullError: the disk or quota ran out (names ``path``; nothing is left).
        """
        if storage_options is not None or not _local(path):  # Lightning's own handling
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        target = Path(str(path).removeprefix("file://"))
        with atomic_open(target, "wb") as fh:
            torch.save(checkpoint, fh)
