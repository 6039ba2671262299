"""The GeoParquet chip index of a stack: format, reading, writing, summary and map.

One row per chip::

    geometry         chip polygon in the manifest CRS (GeoParquet "geo" metadata):
                     EPSG:4326 for per-zone chips (``chip_crs`` "auto"), else the one
                     CRS every chip is in
    chip_id          "x<col>_y<row>" on the chip grid (stride units from the top-left);
                     per-zone chips: "<EPSG code>_<xmin>_<ymax>" in their zone's metres
    crs              the chip's own CRS ("EPSG:32633"), where it is square and read
    xmin ymin        the chip's square in its own CRS (float64 metres); a chip is read
    xmax ymax        as chip_pixels x chip_pixels over these bounds
    split            "train" | "val" | "test"
    block            spatial block id (see :mod:`rsmm.stacks.splits`)
    label            int64 class id, -1 = unlabelled
    class_name       class name, or None
    labels           multi-label stacks only: JSON list of the chip's class ids (sorted);
                     ``label`` is then the class covering the largest part, or -1
    modalities       comma-separated modalities covering the chip ("s2,s1,naip"): every
                     required one, and each optional one missing at most max_nodata
    nodata_<m>       fraction of the chip's pixels missing in modality m (NaN: no file
                     of an optional modality m over the chip)
    cloud_fraction   cloudy fraction (when a cloud layer was given)
    date_<m>         acquisition date YYYY-MM-DD (when the files carry dates)
    files_<m>        JSON list of the files read for the chip, relative to the
                     manifest's folder ("{band}" stands for the band of per-band files);
                     "[]" where an optional modality m does not cover the chip

and a JSON blob under the key ``rsmm`` of the Parquet schema metadata::

    {"format_version": 2, "rsmm_version": ..., "crs": CRS of the geometry column,
     "chip_crs": "auto" (each chip in the UTM zone of its centre) or "EPSG:...",
     "zones": ["EPSG:326xx", ...] (auto) or null, "zone_chips": {zone: chips} (auto),
     "block_crs": CRS of the block grid ("EPSG:6933", equal-area, for auto), "crs_source": ...,
     "reference": modality whose pixel grid anchors the chips, "chip_size_m": ...,
     "stride_m": ..., "block_size_m": ..., "split_fractions": [...], "seed": ...,
     "modalities": {m: {"root", "sensor", "bands", "band_indexes", "units", "offset",
                        "gsd", "chip_pixels", "nodata", "resampling", "separate_files",
                        "required"}},
     "classes": [...], "multilabel": bool, "label_source": ..., "stats": {m: {band: [mean, std]}},
     "stats_source": ..., "stats_chips": {m: train chips the stats of m come from},
     "dropped": {reason: count}, "max_nodata": ...,
     "ignored": {m: [{"path", "reason"}]}, ...}

Version 1 manifests (one CRS, no ``crs``/``xmin``... columns) are read with those
columns filled from ``crs`` and the geometry. Bands coarser than a modality's ``gsd``
(Sentinel-2's 20 m and 60 m bands at 10 m) are resampled with its ``resampling``; they
are listed per modality in ``resampled_bands`` (``{band: {"gsd", "whole_pixels"}}``:
``whole_pixels`` false when the chip is no whole number of the band's native pixels).

``band_indexes`` are the 1-based positions of ``bands`` in multi-band files whose
spec skips some bands (``VV,VH,-``), ``null`` when every band is read. ``ignored`` lists the files under a modality's folder that were not used (no band
name in the file name, an acquisition missing a band, a band not read).

File paths are stored relative to the manifest's folder, so a data tree can move with
its manifest; a path that has no relative form (another drive) stays absolute.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rsmm.atomic import (
    atomic_path,
    commit,
    disk_full_error,
    is_disk_full,
    remove_stale,
    temp_path,
)
from rsmm.errors import ConfigError, DatasetNotFoundError
from rsmm.manifests import DatasetManifest, ModalityInfo
from rsmm.parsing import field as require
from rsmm.parsing import mapping
from rsmm.stacks.files import absolute_path, relative_path
from rsmm.stacks.splits import SPLITS

FORMAT_VERSION = 2
#: Format versions :func:`read_manifest` reads.
READABLE_VERSIONS = (1, 2)
META_KEY = b"rsmm"
#: Ignored files named in :meth:`ChipManifest.summary` (all are in the metadata).
SUMMARY_FILES = 5


@dataclass
class ChipManifest:
    """A chip index in memory: ``chips`` (GeoDataFrame) and file-level ``meta``.

    ``files_<m>`` columns hold absolute paths in memory.
    """

    chips: Any
    meta: dict[str, Any]
    path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def modalities(self) -> list[str]:
        return list(self.meta["modalities"])

    @property
    def classes(self) -> list[str]:
        return list(self.meta.get("classes") or [])

    @property
    def optional(self) -> list[str]:
        """The optional modalities (those that need not cover every chip)."""
        return [m for m, i in self.meta["modalities"].items() if not i.get("required", True)]

    def covers(self, modalities: Sequence[str]) -> np.ndarray:
        """Boolean mask of the chips covered by every modality of ``modalities``."""
        want = set(modalities)
        return np.array([want <= have for have in coverage(self.chips)], dtype=bool)

    def files(self, row: int, modality: str) -> list[str]:
        """Files of modality ``modality`` read for chip ``row`` (``{band}`` templates)."""
        return json.loads(self.chips[f"files_{modality}"].iat[row])

    def dataset_manifest(self) -> DatasetManifest:
        """The :class:`~rsmm.manifests.DatasetManifest` of the stack (bands, units, stats)."""
        stats = self.meta.get("stats") or {}
        mods = {}
        for m, info in self.meta["modalities"].items():
            s = stats.get(m)
            source = self.meta.get("stats_source")
            n = (self.meta.get("stats_chips") or {}).get(m)
            if s is not None and n is not None and not info.get("required", True):
                source = f"the {n} train chips of this manifest covered by {m}"
            mods[m] = ModalityInfo(
                sensor=info["sensor"],
                bands=tuple(info["bands"]),
                units=info["units"],
                offset=float(info.get("offset", 0.0)),
                stats=None if s is None else {b: (float(v[0]), float(v[1])) for b, v in s.items()},
                stats_source=source,
            )
        name = f"stack:{self.path.stem}" if self.path is not None else "stack"
        return DatasetManifest(
            name=name,
            classes=tuple(self.classes),
            modalities=mods,
            description=f"co-registered stack chip index {self.path or '(in memory)'}",
        )

    def summary(self) -> str:
        """Chips per split and per class, dropped chips and why (the CLI prints it)."""
        c = self.chips
        px = ", ".join(f"{m} {i['chip_pixels']} px" for m, i in self.meta["modalities"].items())
        zones = self.meta.get("zones")
        where = f"{len(zones)} UTM zone(s)" if zones else self.meta["crs"]
        lines = [f"{len(c)} chips of {self.meta['chip_size_m']:g} m in {where} ({px})"]
        if zones:  # the geometry's CRS is only for maps; each chip is in its zone
            lines.append(f"crs: {self.meta['crs_source']}; geometry in {self.meta['crs']}")
        elif self.meta.get("crs_source"):
            lines.append(f"crs: {self.meta['crs']} = {self.meta['crs_source']}")
        per_split = ", ".join(f"{s} {int((c['split'] == s).sum())}" for s in SPLITS)
        lines.append(f"splits: {per_split}")
        for m in self.optional:
            cov = self.covers([m])
            parts = ", ".join(
                f"{s} {int((cov & (c['split'] == s).to_numpy()).sum())}" for s in SPLITS
            )
            lines.append(
                f"optional {m}: covers {int(cov.sum())} of {len(c)} chips ({parts}); "
                f"CoRegisteredStack(modalities=[..., {m!r}]) keeps only those"
            )
        if self.classes and "labels" in c.columns:
            lines += self._multilabel_summary()
        elif self.classes:
            counts = {s: c.loc[c["split"] == s, "label"].to_numpy() for s in SPLITS}
            lines.append("class: " + " / ".join(SPLITS))
            for i, name in enumerate(self.classes):
                lines.append(
                    f"  {name}: " + " / ".join(str(int((v == i).sum())) for v in counts.values())
                )
            lines.append(
                "  unlabelled: " + " / ".join(str(int((v < 0).sum())) for v in counts.values())
            )
        dropped = self.meta.get("dropped") or {}
        if dropped:
            lines.append("dropped: " + "; ".join(f"{n} {r}" for r, n in dropped.items()))
        else:
            lines.append("dropped: none")
        lines += [f"warning: {w}" for w in self.meta.get("warnings") or ()]
        if "cloud_fraction" in c.columns:
            outside = int(c["cloud_fraction"].isna().sum())
            if outside:
                lines.append(
                    f"cloud: {outside} chips outside the cloud layer (cloud_fraction NaN, kept)"
                )
        ignored = [(m, f) for m, fs in (self.meta.get("ignored") or {}).items() for f in fs]
        if ignored:
            lines.append(
                f"ignored: {len(ignored)} files not used (all listed in the manifest "
                "metadata 'ignored'):"
            )
            for m, f in ignored[:SUMMARY_FILES]:
                lines.append(f"  {m}: {f['path']} ({f['reason']})")
            if len(ignored) > SUMMARY_FILES:
                lines.append(f"  ... and {len(ignored) - SUMMARY_FILES} more")
        fractions = self.meta.get("split_fractions") or []
        for s, f in zip(SPLITS, fractions, strict=False):
            if f > 0 and not (c["split"] == s).any():
                block = self.meta.get("block_size_m")
                lines.append(
                    f"warning: the {s} split is empty although its fraction is {f:g}: the "
                    f"area holds too few blocks of {block:g} m; lower --block-size"
                )
        return "\n".join(lines)

    def _multilabel_summary(self) -> list[str]:
        """Per class, the chips holding it per split; the classes no chip holds."""
        c = self.chips
        hot = np.zeros((len(c), len(self.classes)), dtype=bool)
        for i, v in enumerate(c["labels"]):
            hot[i, json.loads(v)] = True
        split = c["split"].to_numpy()
        lines = ["chips holding each class: " + " / ".join(SPLITS)]
        for k in np.flatnonzero(hot.any(0)):
            per = " / ".join(str(int(hot[split == s, k].sum())) for s in SPLITS)
            lines.append(f"  {self.classes[k]}: {per}")
        per = " / ".join(str(int((~hot[split == s].any(1)).sum())) for s in SPLITS)
        lines.append(f"  no class: {per}")
        absent = int((~hot.any(0)).sum())
        if absent:
            lines.append(f"  ({absent} of the {len(self.classes)} classes label no chip)")
        return lines

    def plot_map(self, footprints: dict[str, Any] | None = None):
        """Map of the chips coloured by split over the modality footprints."""
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch

        colours = {"train": "tab:blue", "val": "tab:orange", "test": "tab:green"}
        fig, ax = plt.subplots(figsize=(7, 6))
        for i, (m, geom) in enumerate((footprints or {}).items()):
            for poly in getattr(geom, "geoms", [geom]):
                x, y = poly.exterior.xy
                ax.plot(x, y, color=f"C{i + 3}", lw=1.2, label=f"{m} footprint")
        for s, colour in colours.items():
            part = self.chips[self.chips["split"] == s]
            if len(part):
                part.plot(ax=ax, facecolor=colour, edgecolor="k", linewidth=0.3, alpha=0.7)
        handles = [Patch(color=c, label=s) for s, c in colours.items()]
        handles += ax.get_legend_handles_labels()[0]
        ax.legend(handles=handles, loc="best", fontsize=8)
        ax.set_title(f"{len(self.chips)} chips, {self.meta['crs']}")
        ax.set_aspect("equal")
        fig.tight_layout()
        return fig


def _relative(path: str, base: Path) -> str:
    return relative_path(path, base)  # keeps /vsizip/ and subdataset names readable


def write_manifest(manifest: ChipManifest, path: str | Path) -> Path:
    """Write ``manifest`` as GeoParquet at ``path``, atomically (a temporary file beside
    it, ``fsync``, rename: :func:`rsmm.atomic.atomic_path`).

    File paths become relative to ``path``'s folder.

    Raises:
        DiskFullError: the disk or quota ran out (a previous file at ``path`` is unchanged).
    """
    import pyarrow.parquet as pq

    path = Path(path)
    base = path.resolve().parent
    chips = manifest.chips.copy()
    for m in manifest.modalities:
        col = f"files_{m}"
        chips[col] = [json.dumps([_relative(p, base) for p in json.loads(v)]) for v in chips[col]]
    meta = dict(manifest.meta)
    meta["modalities"] = {
        m: {**info, "root": _relative(info["root"], base)} for m, info in meta["modalities"].items()
    }
    with atomic_path(path) as tmp:
        chips.to_parquet(tmp, index=False)
        table = pq.read_table(tmp)
        table = table.replace_schema_metadata(
            {**(table.schema.metadata or {}), META_KEY: json.dumps(meta).encode()}
        )
        pq.write_table(table, tmp)
    manifest.path = path
    return path


def coverage(chips: Any) -> list[set[str]]:
    """The modalities covering each chip of a manifest table (its ``modalities`` column)."""
    return [set(str(v).split(",")) for v in chips["modalities"]]


def render_figure(fig, path: str | Path) -> Path:
    """Save a matplotlib figure to a temporary file next to ``path`` and close it.

    The caller moves the returned file onto ``path`` (:func:`rsmm.atomic.commit`) once
    every output is ready, or deletes it; nothing is left behind on an error here.

    Raises:
        DiskFullError: the disk or quota ran out (names ``path``).
    """
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path.parent)
    tmp = temp_path(path)
    try:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=120)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if is_disk_full(err):
            raise disk_full_error(path) from err
        raise
    finally:
        plt.close(fig)
    return tmp


def save_figure(fig, path: str | Path) -> Path:
    """Save a matplotlib figure atomically (a temporary file, ``fsync``, rename)."""
    tmp = render_figure(fig, path)
    try:
        commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return Path(path)


def check_output_path(path: str | Path, option: str) -> Path:
    """Check that ``path`` can be written (its folder exists or can be created).

    Raises:
        NotADirectoryError: naming ``option`` and the path when a parent is a file.
        IsADirectoryError: when ``path`` itself is a folder.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{option} {path} is a folder; give a file name")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(
                    f"{option} {path}: {parent} is a file, not a folder; choose another path"
                )
            break
    return path


