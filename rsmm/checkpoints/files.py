"""Reading the two files rsmm writes weights to: a Lightning checkpoint of a task
(``.ckpt``, read weights-only, no arbitrary unpickling) and an export directory
(``<modality>.safetensors`` per encoder plus ``rsmm-encoders.json``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from rsmm.errors import ExportError

#: The metadata file of an export directory.
META_FILE = "rsmm-encoders.json"


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The whole content of an rsmm task checkpoint, read weights-only on the CPU.

    ``hyper_parameters`` is a plain ``dict``.

    Raises:
        ExportError: for a missing file, one ``torch.load`` cannot read weights-only, or
            one without a state dict or ``in_channels`` (not an rsmm task's checkpoint).
    """
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        ckpt["hyper_parameters"] = dict(ckpt["hyper_parameters"])
        if not isinstance(ckpt.get("state_dict"), Mapping):
            raise KeyError("state_dict")
    except Exception as err:
        raise ExportError(
            f"cannot read checkpoint {path} (corrupt or not an rsmm checkpoint): {err}"
        ) from err
    if not ckpt["hyper_parameters"].get("in_channels"):
        raise ExportError(f"{path} is not an rsmm task checkpoint (no in_channels)")
    return ckpt


def read_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(hyper_parameters, state_dict)`` of an rsmm Lightning checkpoint (weights only)."""
    ckpt = load_checkpoint(path)
    return ckpt["hyper_parameters"], ckpt["state_dict"]


def read_export(
    out_dir: str | Path, modalities: Sequence[str] | None = None
) -> tuple[dict[str, Any], dict[str, dict[str, torch.Tensor]]]:
    """``(metadata, {modality: state_dict})`` of an export directory.

    Args:
        out_dir: the export directory.
        modalities: the encoders to read (default: all).

    Raises:
        ExportError: for a directory without (or with a corrupt) ``rsmm-encoders.json``,
            a modality it has no encoder for, or an unreadable weights file.
    """
    out_dir = Path(out_dir)
    meta_path = out_dir / META_FILE
    if not meta_path.is_file():
        raise ExportError(f"{out_dir} is not an rsmm export directory (no {META_FILE})")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as err:
        raise ExportError(f"corrupt {meta_path}: {err}") from err
    mods = list(modalities or meta["modalities"])
    missing = [m for m in mods if m not in meta["modalities"]]
    if missing:
        raise ExportError(
            f"export {out_dir} has no encoder for {missing} (has {list(meta['modalities'])}): "
            "it was pre-trained on a different modality set"
        )
    tensors = {}
    for m in mods:
        path = out_dir / meta["modalities"][m]["file"]
        try:
            tensors[m] = load_file(str(path))
        except Exception as err:
            raise ExportError(f"cannot read {path}: {err}") from err
    return meta, tensors
