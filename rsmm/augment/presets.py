"""Augmentation presets: named YAML files in ``rsmm/augment/recipes/``, a YAML path, or a dict.

A preset has a geometric part, shared by all modalities (or drawn per modality), and
one ordered list of radiometric operations per sensor kind::

    description: free text
    geometry:
      resized_crop: {p: 1.0, scale: [0.9, 1.0], ratio: [0.75, 1.3333]}
      hflip: 0.5            # probability
      vflip: 0.5
      rot90: 0.0            # probability of 1, 2 or 3 quarter turns
      mode: bilinear        # or nearest
    optical:                # applied in this order to optical modalities
      - {op: brightness, p: 0.8, factor: [0.6, 1.4], per_band: true}
    sar:                    # applied in this order to SAR modalities
      - {op: speckle, p: 0.5, looks: [2, 8]}

Operation names are those of :data:`rsmm.augment.ops.OPS`; putting an optical-only
operation (colour) in ``sar`` or a SAR one in ``optical`` is an error. Normalisation by
the per-band statistics always comes after the ``stored``-stage operations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# importing the op modules registers their operations
from rsmm.augment import optical as _optical  # noqa: F401
from rsmm.augment import sar as _sar  # noqa: F401
from rsmm.augment.geometry import GeometryConfig
from rsmm.augment.ops import Op, as_range, build_op
from rsmm.errors import ConfigError
from rsmm.parsing import yaml_problem

#: Directory of the named presets (``rsmm/augment/recipes``, shipped inside the package).
PRESET_DIR = Path(__file__).resolve().parent / "recipes"

_KINDS = ("optical", "sar")
_TOP_KEYS = {"description", "geometry", *_KINDS}
_GEOMETRY_KEYS = {"resized_crop", "hflip", "vflip", "rot90", "mode"}


@dataclass
class Preset:
    """A parsed augmentation preset.

    Attributes:
        name: preset name (file stem, or ``"<dict>"``).
        geometry: the geometric configuration.
        ops: ``{"optical": [Op, ...], "sar": [Op, ...]}`` in application order.
        description: free text.
    """

    name: str
    geometry: GeometryConfig
    ops: dict[str, list[Op]] = field(default_factory=dict)
    description: str = ""


def available_presets() -> list[str]:
    """Names of the presets shipped in :data:`PRESET_DIR`."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def _probability(value: Any, where: str) -> float:
    try:
        p = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where} must be a probability, got {value!r}") from None
    if not 0 <= p <= 1:
        raise ConfigError(f"{where} must be in [0, 1], got {p}")
    return p


def _parse_geometry(spec: Mapping[str, Any] | None, where: str) -> GeometryConfig:
    spec = dict(spec or {})
    unknown = set(spec) - _GEOMETRY_KEYS
    if unknown:
        raise ConfigError(
            f"{where}.geometry: unknown key(s) {sorted(unknown)}; expected {sorted(_GEOMETRY_KEYS)}"
        )
    crop = spec.get("resized_crop") or {}
    if not isinstance(crop, Mapping) or set(crop) - {"p", "scale", "ratio"}:
        raise ConfigError(
            f"{where}.geometry.resized_crop must be a mapping with keys p, scale, ratio; got {crop!r}"
        )
    scale = as_range(crop.get("scale", (1.0, 1.0)), f"{where}.geometry.resized_crop.scale", low=0.0)
    if scale[0] <= 0 or scale[1] > 1:
        raise ConfigError(
            f"{where}.geometry.resized_crop.scale must lie in (0, 1], got {list(scale)}"
        )
    ratio = as_range(crop.get("ratio", (1.0, 1.0)), f"{where}.geometry.resized_crop.ratio", low=0.0)
    if ratio[0] <= 0:
        raise ConfigError(f"{where}.geometry.resized_crop.ratio must be positive, got {list(ratio)}")
    mode = spec.get("mode", "bilinear")
    if mode not in ("bilinear", "nearest"):
        raise ConfigError(f"{where}.geometry.mode must be 'bilinear' or 'nearest', got {mode!r}")
    return GeometryConfig(
        crop_p=_probability(
            crop.get("p", 1.0 if crop else 0.0), f"{where}.geometry.resized_crop.p"
        ),
        scale=scale,
        ratio=ratio,
        hflip=_probability(spec.get("hflip", 0.0), f"{where}.geometry.hflip"),
        vflip=_probability(spec.get("vflip", 0.0), f"{where}.geometry.vflip"),
        rot90=_probability(spec.get("rot90", 0.0), f"{where}.geometry.rot90"),
        mode=mode,
    )


def parse_preset(spec: Mapping[str, Any], name: str = "<dict>") -> Preset:
    """Validate a preset mapping and build its operations.

    Raises:
        ValueError: on unknown keys or operations, bad values, or an operation listed
            under a sensor kind it does not support.
    """
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"augmentation preset {name!r} must be a mapping, got {type(spec).__name__}"
        )
    unknown = set(spec) - _TOP_KEYS
    if unknown:
        raise ConfigError(
            f"augmentation preset {name!r}: unknown key(s) {sorted(unknown)}; "
            f"expected {sorted(_TOP_KEYS)}"
        )
    ops: dict[str, list[Op]] = {}
    for kind in _KINDS:
        entries = spec.get(kind) or []
        if not isinstance(entries, list):
            raise ConfigError(f"augmentation preset {name!r}: {kind!r} must be a list of ops")
        ops[kind] = []
        for i, entry in enumerate(entries):
            where = f"augmentation preset {name!r}, {kind}[{i}]"
            op = build_op(entry, where)
            if kind not in op.kinds:
                raise ConfigError(
                    f"{where}: op {op.name!r} is for {'/'.join(sorted(op.kinds))} sensors, "
                    f"not {kind}"
                )
            ops[kind].append(op)
    return Preset(
        name=name,
        geometry=_parse_geometry(spec.get("geometry"), f"augmentation preset {name!r}"),
        ops=ops,
        description=str(spec.get("description", "")),
    )


def load_preset(preset: str | Path | Mapping[str, Any] | Preset) -> Preset:
    """Load a preset by name (``"mm_pretrain"``), YAML path, or mapping.

    Raises:
        ValueError: for an unknown name (the message lists the available ones) or an
            invalid preset.
        FileNotFoundError: for a path that does not exist.
    """
    if isinstance(preset, Preset):
        return preset
    if isinstance(preset, Mapping):
        return parse_preset(preset)
    text = str(preset)
    path = Path(text)
    if path.suffix not in (".yaml", ".yml") and not path.exists():
        path = PRESET_DIR / f"{text}.yaml"
        if not path.is_file():
            raise ConfigError(
                f"unknown augmentation preset {text!r}; available presets: "
                f"{', '.join(available_presets())} (or pass a YAML path or a dict)"
            )
    if not path.is_file():
        raise FileNotFoundError(f"augmentation preset file not found: {path}")
    with open(path) as f:
        try:
            spec = yaml.safe_load(f)
        except yaml.YAMLError as err:
            raise ConfigError(f"invalid augmentation preset {yaml_problem(err, path)}") from None
    try:
        return parse_preset(spec or {}, name=path.stem)
    except ValueError as err:
        raise ConfigError(f"{err} (in {path})") from None
