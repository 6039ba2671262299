"""Backbones: any timm model with the modality's band count as ``in_chans``.

Weights can come from a local file: an rsmm export (``.safetensors``), a plain state
dict or a Lightning/torchgeo checkpoint (loaded with ``weights_only=True``). When the
file's first convolution has another number of input channels than the modality, it
is adapted with timm's ``adapt_input_conv`` (repeat and rescale, or sum for 1 band).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import timm
import torch
from timm.models import adapt_input_conv
from torch import Tensor, nn

import rsmm.models.alexnet  # noqa: F401  (registers small_alexnet / tiny_cnn with timm)
from rsmm.errors import ConfigError, WeightsError


def build_backbone(arch: str, in_chans: int, **kwargs: object) -> nn.Module:
    """A timm backbone without classifier (``forward`` returns pooled features).

    Raises:
        ValueError: for an architecture timm does not know.
    """
    if not timm.is_model(arch):
        raise ConfigError(
            f"unknown backbone {arch!r}: not a timm model name (see timm.list_models()); "
            "rsmm adds 'small_alexnet' and 'tiny_cnn'"
        )
    return timm.create_model(arch, pretrained=False, in_chans=in_chans, num_classes=0, **kwargs)


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Read tensors from a safetensors file or a (weights-only) torch checkpoint.

    Lightning checkpoints are unwrapped (``state_dict``); torchgeo task checkpoints'
    ``model.`` / ``backbone.`` prefixes are removed.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
            sd = obj.get("state_dict", obj) if isinstance(obj, Mapping) else obj
    except Exception as err:  # corrupt or pickled-with-code files
        raise WeightsError(f"cannot read weights from {path}: {err}") from err
    if not isinstance(sd, Mapping):
        raise WeightsError(f"{path} holds no state dict")
    sd = {k: v for k, v in sd.items() if isinstance(v, Tensor)}
    for prefix in ("model.", "backbone.", "module."):
        if sd and all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix) :]: v for k, v in sd.items()}
    return sd


def load_backbone_weights(model: nn.Module, path: str | Path) -> tuple[list[str], list[str]]:
    """Load a weights file into ``model``, adapting the input convolution if needed.

    Classifier weights of the file (keys absent from the backbone) are ignored.

    Returns:
        ``(missing, unexpected)`` key lists.

    Raises:
        WeightsError: if the file is unreadable or no tensor matches the backbone.
    """
    sd = read_state_dict(path)
    own = model.state_dict()
    adapted = {}
    for k, v in sd.items():
        if k not in own:
            continue
        target = own[k]
        if v.shape != target.shape:
            if v.ndim == 4 and v.shape[0] == target.shape[0] and v.shape[2:] == target.shape[2:]:
                v = adapt_input_conv(target.shape[1], v)
            else:
                raise WeightsError(
                    f"{path}: tensor {k!r} has shape {tuple(v.shape)}, backbone expects "
                    f"{tuple(target.shape)} (another architecture?)"
                )
        adapted[k] = v
    if not adapted:
        raise WeightsError(f"{path}: no tensor matches the backbone's parameter names")
    result = model.load_state_dict(adapted, strict=False)
    unexpected = [k for k in sd if k not in own]
    return list(result.missing_keys), unexpected
