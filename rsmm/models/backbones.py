"""Backbones: any timm model with the modality's band count as ``in_chans``.

Weights can come from a local file: an rsmm export (``.safetensors``), a plain state
dict or a Lightning/torchgeo checkpoint (loaded with ``weights_only=True``), or a
TorchGeo WeightsEnum name standing for its downloaded file. When the band list of the
file is known (:mod:`rsmm.models.weights_info`: a sidecar JSON, or TorchGeo's metadata)
and the model's bands are given, the first convolution is mapped by band name
(:mod:`rsmm.models.band_mapping`) and the normalisation the weights expect is folded
into it. Otherwise a first convolution with another number of input channels is adapted
with timm's ``adapt_input_conv`` (repeat and rescale, or sum for 1 band).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import timm
from timm.models import adapt_input_conv
from torch import Tensor, nn

import rsmm.models.alexnet  # noqa: F401  (registers small_alexnet / tiny_cnn with timm)
from rsmm.errors import ConfigError, WeightsError
from rsmm.models.band_mapping import fold_input_normalisation, map_input_conv, normalise_band
from rsmm.models.weights_info import WeightsInfo, describe_weights, resolve_weights_path
from rsmm.parsing import load_weights_only

#: ``(mean, std)``, one value per band each
Stats = tuple[Sequence[float], Sequence[float]]


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
            obj = load_weights_only(path, "weights from", WeightsError)  # no torch advice
            sd = obj.get("state_dict", obj) if isinstance(obj, Mapping) else obj
    except WeightsError:
        raise
    except Exception as err:  # corrupt safetensors files
        raise WeightsError(f"cannot read weights from {path}: {err}") from err
    if not isinstance(sd, Mapping):
        raise WeightsError(f"{path} holds no state dict")
    sd = {k: v for k, v in sd.items() if isinstance(v, Tensor)}
    for prefix in ("model.", "backbone.", "module."):
        if sd and all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix) :]: v for k, v in sd.items()}
    return sd


def first_conv_name(model: nn.Module) -> str | None:
    """Name of the model's input convolution: timm's ``pretrained_cfg["first_conv"]``,
    else the first ``Conv2d`` module."""
    name = (getattr(model, "pretrained_cfg", None) or {}).get("first_conv")
    if isinstance(name, list | tuple):
        name = name[0] if name else None
    if name:
        try:
            if isinstance(model.get_submodule(name), nn.Conv2d):
                return name
        except AttributeError:
            pass
    return next((n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)


def _shift_key(model: nn.Module, conv: str) -> tuple[str, float] | None:
    """Where a constant added to the first convolution's output goes: ``(key, sign)`` of
    its bias, or of the running mean of the batch norm right after it (subtracted)."""
    module = model.get_submodule(conv)
    if module.bias is not None:
        return f"{conv}.bias", 1.0
    names = [n for n, _ in model.named_modules()]
    for n in names[names.index(conv) + 1 :]:
        m = model.get_submodule(n)
        if isinstance(m, nn.BatchNorm2d) and m.num_features == module.out_channels:
            return f"{n}.running_mean", -1.0
        if isinstance(m, nn.Conv2d | nn.Linear):
            break
    return None


def _record_normalisation(model: nn.Module, stats: Stats) -> None:
    """Put the normalisation the model expects where timm keeps it (``pretrained_cfg``)."""
    cfg = dict(getattr(model, "pretrained_cfg", None) or {})
    cfg["mean"], cfg["std"] = tuple(stats[0]), tuple(stats[1])
    model.pretrained_cfg = cfg


def map_by_band_name(
    model: nn.Module,
    sd: dict[str, Tensor],
    info: WeightsInfo,
    bands: Sequence[str],
    stats: Stats | None,
    path: str | Path,
) -> dict[str, Tensor]:
    """Map the file's first convolution onto ``bands`` and fold in its normalisation.

    Warns once naming the bands dropped and added (nothing when the bands are the same,
    in the same order); warns when the inputs' normalisation cannot be made the one the
    weights expect (no ``stats``). The normalisation the model then expects is recorded
    in ``model.pretrained_cfg`` (``mean`` / ``std``, as timm keeps it).
    """
    conv = first_conv_name(model)
    if conv is None or f"{conv}.weight" not in sd:
        return sd
    try:
        sd, mapping = map_input_conv(sd, f"{conv}.weight", info.bands, bands)
        expected = info.normalisation()
    except WeightsError as err:
        raise WeightsError(f"{path} ({info.source}): {err}") from err
    if not mapping.is_identity:
        warnings.warn(f"{path}: {mapping.describe()}", stacklevel=3)
    if expected is None:
        return sd
    want = (mapping.select(expected[0]), mapping.select(expected[1]))
    if stats is None or any(len(v) != len(bands) for v in stats):
        _record_normalisation(model, want)
        warnings.warn(
            f"{path}: the weights expect inputs normalised as (x - mean) / std with mean "
            f"{_short(want[0])}, std {_short(want[1])} per band ({info.source}), not rsmm's "
            "per-band standardisation; no band statistics were given to fold it into the "
            "first convolution, so normalise inputs that way (recorded in the model's "
            "pretrained_cfg)",
            stacklevel=3,
        )
        return sd
    weight, shift = fold_input_normalisation(sd[f"{conv}.weight"], want, stats)
    sd[f"{conv}.weight"] = weight
    _record_normalisation(model, stats)  # what the model now expects: rsmm's statistics
    target = _shift_key(model, conv)
    if target is not None:
        key, sign = target
        base = sd.get(key, model.state_dict()[key])
        sd[key] = base + sign * shift.to(base.dtype)
    elif bool(shift.abs().max() > 0):
        warnings.warn(
            f"{path}: the first convolution {conv!r} has neither a bias nor a batch norm "
            "after it: the offset between the weights' normalisation and rsmm's is not "
            "folded in",
            stacklevel=3,
        )
    return sd


def _short(values: Sequence[float]) -> str:
    return (
        f"{values[0]:g}"
        if len(set(values)) == 1
        else "[" + ", ".join(f"{v:g}" for v in values) + "]"
    )


def load_backbone_weights(
    model: nn.Module,
    path: str | Path,
    bands: Sequence[str] | None = None,
    stats: Stats | None = None,
    source: WeightsInfo | None = None,
) -> tuple[list[str], list[str]]:
    """Load a weights file into ``model``, adapting the input convolution if needed.

    Classifier weights of the file (keys absent from the backbone) are ignored.

    Args:
        model: the backbone.
        path: a weights file, or a TorchGeo WeightsEnum name (its downloaded file).
        bands: the band names the model reads, in order. With the file's band list
            (``source``, else :func:`~rsmm.models.weights_info.describe_weights`) the
            first convolution is mapped by band name.
        stats: per-band ``(mean, std)`` the model's inputs are standardised with (in
            ``bands`` order); the normalisation the weights expect is folded into the
            first convolution so that it sees what it was trained on.
        source: the file's description, overriding its sidecar / TorchGeo entry.

    Returns:
        ``(missing, unexpected)`` key lists.

    Raises:
        WeightsError: if the file is unreadable, no tensor matches the backbone, or no
            band name of the file matches ``bands``.
    """
    path = resolve_weights_path(path)
    sd = read_state_dict(path)
    info = source or (describe_weights(path) if bands else None)
    if bands and info is not None:
        sd = map_by_band_name(model, sd, info, bands, stats, path)
    own = model.state_dict()
    adapted = {}
    for k, v in sd.items():
        if k not in own:
            continue
        target = own[k]
        if v.shape != target.shape:
            if v.ndim == 4 and v.shape[0] == target.shape[0] and v.shape[2:] == target.shape[2:]:
                try:
                    v = adapt_input_conv(target.shape[1], v)
                except NotImplementedError as err:  # timm adapts only 3 -> N and N -> 1
                    raise WeightsError(
                        f"{path}: {k} has {v.shape[1]} input channels, the model "
                        f"{target.shape[1]}; describe the file's bands in {path}.json to map "
                        "them by band name"
                    ) from err
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


def weights_per_modality(
    path: str | Path, bands: Mapping[str, Sequence[str] | None]
) -> dict[str, str | None]:
    """Which encoders a weights file from elsewhere starts: every modality one of whose
    bands the file has (by normalised name) or whose bands are unknown (``None``); the
    others start from random weights, with a warning.

    Raises:
        WeightsError: when the file's band list is unknown or matches no modality.
    """
    info = describe_weights(resolve_weights_path(path))
    if info is None:
        raise WeightsError(
            f"{path}: band list unknown; describe the file in {path}.json "
            '({"bands": [...], "mean": ..., "std": ...}) or keep TorchGeo\'s file name'
        )
    have = {normalise_band(b) for b in info.bands}
    # a modality whose bands are unknown cannot be checked: it gets the file
    fits = {m: b is None or any(normalise_band(x) in have for x in b) for m, b in bands.items()}
    if not any(fits.values()):
        raise WeightsError(
            f"{path}: no band name of its bands {list(info.bands)} ({info.source}) matches "
            f"the bands of any modality {dict(bands)}"
        )
    rest = [m for m, ok in fits.items() if not ok]
    if rest:
        warnings.warn(
            f"{path} has no band of modalities {rest}: their encoders start from random weights",
            stacklevel=2,
        )
    return {m: str(path) if ok else None for m, ok in fits.items()}


def encoder_from_weights(
    path: str | Path,
    bands: Sequence[str] | None = None,
    stats: Stats | None = None,
    architecture: str | None = None,
    source: WeightsInfo | None = None,
) -> nn.Module:
    """A timm backbone (no classifier, eval mode) started from a weights file from
    elsewhere, e.g. TorchGeo's SSL4EO-S12 ResNet-50 saved locally.

    Args:
        path: the file, or a TorchGeo WeightsEnum name (its downloaded file).
        bands: the bands the backbone will read (default: the file's); the first
            convolution is mapped onto them by band name.
        stats: per-band ``(mean, std)`` the inputs will be standardised with; without
            them the inputs must be normalised as the weights expect, which is recorded in
            ``model.pretrained_cfg`` (``mean`` / ``std``).
        architecture: the timm architecture (default: the file's description).
        source: the file's description (default: its sidecar or TorchGeo's metadata).

    Raises:
        WeightsError: when the file's band list or architecture is unknown, no band name
            matches, or the tensors are not those of the architecture.
    """
    path = resolve_weights_path(path)
    info = source or describe_weights(path)
    if info is None:
        raise WeightsError(
            f"{path}: band list unknown; describe the file in {path}.json "
            '({"bands": [...], "architecture": ..., "mean": ..., "std": ...}) or keep '
            "TorchGeo's file name"
        )
    arch = architecture or info.architecture
    if not arch:
        raise WeightsError(f"{path}: architecture unknown; add 'architecture' to {path}.json")
    target = list(bands) if bands else list(info.bands)
    net = build_backbone(arch, len(target))
    missing, _ = load_backbone_weights(net, path, target, stats, info)
    if missing:
        raise WeightsError(
            f"{path}: not the weights of a {arch} backbone ({len(missing)} tensors missing, "
            f"e.g. {', '.join(missing[:3])})"
        )
    return net.eval()