def read_manifest(path: str | Path) -> ChipManifest:
    """Read a chip index written by :func:`write_manifest` (paths made absolute).

    Raises:
        DatasetNotFoundError: if ``path`` does not exist (a FileNotFoundError).
        ValueError: if it is not an rsmm chip index (the message names the file).
    """
    import geopandas as gpd
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"chip manifest not found: {path}")
    try:
        raw = (pq.read_schema(path).metadata or {}).get(META_KEY)
        chips = gpd.read_parquet(path)
    except Exception as err:  # pyarrow raises ArrowInvalid, OSError...
        raise ConfigError(f"cannot read chip manifest {path}: {err}") from err
    if raw is None:
        raise ConfigError(f"{path} is not an rsmm chip manifest (no 'rsmm' metadata)")
    try:
        meta = mapping(json.loads(raw), f"{path} ('rsmm' metadata)")
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: corrupt 'rsmm' metadata (invalid JSON: {err.msg})") from None
    where = f"{path} ('rsmm' metadata)"
    for m, info in require(meta, "modalities", dict, where).items():
        require(mapping(info, where, f"modalities.{m}"), "root", str, where, f"modalities.{m}")
        if f"files_{m}" not in chips.columns:
            raise ConfigError(f"{path}: modality {m!r} has no column files_{m}")
    if meta.get("format_version") not in READABLE_VERSIONS:
        raise ConfigError(
            f"chip manifest {path}: format version {meta.get('format_version')} is not "
            f"supported (expected one of {', '.join(map(str, READABLE_VERSIONS))})"
        )
    if "crs" not in chips.columns:  # version 1: every chip in the manifest's one CRS
        import shapely

        chips["crs"] = meta["crs"]
        bounds = shapely.bounds(chips.geometry.values)
        for i, c in enumerate(("xmin", "ymin", "xmax", "ymax")):
            chips[c] = bounds[:, i]
        meta.setdefault("chip_crs", meta["crs"])
    base = path.resolve().parent
    for m in meta["modalities"]:
        chips[f"files_{m}"] = [
            json.dumps([absolute_path(p, base) for p in json.loads(v)])
            for v in chips[f"files_{m}"]
        ]
        root = meta["modalities"][m]["root"]
        meta["modalities"][m]["root"] = root if Path(root).is_absolute() else str(base / root)
    if "modalities" not in chips.columns:  # written before optional modalities existed
        chips["modalities"] = ",".join(meta["modalities"])
    chips["label"] = np.asarray(chips["label"], dtype=np.int64)
    return ChipManifest(chips=chips, meta=meta, path=path)
