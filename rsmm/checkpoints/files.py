"""Reading the two files rsmm writes weights to: a Lightning checkpoint of a task
(``.ckpt``, read weights-only, no arbitrary unpickling) and an export directory
(``<modality>.safetensors`` per encoder plus ``rsmm-encoders.json``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from rsmm.errors import ExportError
from rsmm.parsing import describe, field, load_weights_only, mapping, read_json

#: The metadata file of an export directory.
META_FILE = "rsmm-encoders.json"


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The whole content of an rsmm task checkpoint, read weights-only on the CPU.

    ``hyper_parameters`` is a plain ``dict``.

    Raises:
        ExportError: for a missing file, one ``torch.load`` cannot read weights-only
            (corrupt, truncated, not a torch file, or holding pickled objects, which are
            never unpickled), or one without a state dict or ``in_channels`` (not an rsmm
            task's checkpoint); the message names the file in one line.
    """
    path = Path(path)
    ckpt = load_weights_only(path, "checkpoint", ExportError)
    what = f"{path} is not an rsmm task checkpoint"
    if not isinstance(ckpt, Mapping):
        raise ExportError(f"{what}: it holds {describe(ckpt)}, not a Lightning checkpoint")
    ckpt = dict(ckpt)
    for key in ("hyper_parameters", "state_dict"):
        if key not in ckpt:
            raise ExportError(f"{what}: no {key!r}")
        if not isinstance(ckpt[key], Mapping):
            raise ExportError(f"{what}: {key!r} is {describe(ckpt[key])}, not a mapping")
    ckpt["hyper_parameters"] = dict(ckpt["hyper_parameters"])
    in_channels = ckpt["hyper_parameters"].get("in_channels")
    if not in_channels:
        raise ExportError(f"{what} (no in_channels)")
    if not isinstance(in_channels, Mapping) or not all(
        isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in in_channels.values()
    ):
        raise ExportError(
            f"{what}: in_channels must map each modality to its band count, got "
            f"{describe(in_channels)}"
        )
    return ckpt


def read_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(hyper_parameters, state_dict)`` of an rsmm Lightning checkpoint (weights only)."""
    ckpt = load_checkpoint(path)
    return ckpt["hyper_parameters"], ckpt["state_dict"]


def _check_entry(entry: Any, source: Path, modality: str) -> dict[str, Any]:
    """One encoder's entry of ``rsmm-encoders.json``, checked field by field."""
    where = f"modalities.{modality}"
    entry = mapping(entry, source, where, ExportError)
    file = field(entry, "file", str, source, where, ExportError)
    if Path(file).name != file or file in ("", ".", ".."):
        raise ExportError(
            f"{source}: {where}.file: expected a file name in the export, got {file!r}"
        )
    field(entry, "architecture", str, source, where, ExportError)
    in_chans = field(entry, "in_chans", int, source, where, ExportError)
    if in_chans < 1:
        raise ExportError(f"{source}: {where}.in_chans: expected at least 1 band, got {in_chans}")
    bands = field(entry, "bands", (list, type(None)), source, where, ExportError, required=False)
    if bands is not None and not all(isinstance(b, str) for b in bands):
        raise ExportError(f"{source}: {where}.bands: expected a list of band names, got {bands!r}")
    field(entry, "backbone_kwargs", (dict, type(None)), source, where, ExportError, required=False)
    return entry


def read_export_meta(out_dir: str | Path) -> dict[str, Any]:
    """The checked ``rsmm-encoders.json`` of an export directory.

    Raises:
        ExportError: for a directory without it, or one that is not JSON, not an object,
            or has a missing or mistyped field (the message names the file and field).
    """
    out_dir = Path(out_dir)
    meta_path = out_dir / META_FILE
    if not meta_path.is_file():
        raise ExportError(f"{out_dir} is not an rsmm export directory (no {META_FILE})")
    meta = mapping(read_json(meta_path, "export metadata", ExportError), meta_path, "", ExportError)
    mods = field(meta, "modalities", dict, meta_path, "", ExportError)
    if not mods:
        raise ExportError(f"{meta_path}: modalities: empty (the export has no encoder)")
    meta["modalities"] = {m: _check_entry(e, meta_path, m) for m, e in mods.items()}
    return meta


def read_export(
    out_dir: str | Path, modalities: Sequence[str] | None = None
) -> tuple[dict[str, Any], dict[str, dict[str, torch.Tensor]]]:
    """``(metadata, {modality: state_dict})`` of an export directory.

    Args:
        out_dir: the export directory.
        modalities: the encoders to read (default: all).

    Raises:
        ExportError: for a directory without (or with a corrupt) ``rsmm-encoders.json``,
            a modality it has no encoder for, or a missing or unreadable weights file.
    """
    out_dir = Path(out_dir)
    meta = read_export_meta(out_dir)
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
        if not path.is_file():
            raise ExportError(f"{out_dir / META_FILE}: modalities.{m}.file: {path} not found")
        try:
            tensors[m] = load_file(str(path))
        except Exception as err:  # safetensors raises its own SafetensorError
            detail = " ".join(str(err).split())
            raise ExportError(
                f"cannot read {path}: not a safetensors file or corrupt ({detail})"
            ) from err
    return meta, tensors
