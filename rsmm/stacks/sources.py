"""The rasters of one modality: finding, checking, indexing and reading them.

:class:`ModalitySource` lists a modality's GeoTIFFs (multi-band files, or one file
per band with the band name as a token of the file name, ``scene_VV.tif``), checks
that every file opens and reads (torchgeo's :class:`~torchgeo.datasets.RasterDataset`
skips unreadable files silently; rsmm names them), parses acquisition dates from the
file names, and indexes the footprints in the stack's common CRS with a generic
torchgeo ``RasterDataset`` subclass (:func:`make_raster_dataset`).

:func:`read_window` reads one chip: the chip's bounds in the common CRS, resampled
into an exact ``size x size`` pixel grid (``chip metres / GSD``) at the modality's own
GSD, merging the files that cover it. Open file handles are cached per process.
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import numpy as np
from rasterio.crs import CRS

from rsmm.errors import ConfigError, CorruptFilesError, DatasetFileError, DatasetNotFoundError
from rsmm.sensors import get_sensor
from rsmm.stacks.spec import SKIP_BAND, ModalitySpec

BAND_PLACEHOLDER = "{band}"
_DATE = re.compile(r"(?<!\d)((?:19|20)\d{6})(?!\d)")

#: Stored band order guessed from the band count of multi-band files.
DEFAULT_BANDS: dict[str, dict[int, tuple[str, ...]]] = {
    "s1": {2: ("VV", "VH")},
    "s2": {
        13: get_sensor("s2").band_names,
        12: tuple(b for b in get_sensor("s2").band_names if b != "B10"),
        10: ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"),
        4: ("B02", "B03", "B04", "B08"),
    },
    "naip": {4: ("R", "G", "B", "NIR"), 3: ("R", "G", "B")},
    "rgb": {3: ("R", "G", "B")},
}


def list_files(root: str | Path, glob: str, what: str) -> list[str]:
    """Absolute paths of the files under ``root`` matching ``glob``, sorted.

    Raises:
        DatasetNotFoundError: if ``root`` is not a folder or nothing matches (the
            message names ``what``, e.g. the modality, and the folder).
    """
    folder = Path(root)
    if not folder.is_dir():
        raise DatasetNotFoundError(f"{what} folder not found: {folder} is not a directory")
    files = sorted(os.path.abspath(p) for p in folder.rglob(glob) if p.is_file())
    if not files:
        raise DatasetNotFoundError(f"{what}: no files matching {glob!r} under {folder}")
    return files


def parse_date(name: str) -> datetime | None:
    """The first ``YYYYMMDD`` date (years 1900-2099) in a file name, or ``None``."""
    for m in _DATE.finditer(name):
        try:
            return datetime.strptime(m.group(1), "%Y%m%d")
        except ValueError:
            continue
    return None


def _band_pattern(bands: Sequence[str]) -> re.Pattern[str]:
    names = "|".join(sorted((re.escape(b) for b in bands), key=len, reverse=True))
    return re.compile(rf"(?<![A-Za-z0-9])(?P<band>{names})(?![A-Za-z0-9])")


class GeoTiffInfo(NamedTuple):
    """What :func:`check_geotiff` reads of a file's header."""

    crs: CRS
    res: tuple[float, float]
    count: int
    #: ``(west, south, east, north)`` in degrees (EPSG:4326)
    lonlat_bounds: tuple[float, float, float, float]


def check_geotiff(path: str | Path) -> GeoTiffInfo:
    """Open a GeoTIFF and read its last pixel of every band.

    Raises:
        DatasetFileError: naming the file if it is corrupt, truncated or has no CRS.
    """
    import rasterio
    from rasterio.errors import RasterioError
    from rasterio.warp import transform_bounds
    from rasterio.windows import Window

    try:
        with rasterio.open(path) as src:
            src.read(window=Window(src.width - 1, src.height - 1, 1, 1))
            crs, res, count, bounds = src.crs, src.res, src.count, src.bounds
    except (RasterioError, OSError) as err:
        raise DatasetFileError(f"corrupt or unreadable GeoTIFF {path}: {err}") from err
    if crs is None:
        raise DatasetFileError(f"GeoTIFF {path} has no CRS (it cannot be placed on the ground)")
    return GeoTiffInfo(crs, res, count, transform_bounds(crs, "EPSG:4326", *bounds))


def union_bounds(boxes: Sequence[Sequence[float]]) -> tuple[float, float, float, float]:
    """The ``(xmin, ymin, xmax, ymax)`` box holding every one of ``boxes``."""
    b = np.asarray(boxes, dtype=np.float64)
    return float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max())


