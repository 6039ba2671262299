"""The description of a user's co-registered stack: folders, sensors, bands, units.

A :class:`StackSpec` says, per modality, where the GeoTIFFs are, which sensor they
come from, which bands they store (in file order, or one file per band), in which
units, at which target ground sample distance (GSD) they are read, and which value
marks nodata; plus the chip geometry, the labels, the split and the filters. It comes
from a small YAML file (:func:`load_spec`) or from command-line folders
(:func:`spec_from_dirs`)::

    crs: auto                  # default: each chip in its UTM zone; EPSG:32618: one CRS
    chip_size: 600m            # or 60px (pixels of S2, else of the first modality)
    stride: 600m
    max_days: 10               # optional: intersect acquisitions in time
    modalities:
      s2: {root: s2/, sensor: s2, bands: [B02, B03, B04, B08], units: reflectance_x1e4}
      s1: {root: s1/, units: db, bands: [VV, VH, "-"]}   # "-": a band to skip (angle)
      naip: {root: naip/, required: false}   # chips also where NAIP is missing
    labels: {path: labels.gpkg, column: class, layer: fields}
    # multi-label: {path: ..., multilabel: true, min_class_fraction: 0.1}, or per-patch
    # files: {path: "*_labels_metadata.json", per_patch: true, nomenclature: 19}
    split: [0.7, 0.15, 0.15]
    block_size: 2400m
    guard: chips               # or edges: the guard band between splits (rsmm.stacks.splits)
    max_nodata: 0.1
    cloud: {root: s2_scl/, kind: scl}
    max_cloud: 0.3             # an optional S2 turns absent on cloudier chips
    min_modalities: 2          # optional: drop chips covered by fewer modalities
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rsmm.errors import ConfigError
from rsmm.parsing import yaml_problem
from rsmm.sensors import check_units, get_sensor
from rsmm.stacks.offsets import check_offsets

#: Units a SAR modality may be stored in.
SAR_UNITS = ("db", "linear")
#: Cloud layer kinds: Sentinel-2 scene classification, the L1C QA60 bit mask, or any 0/1 mask.
CLOUD_KINDS = ("scl", "qa60", "mask")
#: SCL classes counted as cloud: cloud shadow, cloud medium/high probability, thin cirrus.
SCL_CLOUD_VALUES = (3, 8, 9, 10)
RESAMPLING = ("nearest", "bilinear", "cubic", "average")
#: Band name marking a band of a multi-band file that is not read (``VV,VH,-``).
SKIP_BAND = "-"


def parse_length(text: str | float | int, name: str) -> tuple[float, str]:
    """Parse ``"640m"`` / ``"64px"`` / ``640`` into ``(value, "m" | "px")``.

    A bare number means metres.

    Raises:
        ValueError: naming the parameter for anything else, or a non-positive size.
    """
    if isinstance(text, int | float):
        value, unit = float(text), "m"
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(m|px)?\s*", str(text))
        if m is None:
            raise ConfigError(f"{name}: expected a length such as 640m or 64px, got {text!r}")
        value, unit = float(m.group(1)), m.group(2) or "m"
    if value <= 0:
        raise ConfigError(f"{name}: must be > 0, got {text!r}")
    return value, unit


@dataclass(frozen=True)
class ModalitySpec:
    """One modality of a stack.

    Attributes:
        key: modality key of the samples (``"s1"``, ``"s2"``, ``"naip"``).
        root: folder searched recursively for ``glob``.
        sensor: sensor name of :mod:`rsmm.sensors` (default: the key).
        bands: stored band names: in file order for multi-band files, with ``"-"``
            for a band not to read (``VV, VH, -`` for a GEE Sentinel-1 export with an
            incidence-angle band, ``..., B12, -`` for an S2 stack carrying SCL), or the
            bands to read for one-file-per-band products (``None``: guessed from the files).
        separate_files: one file per band, the band name a token of the file name
            (``scene_VV.tif``); ``None``: detected from the file names.
        units: ``db`` | ``linear`` | ``dn`` | ``reflectance_x1e4``.
        offset: added to stored values before the units apply (S2 baseline 04.00:
            -1000); ``None``: the products' own (SAFE metadata), else 0.
        offsets: ``{pattern: offset}`` per product or file, overriding ``offset`` and
            the products' own: a pattern is a SAFE product's name or a glob matched
            against product names, ``.SAFE`` / ``.zip`` and file names and paths
            (``S2*_MSIL1C_*: 0``; :mod:`rsmm.stacks.offsets`); one matching no file is an
            error. L1C and L2A products mix in one modality only when every product's
            offset is given here or by ``offset``.
        gsd: target ground sample distance in metres (``None``: the sensor registry's
            finest band GSD, or the files' own for NAIP).
        nodata: value marking missing pixels (``None``: the files' own nodata; NaN
            always counts as missing).
        glob: file pattern searched under ``root`` (``None``: every raster GDAL reads
            by suffix, ``.tif``, ``.tiff``, ``.jp2``, ``.vrt``, and Sentinel-2 SAFE
            products, :mod:`rsmm.stacks.products`).
        resampling: ``nearest`` (keeps stored values, the default), ``bilinear``, ...
        use_time: whether ``max_days`` applies to this modality (default: Sentinel-1
            and Sentinel-2 only; aerial surveys such as NAIP are years apart).
        required: chips are laid over the overlap of the required modalities and
            dropped when one misses more than ``max_nodata``; an optional modality
            (``False``) is read where it covers a chip and recorded as not covering
            it elsewhere (the manifest's ``modalities`` column).
    """

    key: str
    root: str
    sensor: str | None = None
    bands: tuple[str, ...] | None = None
    separate_files: bool | None = None
    units: str | None = None
    offset: float | None = None
    offsets: dict[str, float] | None = None
    gsd: float | None = None
    nodata: float | None = None
    glob: str | None = None
    resampling: str = "nearest"
    use_time: bool | None = None
    required: bool = True

    def __post_init__(self) -> None:
        sensor = get_sensor(self.sensor or self.key)
        if self.use_time is None:
            object.__setattr__(self, "use_time", sensor.name in ("s1", "s2"))
        object.__setattr__(self, "sensor", sensor.name)
        if self.bands is not None:
            bands = tuple(str(b).strip() for b in self.bands)
            named = tuple(b for b in bands if b != SKIP_BAND)
            if not named:
                raise ConfigError(f"{self.key}: bands: no band to read in {list(bands)}")
            if len(named) < len(bands) and self.separate_files:
                raise ConfigError(
                    f"{self.key}: bands: {SKIP_BAND!r} skips a band of multi-band files; "
                    "with one file per band, list only the bands to read"
                )
            sensor.check_bands(named)
            object.__setattr__(self, "bands", bands)
        units = self.units or default_units(sensor.name)
        check_units(units)
        if sensor.is_sar and units not in SAR_UNITS:
            raise ConfigError(f"{self.key}: SAR units must be db or linear, got {units!r}")
        object.__setattr__(self, "units", units)
        if self.gsd is not None and self.gsd <= 0:
            raise ConfigError(f"{self.key}: gsd must be > 0, got {self.gsd}")
        if self.offsets is not None:
            object.__setattr__(self, "offsets", check_offsets(self.offsets, self.key))
        if self.resampling not in RESAMPLING:
            raise ConfigError(
                f"{self.key}: resampling must be one of {', '.join(RESAMPLING)}, "
                f"got {self.resampling!r}"
            )
        if not isinstance(self.required, bool):
            raise ConfigError(f"{self.key}: required must be true or false, got {self.required!r}")

    @property
    def named_bands(self) -> tuple[str, ...] | None:
        """The band names to read, without the skipped (``"-"``) positions."""
        return None if self.bands is None else tuple(b for b in self.bands if b != SKIP_BAND)


@dataclass(frozen=True)
class CloudSpec:
    """A cloud / scene-classification layer (S2 SCL, QA60 or a 0/1 mask)."""

    root: str
    kind: str = "scl"
    glob: str = "*.tif"

    def __post_init__(self) -> None:
        if self.kind not in CLOUD_KINDS:
            raise ConfigError(
                f"cloud layer kind must be one of {', '.join(CLOUD_KINDS)}, got {self.kind!r}"
            )


#: File-name pattern of BigEarthNet's per-patch label files.
LABEL_FILES_PATTERN = "*_labels_metadata.json"
#: Class nomenclatures of per-patch label files: CORINE level 3 (43) or BigEarthNet's 19.
NOMENCLATURES = ("43", "19")


@dataclass(frozen=True)
class LabelSpec:
    """Labels: a vector file with a class column, a label raster, or per-patch label files.

    Attributes:
        path: GeoPackage / GeoJSON / Shapefile, or a GeoTIFF of class values; with
            ``per_patch``, the file-name pattern of the label files
            (``*_labels_metadata.json``).
        column: class column of a vector file.
        layer: layer of a multi-layer file (GeoPackage).
        classes: class names in id order (default: sorted distinct values found).
        min_cover: polygons and rasters: the majority class must cover at least this
            fraction of a chip, else the chip is unlabelled.
        multilabel: every class covering at least ``min_class_fraction`` of a chip
            labels it (polygons, rasters); per-patch label files are always multi-label.
        min_class_fraction: multi-label polygons and rasters: the least fraction of a
            chip a class must cover.
        per_patch: JSON label files (``{"labels": [class names]}``) in the folders of
            the reference modality's files: a chip takes the labels of the patches
            it is read from (:mod:`rsmm.stacks.label_files`).
        nomenclature: per-patch files of CORINE classes: ``"43"`` (as stored) or
            ``"19"`` (BigEarthNet's 19-class nomenclature); ``None``: as stored.
    """

    path: str
    column: str | None = None
    layer: str | None = None
    classes: tuple[str, ...] | None = None
    min_cover: float = 0.5
    multilabel: bool = False
    min_class_fraction: float = 0.1
    per_patch: bool = False
    nomenclature: str | None = None

    def __post_init__(self) -> None:
        if self.per_patch:
            object.__setattr__(self, "multilabel", True)
        if not 0 < self.min_class_fraction <= 1:
            raise ConfigError(
                f"min_class_fraction must be in (0, 1], got {self.min_class_fraction}"
            )
        if self.nomenclature is not None:
            object.__setattr__(self, "nomenclature", str(self.nomenclature))
            if self.nomenclature not in NOMENCLATURES:
                raise ConfigError(
                    f"label nomenclature must be one of {', '.join(NOMENCLATURES)}, "
                    f"got {self.nomenclature!r}"
                )
            if not self.per_patch:
                raise ConfigError("a label nomenclature applies to per-patch label files only")

    @property
    def is_raster(self) -> bool:
        return not self.per_patch and Path(self.path).suffix.lower() in (".tif", ".tiff", ".vrt")


@dataclass(frozen=True)
class StackSpec:
    """Everything ``rsmm manifest build`` needs (see the module docstring)."""

    modalities: dict[str, ModalitySpec]
    chip_size: tuple[float, str] = (600.0, "m")
    stride: tuple[float, str] | None = None
    crs: str | None = None
    max_days: float | None = None
    labels: LabelSpec | None = None
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    block_size: tuple[float, str] | None = None
    seed: int = 0
    max_nodata: float = 0.1
    cloud: CloudSpec | None = None
    max_cloud: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: guard-band mode of the spatial split: "chips" or "edges" (rsmm.stacks.splits)
    guard: str = "chips"
    #: drop the chips covered by fewer modalities (None: no such limit)
    min_modalities: int | None = None

    def __post_init__(self) -> None:
        if not self.modalities:
            raise ConfigError("a stack needs at least one modality folder")
        if not any(m.required for m in self.modalities.values()):
            raise ConfigError(
                f"every modality ({', '.join(self.modalities)}) is optional; at least one "
                "must be required (chips are laid over the required modalities' overlap)"
            )
        if len(self.split) != 3 or any(f < 0 for f in self.split):
            raise ConfigError(f"split: three non-negative fractions expected, got {self.split}")
        if abs(sum(self.split) - 1) > 1e-6:
            raise ConfigError(f"split: fractions must sum to 1, got {self.split}")
        if not 0 <= self.max_nodata <= 1:
            raise ConfigError(f"max_nodata must be in [0, 1], got {self.max_nodata}")
        if self.max_cloud is not None and not 0 <= self.max_cloud <= 1:
            raise ConfigError(f"max_cloud must be in [0, 1], got {self.max_cloud}")
        if self.max_cloud is not None and self.cloud is None:
            raise ConfigError("max_cloud needs a cloud layer (--cloud-layer)")
        if self.max_days is not None and self.max_days < 0:
            raise ConfigError(f"max_days must be >= 0, got {self.max_days}")
        if self.guard not in ("chips", "edges"):
            raise ConfigError(f"guard: expected chips or edges, got {self.guard!r}")
        if self.min_modalities is not None and not (
            isinstance(self.min_modalities, int)
            and not isinstance(self.min_modalities, bool)
            and 1 <= self.min_modalities <= len(self.modalities)
        ):
            raise ConfigError(
                f"min_modalities must be an integer in [1, {len(self.modalities)}] (the "
                f"number of modalities), got {self.min_modalities!r}"
            )

    def with_paths_relative_to(self, base: str | Path) -> StackSpec:
        """Resolve relative folders and files against ``base`` (the YAML file's folder)."""
        base = Path(base)

        def fix(p: str) -> str:
            return str(p if Path(p).is_absolute() else base / p)

        mods = {k: replace(m, root=fix(m.root)) for k, m in self.modalities.items()}
        labels = self.labels
        if labels is not None and not labels.per_patch:  # per_patch: a file-name pattern
            labels = replace(labels, path=fix(labels.path))
        cloud = None if self.cloud is None else replace(self.cloud, root=fix(self.cloud.root))
        return replace(self, modalities=mods, labels=labels, cloud=cloud)


def default_units(sensor: str) -> str:
    """Units assumed when none are given: dB for S1, reflectance x 1e4 for S2, DN else."""
    return {"s1": "db", "s2": "reflectance_x1e4"}.get(sensor, "dn")


def _length(value: Any, name: str) -> tuple[float, str] | None:
    return None if value is None else parse_length(value, name)


def spec_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> StackSpec:
    """Build a :class:`StackSpec` from its YAML form, naming ``source`` on errors."""
    if not isinstance(data, Mapping) or not isinstance(data.get("modalities"), Mapping):
        raise ConfigError(f"stack spec {source}: needs a 'modalities' mapping")
    fields = {f for f in StackSpec.__dataclass_fields__ if f != "extra"}
    unknown_top = sorted(set(data) - fields)
    if unknown_top:  # a typo must not silently fall back to a default
        raise ConfigError(
            f"stack spec {source}: unknown keys {unknown_top}; known: {', '.join(sorted(fields))}"
        )
    known = {f for f in ModalitySpec.__dataclass_fields__ if f != "key"}
    mods = {}
    for key, m in data["modalities"].items():
        if isinstance(m, str):
            m = {"root": m}
        unknown = set(m) - known
        if unknown:
            raise ConfigError(f"stack spec {source}: unknown keys {sorted(unknown)} for {key!r}")
        if "root" not in m:
            raise ConfigError(f"stack spec {source}: modality {key!r} needs a 'root' folder")
        kw = dict(m)
        if isinstance(kw.get("bands"), str):
            kw["bands"] = kw["bands"].split(",")
        if kw.get("bands") is not None:
            if not all(isinstance(b, str) for b in kw["bands"]):
                raise ConfigError(
                    f"stack spec {source}: bands of {key!r} must be names (quote a skipped "
                    f'band: "-"), got {kw["bands"]!r}'
                )
            kw["bands"] = tuple(kw["bands"])
        mods[key] = ModalitySpec(key=key, **kw)
    labels = data.get("labels")
    if isinstance(labels, str):
        labels = {"path": labels}
    if labels is not None:
        labels = dict(labels)
        if labels.get("classes") is not None:
            labels["classes"] = tuple(str(c) for c in labels["classes"])
    cloud = data.get("cloud")
    if isinstance(cloud, str):
        cloud = {"root": cloud}
    split = data.get("split", (0.7, 0.15, 0.15))
    if isinstance(split, str):
        split = parse_fractions(split)
    try:
        return StackSpec(
            modalities=mods,
            chip_size=parse_length(data.get("chip_size", "600m"), "chip_size"),
            stride=_length(data.get("stride"), "stride"),
            crs=data.get("crs"),
            max_days=data.get("max_days"),
            labels=None if labels is None else LabelSpec(**labels),
            split=tuple(float(f) for f in split),
            block_size=_length(data.get("block_size"), "block_size"),
            seed=int(data.get("seed", 0)),
            max_nodata=float(data.get("max_nodata", 0.1)),
            cloud=None if cloud is None else CloudSpec(**cloud),
            max_cloud=data.get("max_cloud"),
            guard=str(data.get("guard", "chips")),
            min_modalities=data.get("min_modalities"),
        )
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:  # an unknown key, a value of the wrong type
        raise ConfigError(f"stack spec {source}: {err}") from err


def load_spec(path: str | Path) -> StackSpec:
    """Read a stack spec YAML; relative folders are relative to the YAML file.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: for invalid YAML or an invalid spec (the message names the file).
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"stack spec not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"invalid stack spec {yaml_problem(err, path)}") from err
    return spec_from_dict(data, str(path)).with_paths_relative_to(path.parent)


def parse_fractions(text: str) -> tuple[float, float, float]:
    """``"0.7,0.15,0.15"`` -> ``(0.7, 0.15, 0.15)``."""
    try:
        parts = tuple(float(p) for p in str(text).split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3:
        raise ConfigError(f"split: expected three fractions such as 0.7,0.15,0.15, got {text!r}")
    return parts  # type: ignore[return-value]


def check_optional(optional: Sequence[str] | str, modalities: Any, name: str) -> tuple[str, ...]:
    """Modality keys marked optional (a sequence or a comma list), checked against ``modalities``.

    Raises:
        ValueError: naming ``name`` (the parameter) and the unknown key.
    """
    items = [optional] if isinstance(optional, str) else list(optional)
    keys = tuple(k.strip() for item in items for k in str(item).split(",") if k.strip())
    unknown = [k for k in keys if k not in modalities]
    if unknown:
        raise ConfigError(
            f"{name}: {', '.join(unknown)} is not a modality of the stack "
            f"(modalities: {', '.join(modalities)})"
        )
    return keys


def spec_from_dirs(
    dirs: Mapping[str, str | Path],
    units: Mapping[str, str] | None = None,
    bands: Mapping[str, Sequence[str]] | None = None,
    optional: Sequence[str] = (),
    **kwargs: Any,
) -> StackSpec:
    """A spec from ``{modality: folder}`` (the sensor is the modality key).

    Args:
        dirs: ``{"s1": folder, "s2": folder, "naip": folder}``.
        units: optional ``{modality: units}``.
        bands: optional ``{modality: band names}`` (``"-"`` skips a band of the files).
        optional: modalities that need not cover every chip (see
            :attr:`ModalitySpec.required`).
        **kwargs: other :class:`StackSpec` fields (``chip_size`` as ``"640m"`` etc.).

    Raises:
        ValueError: for an optional modality that is not among ``dirs``.
    """
    units, bands = dict(units or {}), dict(bands or {})
    optional = check_optional(optional, dirs, "optional")
    mods = {
        k: ModalitySpec(
            key=k,
            root=str(d),
            units=units.get(k),
            bands=None if bands.get(k) is None else tuple(bands[k]),
            required=k not in optional,
        )
        for k, d in dirs.items()
    }
    for name in ("chip_size", "stride", "block_size"):
        if isinstance(kwargs.get(name), str | int | float):
            kwargs[name] = parse_length(kwargs[name], name)
    return StackSpec(modalities=mods, **kwargs)
