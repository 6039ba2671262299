"""What a weights file from elsewhere was trained on: bands, architecture, normalisation.

A TorchGeo (or timm) weights file is a bare state dict; rsmm needs its band list to map
the input convolution onto the bands it trains on (:mod:`rsmm.models.band_mapping`) and
the normalisation its inputs had. The description comes from, in this order:

1. a sidecar JSON beside the file, ``<file>.json`` (e.g. ``ssl4eo-s2.pth.json``)::

       {"bands": ["B1", "B2", ...], "architecture": "resnet50", "mean": 0, "std": 10000}

   (``mean`` / ``std``: one number, or one per band; the weights expect
   ``(x - mean) / std`` of the values as stored), or ``{"torchgeo":
   "ResNet50_Weights.SENTINEL2_ALL_MOCO"}`` to take all of it from TorchGeo;
2. TorchGeo's model zoo, read from the installed ``torchgeo.models``: the file keeps the
   name TorchGeo downloads it under (the last part of the weights' URL, e.g.
   ``resnet50_sentinel2_all_moco-df8b932e.pth``, as found in ``~/.cache/torch/hub/
   checkpoints``); its ``bands`` and ``model`` metadata, and the normalisation of its
   ``transforms`` (SSL4EO-S12 Sentinel-2: divide by 10000), describe it.

A WeightsEnum name (``"ResNet50_Weights.SENTINEL2_ALL_MOCO"``) given instead of a path
stands for that file in the torch hub cache (:func:`resolve_weights_path`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from rsmm.atomic import write_text
from rsmm.errors import WeightsError


@dataclass(frozen=True)
class WeightsInfo:
    """What a weights file expects.

    Attributes:
        bands: band names in the order of the first convolution's input channels.
        architecture: the timm architecture (``None`` when not known).
        mean: per band (or one value for all), the weights expect ``(x - mean) / std``
            of the values as stored; ``None`` when not known.
        std: see ``mean``.
        source: where this description comes from (for messages).
        url: TorchGeo's download address, for files of its model zoo.
    """

    bands: tuple[str, ...]
    architecture: str | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    source: str = ""
    url: str | None = None

    def normalisation(self) -> tuple[list[float], list[float]] | None:
        """``(mean, std)`` with one value per band, or ``None`` when not known."""
        if self.mean is None or self.std is None:
            return None
        n = len(self.bands)
        return _per_band(self.mean, n, self.source), _per_band(self.std, n, self.source)


def _per_band(values: Sequence[float], n: int, source: str) -> list[float]:
    if len(values) == 1:
        return [float(values[0])] * n
    if len(values) != n:
        raise WeightsError(f"{source}: {len(values)} normalisation values for {n} bands")
    return [float(v) for v in values]


def _numbers(value: Any) -> tuple[float, ...] | None:
    if value is None:
        return None
    values = value.tolist() if hasattr(value, "tolist") else value
    return tuple(float(v) for v in (values if isinstance(values, list | tuple) else [values]))


def sidecar_path(path: str | Path) -> Path:
    """The sidecar JSON of a weights file: ``<file>.json``."""
    return Path(f"{path}.json")


def write_sidecar(
    path: str | Path,
    bands: Sequence[str],
    architecture: str | None = None,
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
) -> Path:
    """Describe a weights file for rsmm: write ``<file>.json``; returns its path."""
    info: dict[str, Any] = {"bands": list(bands)}
    if architecture:
        info["architecture"] = architecture
    if mean is not None and std is not None:
        info["mean"], info["std"] = list(_numbers(mean) or ()), list(_numbers(std) or ())
    out = sidecar_path(path)
    write_text(out, json.dumps(info, indent=2) + "\n")
    return out


def _read_sidecar(path: Path) -> WeightsInfo:
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise WeightsError(f"cannot read {path}: {err}") from err
    if not isinstance(raw, dict):
        raise WeightsError(f"{path}: expected a JSON object with 'bands' or 'torchgeo'")
    if raw.get("torchgeo"):
        info = torchgeo_weights(str(raw["torchgeo"]))
        if info is None:
            raise WeightsError(
                f"{path}: {raw['torchgeo']!r} is not a weights name of the installed TorchGeo"
            )
        return info
    bands = raw.get("bands")
    if not isinstance(bands, list) or not bands or not all(isinstance(b, str) for b in bands):
        raise WeightsError(f"{path}: 'bands' must be a non-empty list of band names")
    unknown = sorted(set(raw) - {"bands", "architecture", "mean", "std"})
    if unknown:
        raise WeightsError(f"{path}: unknown keys {unknown} (use bands, architecture, mean, std)")
    info = WeightsInfo(
        bands=tuple(bands),
        architecture=raw.get("architecture"),
        mean=_numbers(raw.get("mean")),
        std=_numbers(raw.get("std")),
        source=str(path),
    )
    info.normalisation()  # checks the number of values
    return info


def _transforms_normalisation(
    transforms: Any,
) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    """Overall ``(mean, std)`` of the ``Normalize`` steps of a TorchGeo weights'
    transforms: ``(x - m1) / s1`` then ``(. - m2) / s2`` is ``(x - (m1 + m2 s1)) / (s1 s2)``;
    ``(None, None)`` when they have none (the normalisation is then unknown)."""
    import torch

    mean, std = torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    modules = transforms.modules() if hasattr(transforms, "modules") else []
    steps = [step for step in modules if type(step).__name__ == "Normalize"]
    if not steps:
        return None, None
    for step in steps:
        flags = getattr(step, "flags", {})  # kornia keeps them in flags
        m = getattr(step, "mean", flags.get("mean"))
        s = getattr(step, "std", flags.get("std"))
        m = torch.as_tensor(m, dtype=torch.float64).reshape(-1)
        s = torch.as_tensor(s, dtype=torch.float64).reshape(-1)
        mean, std = mean + m * std, std * s
    return tuple(mean.tolist()), tuple(std.tolist())


@lru_cache(maxsize=1)
def _torchgeo_table() -> dict[str, WeightsInfo]:
    """TorchGeo's weights by WeightsEnum name and by file name (empty without TorchGeo)."""
    try:
        from torchgeo.models import get_model_weights, list_models
    except ImportError:
        return {}
    table: dict[str, WeightsInfo] = {}
    for model in list_models():
        try:
            members = list(get_model_weights(model))
        except (KeyError, TypeError):  # a model without weights
            continue
        for w in members:
            bands = w.meta.get("bands")
            if not bands:
                continue
            mean, std = _transforms_normalisation(w.transforms)
            info = WeightsInfo(
                bands=tuple(bands),
                architecture=w.meta.get("model"),
                mean=mean,
                std=std,
                source=f"TorchGeo's {w}",
                url=w.url,
            )
            table[str(w)] = info
            table.setdefault(w.url.rsplit("/", 1)[-1], info)
    return table