def check_geotiffs(paths: Sequence[str]) -> dict[str, GeoTiffInfo]:
    """:func:`check_geotiff` on every file of ``paths``.

    Raises:
        CorruptFilesError: naming every file that failed, not only the first.
    """
    infos, bad = {}, []
    for path in paths:
        try:
            infos[path] = check_geotiff(path)
        except DatasetFileError as err:
            bad.append(str(err))
    if bad:
        raise CorruptFilesError(bad)
    return infos


def gsd_in_crs(path: str | Path, crs: CRS) -> float:
    """Pixel size in metres of the GeoTIFF ``path`` once warped into the projected ``crs``.

    A raster in a geographic CRS (degrees, e.g. ESA WorldCover in EPSG:4326) gets the
    size GDAL would choose when warping it into ``crs``, so that chip pixel counts
    are ``chip metres / GSD`` in metres, never in degrees.
    """
    import rasterio
    from rasterio.warp import calculate_default_transform

    with rasterio.open(path) as src:
        if src.crs == crs:
            return float(min(abs(src.res[0]), abs(src.res[1])))
        transform, _, _ = calculate_default_transform(
            src.crs, crs, src.width, src.height, *src.bounds
        )
    return float(min(abs(transform.a), abs(transform.e)))


@dataclass(frozen=True)
class RasterItem:
    """One acquisition file of a modality (``path`` holds ``{band}`` for per-band files)."""

    path: str
    date: datetime | None

    def band_path(self, band: str) -> str:
        return self.path.replace(BAND_PLACEHOLDER, band)


class ModalitySource:
    """The checked files of one modality (see the module docstring).

    Attributes:
        spec: the modality's :class:`~rsmm.stacks.spec.ModalitySpec`.
        items: one :class:`RasterItem` per acquisition file (or per-band file group).
        bands: the band names read (file order, or the per-band files read).
        band_indexes: 1-based indexes of ``bands`` in multi-band files where the spec
            skips some (``"-"``), else ``None`` (every band of the files is read).
        file_bands: the files' bands in order, ``"-"`` for a skipped one.
        separate_files: whether each band is its own file.
        gsd: target ground sample distance in metres.
        crs: the CRS of the first file.
        ignored: files under the folder that were not used, with the reason.
    """

    def __init__(self, spec: ModalitySpec) -> None:
        self.spec = spec
        files = list_files(spec.root, spec.glob, spec.key)
        sensor = get_sensor(spec.sensor or spec.key)
        self.ignored: list[tuple[str, str]] = []
        pattern = _band_pattern(sensor.band_names)
        tokens = {f: pattern.findall(Path(f).name) for f in files}
        separate = spec.separate_files
        if separate is None:
            found = {t[-1] for t in tokens.values() if t}
            separate = len(found) > 1 and sum(bool(t) for t in tokens.values()) * 2 >= len(files)
        self.separate_files = bool(separate)
        self.band_indexes: tuple[int, ...] | None = None
        if self.separate_files:
            if spec.bands is not None and SKIP_BAND in spec.bands:
                raise DatasetFileError(
                    f"{spec.key}: the files under {spec.root} hold one band each; "
                    f"{SKIP_BAND!r} skips a band of multi-band files, so list only the "
                    "bands to read"
                )
            self.items, self.bands = self._group_band_files(files, pattern, spec)
        else:
            self.items = [RasterItem(f, parse_date(Path(f).name)) for f in files]
            self.bands = ()
        infos = check_geotiffs(
            [
                item.band_path(b)
                for item in self.items
                for b in (self.bands if self.separate_files else ("",))
            ]
        )
        self.crs: CRS = next(iter(infos.values())).crs
        #: ``(west, south, east, north)`` in degrees of all the files
        self.lonlat_bounds = union_bounds([i.lonlat_bounds for i in infos.values()])
        if not self.separate_files:
            counts = {i.count for i in infos.values()}
            if len(counts) > 1:
                raise DatasetFileError(
                    f"{spec.key}: files under {spec.root} have different band counts {sorted(counts)}"
                )
            self.file_bands = self._guess_bands(spec, sensor.name, counts.pop())
            self.bands = tuple(b for b in self.file_bands if b != SKIP_BAND)
            if len(self.bands) < len(self.file_bands):
                self.band_indexes = tuple(
                    i for i, b in enumerate(self.file_bands, 1) if b != SKIP_BAND
                )
        else:
            self.file_bands = tuple(self.bands)
        self.gsd = self._target_gsd(spec, sensor.name, infos)
        if any(i.date is None for i in self.items):
            self.items = [RasterItem(i.path, None) for i in self.items]

    @property
    def dated(self) -> bool:
        """Whether every file name carries an acquisition date."""
        return all(i.date is not None for i in self.items)

    def _group_band_files(
        self, files: list[str], pattern: re.Pattern[str], spec: ModalitySpec
    ) -> tuple[list[RasterItem], tuple[str, ...]]:
        groups: dict[str, dict[str, str]] = {}
        for f in files:
            name = Path(f).name
            matches = list(pattern.finditer(name))
            if not matches:
                self.ignored.append((f, "no band name in the file name"))
                continue
            m = matches[-1]
            template = str(
                Path(f).with_name(name[: m.start()] + BAND_PLACEHOLDER + name[m.end() :])
            )
            groups.setdefault(template, {})[m.group("band")] = f
        if not groups:
            raise DatasetNotFoundError(f"{spec.key}: no per-band files under {spec.root}")
        sensor = get_sensor(spec.sensor or spec.key)
        bands = spec.bands if spec.bands is not None else _shared_bands(groups, sensor.band_names)
        items = []
        for template, found in sorted(groups.items()):
            missing = [b for b in bands if b not in found]
            if missing:
                if spec.bands is None:
                    for f in sorted(found.values()):
                        self.ignored.append((f, f"acquisition lacks band(s) {', '.join(missing)}"))
                    continue
                raise DatasetFileError(
                    f"{spec.key}: missing file {template.replace(BAND_PLACEHOLDER, missing[0])} "
                    f"(band {missing[0]})"
                )
            for b, f in sorted(found.items()):
                if b not in bands:
                    self.ignored.append((f, f"band {b} is not among the bands read"))
            items.append(RasterItem(template, parse_date(Path(template).name)))
        return items, tuple(bands)

    @staticmethod
    def _guess_bands(spec: ModalitySpec, sensor: str, count: int) -> tuple[str, ...]:
        if spec.bands is not None:
            if len(spec.bands) != count:
                raise DatasetFileError(
                    f"{spec.key}: the files under {spec.root} have {count} bands but "
                    f"{len(spec.bands)} band names were given ({', '.join(spec.bands)}); "
                    f"give one name per band, {SKIP_BAND!r} for a band not to read "
                    f"(e.g. VV,VH,{SKIP_BAND} for VV, VH and an angle band)"
                )
            return spec.bands
        guess = DEFAULT_BANDS.get(sensor, {}).get(count)
        if guess is None:
            raise DatasetFileError(
                f"{spec.key}: cannot tell which {count} bands the files under {spec.root} "
                f"store; give the band names in file order, {SKIP_BAND!r} for a band not "
                f"to read (e.g. --{spec.key}-bands VV,VH,{SKIP_BAND})"
            )
        return guess

    def _target_gsd(self, spec: ModalitySpec, sensor: str, infos: dict[str, GeoTiffInfo]) -> float:
        if spec.gsd is not None:
            return float(spec.gsd)
        if sensor in ("s1", "s2"):
            return float(min(get_sensor(sensor).band(b).gsd or 10.0 for b in self.bands))
        crs, res = next(iter(infos.values()))[:2]
        if not crs.is_projected:
            raise ConfigError(
                f"{spec.key}: files are in a geographic CRS ({crs}); give the target gsd in metres"
            )
        return float(min(abs(res[0]), abs(res[1])))


