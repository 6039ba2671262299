"""Dataset manifests: class names, bands per modality, units, band statistics.

A manifest is a small JSON file in ``rsmm/data_manifests/<dataset>.json`` (shipped
inside the package so that an installed rsmm finds it). Its shape::

    {
      "name": "meterml",
      "description": "...",
      "classes": ["CAFOs", ...],
      "modalities": {
        "s2": {
          "sensor": "s2",
          "bands": ["B01", ...],           # every band the dataset stores, in file order
          "units": "dn",                   # db | linear | dn | reflectance_x1e4
          "offset": 0,                     # added to stored values before units apply
          "processing_level": "L1C",
          "stats": {"B01": [mean, std], ...} | null,
          "stats_source": "where the numbers come from"
        }
      },
      "files": {...}                       # dataset-specific extras (split files, ...)
    }

Statistics are looked up *by band name*, so a subset of bands keeps the right numbers.
:func:`compute_band_stats` recomputes them from any dataset (``rsmm manifest stats``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from rsmm.errors import ConfigError, UnknownNameError
from rsmm.sensors import check_units, get_sensor

MANIFEST_PACKAGE = "rsmm.data_manifests"


@dataclass(frozen=True)
class ModalityInfo:
    """What a dataset stores for one modality."""

    sensor: str
    bands: tuple[str, ...]
    units: str
    offset: float = 0.0
    processing_level: str | None = None
    stats: dict[str, tuple[float, float]] | None = None
    stats_source: str | None = None

    def __post_init__(self) -> None:
        get_sensor(self.sensor).check_bands(self.bands)
        check_units(self.units)

    def mean_std(self, bands: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-band mean and std for ``bands`` (looked up by name).

        Raises:
            ValueError: if the manifest holds no statistics for some band.
        """
        if self.stats is None:
            raise ConfigError(
                f"no band statistics for sensor {self.sensor!r} in this manifest "
                f"({self.stats_source or 'none published'}); compute them with "
                "`rsmm manifest stats`"
            )
        missing = [b for b in bands if b not in self.stats]
        if missing:
            raise ConfigError(f"no statistics for band(s) {missing} of sensor {self.sensor!r}")
        mean = torch.tensor([self.stats[b][0] for b in bands], dtype=torch.float32)
        std = torch.tensor([self.stats[b][1] for b in bands], dtype=torch.float32)
        return mean, std


@dataclass(frozen=True)
class DatasetManifest:
    """A parsed dataset manifest."""

    name: str
    classes: tuple[str, ...]
    modalities: dict[str, ModalityInfo]
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def modality(self, key: str) -> ModalityInfo:
        """Info on modality ``key``; raises a clear ``KeyError`` for an unknown one."""
        try:
            return self.modalities[key]
        except KeyError:
            raise UnknownNameError(
                f"dataset {self.name!r} has no modality {key!r}; available: "
                f"{', '.join(self.modalities)}"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (inverse of :func:`parse_manifest`)."""
        mods = {}
        for key, info in self.modalities.items():
            mods[key] = {
                "sensor": info.sensor,
                "bands": list(info.bands),
                "units": info.units,
                "offset": info.offset,
                "processing_level": info.processing_level,
                "stats": None
                if info.stats is None
                else {b: [float(m), float(s)] for b, (m, s) in info.stats.items()},
                "stats_source": info.stats_source,
            }
        return {
            "name": self.name,
            "description": self.description,
            "classes": list(self.classes),
            "modalities": mods,
            **self.extra,
        }


def parse_manifest(data: Mapping[str, Any], source: str = "<dict>") -> DatasetManifest:
    """Build a :class:`DatasetManifest` from its JSON form, naming ``source`` on errors."""
    try:
        modalities = {}
        for key, m in data["modalities"].items():
            stats = m.get("stats")
            modalities[key] = ModalityInfo(
                sensor=m["sensor"],
                bands=tuple(m["bands"]),
                units=m["units"],
                offset=float(m.get("offset", 0.0)),
                processing_level=m.get("processing_level"),
                stats=None
                if stats is None
                else {b: (float(v[0]), float(v[1])) for b, v in stats.items()},
                stats_source=m.get("stats_source"),
            )
        known = {"name", "description", "classes", "modalities"}
        return DatasetManifest(
            name=data["name"],
            classes=tuple(data.get("classes", ())),
            modalities=modalities,
            description=data.get("description", ""),
            extra={k: v for k, v in data.items() if k not in known},
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"invalid dataset manifest {source}: {err}") from err


def load_manifest(name_or_path: str | Path) -> DatasetManifest:
    """Load a packaged manifest by dataset name, or any manifest JSON file by path."""
    path = Path(name_or_path)
    # a directory is never a manifest: `bigearthnet` is the packaged one even when the
    # working directory holds a data folder of that name
    if path.suffix == ".json" or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"manifest file not found: {path}")
        return parse_manifest(json.loads(path.read_text()), str(path))
    res = resources.files(MANIFEST_PACKAGE).joinpath(f"{name_or_path}.json")
    if not res.is_file():
        available = sorted(
            p.name[: -len(".json")]
            for p in resources.files(MANIFEST_PACKAGE).iterdir()
            if p.name.endswith(".json")
        )
        raise UnknownNameError(f"no packaged manifest {name_or_path!r}; available: {', '.join(available)}")
    return parse_manifest(json.loads(res.read_text()), f"{MANIFEST_PACKAGE}/{name_or_path}.json")


def compute_band_stats(
    samples: Iterable[Mapping[str, Any]], bands: Mapping[str, Sequence[str]]
) -> dict[str, dict[str, tuple[float, float]]]:
    """Per-band mean and standard deviation over every valid pixel of ``samples``.

    Non-finite pixels (NaN borders of S1 scenes) are ignored. Sums are accumulated in
    float64 so that millions of pixels do not lose precision.

    Args:
        samples: iterable of rsmm sample dicts (e.g. a dataset).
        bands: ``{modality: band names in channel order}`` of the samples.

    Returns:
        ``{modality: {band: (mean, std)}}``.
    """
    acc: dict[str, list[torch.Tensor]] = {}
    for sample in samples:
        for mod, names in bands.items():
            x = sample[mod].to(torch.float64).reshape(len(names), -1)
            valid = torch.isfinite(x)
            x = torch.where(valid, x, torch.zeros_like(x))
            n, s, ss = valid.sum(1), x.sum(1), (x * x).sum(1)
            if mod not in acc:
                acc[mod] = [n.to(torch.float64), s, ss]
            else:
                acc[mod][0] += n
                acc[mod][1] += s
                acc[mod][2] += ss
    if not acc:
        raise ConfigError("cannot compute band statistics: the dataset has no samples")
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for mod, (n, s, ss) in acc.items():
        mean = s / n.clamp_min(1)
        var = (ss / n.clamp_min(1) - mean * mean).clamp_min(0)
        out[mod] = {b: (float(mean[i]), float(math.sqrt(var[i]))) for i, b in enumerate(bands[mod])}
    return out
