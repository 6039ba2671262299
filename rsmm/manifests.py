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

from rsmm.errors import ConfigError, DatasetFileError, DatasetNotFoundError, UnknownNameError
from rsmm.parsing import describe, mapping, read_json
from rsmm.parsing import field as require
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


def _parse_stats(value: Any, source: str, where: str) -> dict[str, tuple[float, float]] | None:
    if value is None:
        return None
    try:
        return {
            str(b): (float(v[0]), float(v[1])) for b, v in mapping(value, source, where).items()
        }
    except (TypeError, ValueError, IndexError, KeyError):
        raise ConfigError(
            f"{source}: {where}: expected {{band: [mean, std]}}, got {describe(value)}"
        ) from None


def parse_manifest(data: Mapping[str, Any], source: str = "<dict>") -> DatasetManifest:
    """Build a :class:`DatasetManifest` from its JSON form.

    Raises:
        ConfigError: naming ``source`` and the field that is missing or mistyped
            (``modalities.s2.bands: expected a list, got str 'B02'``).
    """
    data = mapping(data, source)
    modalities = {}
    for key, m in require(data, "modalities", dict, source).items():
        where = f"modalities.{key}"
        m = mapping(m, source, where)
        bands = require(m, "bands", list, source, where)
        if not all(isinstance(b, str) for b in bands):
            raise ConfigError(f"{source}: {where}.bands: expected band names, got {bands!r}")
        modalities[key] = ModalityInfo(
            sensor=require(m, "sensor", str, source, where),
            bands=tuple(bands),
            units=require(m, "units", str, source, where),
            offset=float(require(m, "offset", float, source, where, required=False) or 0.0),
            processing_level=require(
                m, "processing_level", (str, type(None)), source, where, required=False
            ),
            stats=_parse_stats(m.get("stats"), source, f"{where}.stats"),
            stats_source=require(
                m, "stats_source", (str, type(None)), source, where, required=False
            ),
        )
    classes = require(data, "classes", list, source, required=False) or ()
    known = {"name", "description", "classes", "modalities"}
    return DatasetManifest(
        name=require(data, "name", str, source),
        classes=tuple(str(c) for c in classes),
        modalities=modalities,
        description=require(data, "description", str, source, required=False) or "",
        extra={k: v for k, v in data.items() if k not in known},
    )


def load_manifest(name_or_path: str | Path) -> DatasetManifest:
    """Load a packaged manifest by dataset name, or any manifest JSON file by path.

    A bare packaged name (``"meterml"``) is the packaged manifest even where the working
    directory holds a ``meterml/`` dataset folder.

    Raises:
        DatasetNotFoundError: for a manifest path that is not a file.
        UnknownNameError: for a name that is neither a packaged manifest nor a file.
    """
    path = Path(name_or_path)
    res = resources.files(MANIFEST_PACKAGE).joinpath(f"{path.name}.json")
    packaged = len(path.parts) == 1 and res.is_file()
    if path.suffix == ".json" or len(path.parts) > 1 or (path.exists() and not packaged):
        if not path.is_file():
            raise DatasetNotFoundError(f"manifest file not found: {path}")
        return parse_manifest(read_json(path, "dataset manifest"), str(path))
    if not res.is_file():
        available = sorted(
            p.name[: -len(".json")]
            for p in resources.files(MANIFEST_PACKAGE).iterdir()
            if p.name.endswith(".json")
        )
        raise UnknownNameError(
            f"no packaged manifest {name_or_path!r}; available: {', '.join(available)}"
        )
    return parse_manifest(json.loads(res.read_text()), f"{MANIFEST_PACKAGE}/{name_or_path}.json")


def compute_band_stats(
    samples: Iterable[Mapping[str, Any]], bands: Mapping[str, Sequence[str]]
) -> dict[str, dict[str, tuple[float, float]]]:
    """Per-band mean and standard deviation over every valid pixel of ``samples``.

    Non-finite pixels (NaN borders of S1 scenes) are ignored, and so are the pixels a
    dataset filled (``sample["meta"]["nodata"]``, see :func:`rsmm.io.fill_nonfinite`)
    where a sample's whole modality was missing. Sums are accumulated in float64 so
    that millions of pixels do not lose precision.

    Args:
        samples: iterable of rsmm sample dicts (e.g. a dataset).
        bands: ``{modality: band names in channel order}`` of the samples.

    Returns:
        ``{modality: {band: (mean, std)}}``.

    Raises:
        ConfigError: if there is no sample.
        DatasetFileError: for a band without a valid pixel (all NaN or nodata) or with
            a standard deviation of 0, naming the band, the valid pixels and the
            samples without any.
    """
    acc: dict[str, list[torch.Tensor]] = {}
    empty: dict[str, list[str]] = {}  # ids of the samples whose modality was all missing
    seen = 0
    filled: dict[str, int] = {}  # pixels the dataset filled in, per modality
    for seen, sample in enumerate(samples, 1):
        meta = sample.get("meta") or {}
        for mod, names in bands.items():
            if mod not in sample:  # the sample lacks the modality: nothing to count
                continue
            x = sample[mod].to(torch.float64).reshape(len(names), -1)
            valid = torch.isfinite(x)
            missing = int((meta.get("nodata") or {}).get(mod, 0))
            filled[mod] = filled.get(mod, 0) + missing
            if missing >= x.numel():
                valid = torch.zeros_like(valid)  # filled in: no pixel was read
                empty.setdefault(mod, []).append(str(meta.get("id", seen - 1)))
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
    absent = [m for m in bands if m not in acc]
    if absent:
        raise DatasetFileError(
            f"cannot compute band statistics of {absent}: none of the "
            f"{seen} samples has that modality"
        )
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for mod, (n, s, ss) in acc.items():
        mean = s / n.clamp_min(1)
        var = (ss / n.clamp_min(1) - mean * mean).clamp_min(0)
        out[mod] = {b: (float(mean[i]), float(math.sqrt(var[i]))) for i, b in enumerate(bands[mod])}
        for i, b in enumerate(bands[mod]):
            m, sd, count = out[mod][b][0], out[mod][b][1], int(n[i])
            if count and sd > 1e-6 * max(1.0, abs(m)):
                continue
            if not count:
                why = "no valid pixel (all NaN or nodata)"
            else:
                why = f"a standard deviation of 0 (every one of its {count} valid pixels is {m:g})"
            ids = empty.get(mod, [])
            if ids:
                more = ", ..." if len(ids) > 3 else ""
                why += f"; {len(ids)} of the {seen} samples have no valid {mod} pixel: "
                why += ", ".join(ids[:3]) + more
            elif filled.get(mod):
                why += f"; {filled[mod]} {mod} pixel values were missing (NaN or nodata) and filled"
            raise DatasetFileError(
                f"band {mod}/{b} has {why} (over {seen} samples), so it cannot be normalised"
            )
    return out