def _shared_bands(groups: dict[str, dict[str, str]], order: Sequence[str]) -> tuple[str, ...]:
    """The bands read from per-band file groups when none are given.

    Every group's band set is a candidate; the one that keeps the most band files
    (groups holding all its bands x its band count, ties: more bands) wins, so one VV
    file without its VH drops that acquisition (reported) rather than VH everywhere.
    """
    candidates = {frozenset(g) for g in groups.values()}

    def kept(c: frozenset[str]) -> tuple[int, int]:
        return sum(c <= set(g) for g in groups.values()) * len(c), len(c)

    best = max(sorted(candidates, key=sorted), key=kept)
    return tuple(b for b in order if b in best)


def make_raster_dataset(source: ModalitySource, crs: CRS, res: float | None = None):
    """A torchgeo ``RasterDataset`` over ``source``'s files, indexed in ``crs``.

    The class is built per modality (band list, ``separate_files``, a file-name regex
    with a ``band`` group for per-band files and a ``date`` group when file names
    carry dates), so torchgeo's index, samplers and ``IntersectionDataset`` work on it.
    """
    from torchgeo.datasets import RasterDataset

    band_group = ""
    if source.separate_files:
        band_group = _band_pattern(source.bands).pattern
    # skipped bands get placeholder names, so torchgeo reads the named ones by position
    all_bands = tuple(
        b if b != SKIP_BAND else f"skipped_band_{i}" for i, b in enumerate(source.file_bands, 1)
    )
    date_group = r"(?=.*?(?<!\d)(?P<date>(?:19|20)\d{6})(?!\d))" if source.dated else ""
    attrs = {
        "__doc__": f"GeoTIFFs of modality {source.spec.key!r} of a user stack.",
        "filename_glob": "*",
        "filename_regex": rf"^{date_group}.*?{band_group}",
        "date_format": "%Y%m%d",
        "all_bands": all_bands,
        "separate_files": source.separate_files,
    }
    cls = type(f"{source.spec.key.upper()}StackRaster", (RasterDataset,), attrs)
    first = source.bands[0] if source.separate_files else ""
    paths = [item.band_path(first) for item in source.items]
    return cls(paths=paths, crs=crs, res=res or source.gsd, bands=source.bands)