def torchgeo_weights(name: str) -> WeightsInfo | None:
    """TorchGeo's description of weights given by WeightsEnum name
    (``"ResNet50_Weights.SENTINEL2_ALL_MOCO"``) or file name
    (``"resnet50_sentinel2_all_moco-df8b932e.pth"``); ``None`` when unknown."""
    return _torchgeo_table().get(name)


def describe_weights(path: str | Path) -> WeightsInfo | None:
    """The description of a weights file: its sidecar, else TorchGeo's entry for its file
    name; ``None`` when neither exists (rsmm checkpoints and exports included).

    Raises:
        WeightsError: for an unreadable or invalid sidecar.
    """
    path = Path(path)
    if path.is_dir():
        return None
    if sidecar_path(path).is_file():
        return _read_sidecar(sidecar_path(path))
    if path.suffix == ".ckpt":  # Lightning checkpoints (rsmm's own); TorchGeo's are .pth
        return None
    return torchgeo_weights(path.name)


def resolve_weights_path(spec: str | Path) -> Path:
    """The file a weights argument names: a path, or a TorchGeo WeightsEnum name standing
    for the file TorchGeo downloads it to (``torch.hub.get_dir()/checkpoints/<name>``).

    Raises:
        WeightsError: for a WeightsEnum name whose file has not been downloaded.
    """
    path = Path(spec)
    if path.exists() or "_Weights." not in str(spec):
        return path
    info = torchgeo_weights(str(spec))
    if info is None or info.url is None:
        return path
    import torch

    cached = Path(torch.hub.get_dir()) / "checkpoints" / info.url.rsplit("/", 1)[-1]
    if not cached.is_file():
        raise WeightsError(
            f"{spec}: {cached} not found; download it where there is network (python -c "
            f"\"from torchgeo.models import get_weight; get_weight('{spec}').get_state_dict()\")"
            " and copy it there, or give the file's path"
        )
    return cached
