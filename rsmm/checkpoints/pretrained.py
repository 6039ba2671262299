"""Pre-trained encoder weights for a fine-tuning: read from an rsmm checkpoint or export
directory, checked against the model (architecture, bands and their order), loaded.

A task restored from its own checkpoint does not come here: it is built with
``pretrained=None`` (``FinetuneTask.load_from_checkpoint``, and the ``rsmm`` command
when given ``--ckpt_path``) and takes every weight from that checkpoint.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from rsmm.checkpoints.files import load_checkpoint, read_export
from rsmm.checkpoints.fit import band_mismatch, state_dict_problems
from rsmm.checkpoints.record import CheckpointRecord
from rsmm.errors import CheckpointError, ExportError
from rsmm.models.multimodal import MultiModalEncoder


@dataclass(frozen=True)
class PretrainedEncoders:
    """Encoder tensors of a pre-training checkpoint or export, and what they were trained on.

    Attributes:
        path: the checkpoint file or export directory.
        state_dict: tensors keyed relative to :class:`MultiModalEncoder`
            (``backbones.<m>.*`` and, from checkpoints, ``projectors.<m>.*``).
        architectures: ``{modality: timm architecture}`` (``None`` when not recorded).
        bands: ``{modality: band names in the order trained on}`` (``None`` when not
            recorded).
    """

    path: Path
    state_dict: dict[str, Tensor]
    architectures: dict[str, str | None]
    bands: dict[str, list[str] | None]


def _from_export(path: Path, modalities: Sequence[str]) -> PretrainedEncoders:
    meta, tensors = read_export(path, modalities)
    entries = {m: meta["modalities"][m] for m in modalities}
    return PretrainedEncoders(
        path,
        {f"backbones.{m}.{k}": v for m, sd in tensors.items() for k, v in sd.items()},
        {m: e.get("architecture") for m, e in entries.items()},
        {m: e.get("bands") for m, e in entries.items()},
    )


def read_pretrained(path: str | Path, modalities: Sequence[str]) -> PretrainedEncoders:
    """The encoders of ``modalities`` from an rsmm checkpoint or export directory.

    Raises:
        CheckpointError: for a missing or unreadable file, or one without an encoder for
            some of ``modalities`` (pre-trained on a different modality set).
    """
    path = Path(path)
    try:
        if path.is_dir():
            return _from_export(path, modalities)
        ckpt = load_checkpoint(path)
    except ExportError as err:
        raise CheckpointError(f"pre-trained weights: {err}") from err
    record, sd = CheckpointRecord.from_checkpoint(path, ckpt), ckpt["state_dict"]
    have = sorted({k.split(".")[2] for k in sd if k.startswith("encoder.backbones.")})
    missing = [m for m in modalities if m not in have]
    if missing:
        raise CheckpointError(
            f"checkpoint {path} has encoders for {have}, not for {missing}: it was pre-trained "
            "on a different modality set"
        )
    out = {}
    for k, v in sd.items():
        parts = k.split(".")
        if (
            parts[0] == "encoder"
            and parts[1] in ("backbones", "projectors")
            and parts[2] in modalities
        ):
            out[".".join(parts[1:])] = v
    return PretrainedEncoders(
        path,
        out,
        {m: record.architectures.get(m) for m in modalities},
        {m: record.bands.get(m) for m in modalities},
    )


def load_pretrained_encoder(path: str | Path, modalities: Sequence[str]) -> dict[str, Tensor]:
    """Encoder tensors of ``modalities`` from an rsmm checkpoint or export directory.

    Returns a state dict with keys relative to :class:`MultiModalEncoder`
    (``backbones.<m>.*`` and, from checkpoints, ``projectors.<m>.*``).
    """
    return read_pretrained(path, modalities).state_dict


def check_pretrained(
    pre: PretrainedEncoders,
    encoder: MultiModalEncoder,
    bands: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Check that pre-trained backbones fit ``encoder`` exactly, and were trained on the
    bands the model reads, in the same order.

    Every ``backbones.<m>.*`` tensor the encoder has must be in ``pre`` with the same
    shape, and ``pre`` may have no other backbone tensor for a loaded modality (heads
    and projectors may differ). Band lists unknown on either side are not compared.

    Raises:
        CheckpointError: naming ``pre.path``, the architectures and the mismatch.
    """
    own = encoder.state_dict()
    for m in pre.architectures:
        problems = state_dict_problems(own, pre.state_dict, f"backbones.{m}.")
        if problems:
            raise CheckpointError(
                f"{pre.path}: its {m} backbone ({pre.architectures[m] or 'unknown architecture'})"
                f" does not fit this model's ({encoder.archs[m]}, {encoder.in_channels[m]} bands):"
                f" {', '.join(problems)}"
            )
        message = band_mismatch(pre.path, m, pre.bands.get(m), (bands or {}).get(m))
        if message is not None:
            raise CheckpointError(message)


def load_pretrained(
    encoder: MultiModalEncoder,
    path: str | Path,
    bands: Mapping[str, Sequence[str]] | None = None,
    projectors: bool = False,
) -> PretrainedEncoders:
    """Load the pre-trained encoders of ``path`` into ``encoder``, after checking them.

    Args:
        encoder: the model's encoders (every modality of it is loaded).
        path: an rsmm checkpoint or export directory.
        bands: ``{modality: band names}`` the model reads (``None``: not compared).
        projectors: also load the checkpoint's projectors when they have the model's
            sizes (otherwise a warning, and the projectors stay new).

    Returns:
        What was read.

    Raises:
        CheckpointError: see :func:`read_pretrained` and :func:`check_pretrained`.
    """
    pre = read_pretrained(path, list(encoder.in_channels))
    check_pretrained(pre, encoder, bands)
    sd = pre.state_dict
    own = encoder.state_dict()
    proj = [k for k in sd if k.startswith("projectors.")]
    if not projectors or any(k not in own or own[k].shape != sd[k].shape for k in proj):
        if projectors:
            warnings.warn(
                f"the projectors of {path} have other sizes than projection_dim/hidden_dim: "
                "SupCon starts from new projectors",
                stacklevel=3,
            )
        sd = {k: v for k, v in sd.items() if k.startswith("backbones.")}
    # check_pretrained and the projector filter above leave nothing that can clash
    encoder.load_state_dict(sd, strict=False)
    return pre