# -- windowed reads -------------------------------------------------------------------

_HANDLES: OrderedDict[str, object] = OrderedDict()
_HANDLES_PID = [os.getpid()]
MAX_OPEN_FILES = 256


def open_cached(path: str):
    """An open rasterio dataset for ``path``, cached per process (LRU, closed on eviction)."""
    import rasterio

    if _HANDLES_PID[0] != os.getpid():  # forked worker: never share GDAL handles
        _HANDLES.clear()
        _HANDLES_PID[0] = os.getpid()
    src = _HANDLES.get(path)
    if src is None:
        try:
            src = rasterio.open(path)
        except (rasterio.errors.RasterioError, OSError) as err:
            raise DatasetFileError(f"cannot read GeoTIFF {path}: {err}") from err
        _HANDLES[path] = src
        if len(_HANDLES) > MAX_OPEN_FILES:
            _HANDLES.popitem(last=False)[1].close()  # type: ignore[attr-defined]
    else:
        _HANDLES.move_to_end(path)
    return src


def window_transform(bounds: Sequence[float], size: int):
    """Affine transform of a ``size x size`` grid exactly covering ``bounds``."""
    from affine import Affine

    xmin, ymin, xmax, ymax = bounds
    return Affine((xmax - xmin) / size, 0.0, xmin, 0.0, -(ymax - ymin) / size, ymax)


def read_window(
    paths: Sequence[str] | Sequence[Sequence[str]],
    bounds: Sequence[float],
    size: int,
    crs: CRS,
    nodata: float | None = None,
    resampling: str = "nearest",
    dtype: type = np.float32,
    indexes: Sequence[int] | None = None,
) -> np.ndarray:
    """Read ``bounds`` (in ``crs``) into a ``C x size x size`` array.

    Args:
        paths: files to merge (the first valid pixel wins); each entry is one
            multi-band file, or a sequence of single-band files (one per band).
        bounds: ``(xmin, ymin, xmax, ymax)`` in ``crs``.
        size: pixels per side; the pixel size is ``(xmax - xmin) / size``.
        crs: the destination CRS.
        nodata: stored value marking missing pixels (default: each file's own).
        resampling: a :class:`rasterio.enums.Resampling` name.
        dtype: float output dtype; missing pixels are NaN.
        indexes: 1-based bands read from multi-band files (default: all of them);
            single-band files of per-band products are read whole.

    Raises:
        DatasetFileError: naming a file that cannot be read.
    """
    from rasterio.enums import Resampling
    from rasterio.errors import RasterioError
    from rasterio.warp import reproject

    transform = window_transform(bounds, size)
    out: np.ndarray | None = None
    for entry in paths:
        multiband = isinstance(entry, str)
        files = [entry] if multiband else list(entry)
        parts = []
        for path in files:
            src = open_cached(path)
            bands = list(indexes) if multiband and indexes else list(range(1, src.count + 1))
            if max(bands) > src.count or min(bands) < 1:
                raise DatasetFileError(
                    f"GeoTIFF {path} has {src.count} bands; cannot read band(s) {bands}"
                )
            tmp = np.full((len(bands), size, size), np.nan, dtype=dtype)
            try:
                reproject(
                    source=_band(src, bands),
                    destination=tmp,
                    dst_transform=transform,
                    dst_crs=crs,
                    src_nodata=src.nodata if nodata is None else nodata,
                    dst_nodata=np.nan,
                    resampling=Resampling[resampling],
                )
            except (RasterioError, OSError) as err:
                raise DatasetFileError(f"cannot read GeoTIFF {path}: {err}") from err
            parts.append(tmp)
        arr = parts[0] if len(parts) == 1 else np.concatenate(parts)
        if out is None:
            out = arr
        else:
            hole = np.isnan(out) & ~np.isnan(arr)
            out[hole] = arr[hole]
        if not np.isnan(out).any():
            break
    assert out is not None
    return out


def _band(src, indexes: list[int]):
    import rasterio

    return rasterio.band(src, indexes)
