"""The rasters of one modality: which files, which bands, what GSD, indexed how.

:class:`ModalitySource` lists a modality's rasters (any GDAL reads: GeoTIFF, JPEG2000,
VRT, a GDAL dataset name; multi-band files, or one file per band with the band name as
a token of the file name, ``scene_VV.tif``, ``T33UUP_20170613T101031_B02.jp2``), or its
Sentinel-2 SAFE products (:mod:`rsmm.stacks.products`; a folder holding both products
and loose rasters is refused, naming the loose files), checks that every file opens
and reads (:mod:`rsmm.stacks.files`), parses acquisition dates from the file names,
tells which bands the files hold (never guessed: from the file names, the files' band
descriptions, the spec, or a band count that fixes the order), the radiometric offset
of each file and the modality's target GSD.
:func:`make_raster_dataset` indexes the footprints in the stack's common CRS with a
generic torchgeo ``RasterDataset`` subclass. Chips are read by
:func:`rsmm.stacks.windows.read_window`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from rasterio.crs import CRS

from rsmm.errors import ConfigError, DatasetFileError, DatasetNotFoundError
from rsmm.sensors import get_sensor
from rsmm.stacks.files import (
    BAND_PLACEHOLDER,
    GeoTiffInfo,
    band_path,
    check_geotiffs,
    is_gdal_name,
    list_files,
    parse_date,
    union_bounds,
)
from rsmm.stacks.products import (
    Product,
    find_products,
    product_offsets,
    read_product,
    refuse_loose_rasters,
)
from rsmm.stacks.spec import SKIP_BAND, ModalitySpec

__all__ = ["BAND_PLACEHOLDER", "DEFAULT_BANDS", "ModalitySource", "RasterItem", "band_path"]

#: Stored band order of multi-band files without band descriptions, where the band
#: count fixes it: a sensor's full band set in its registry order (13 or, L2A without
#: the cirrus band, 12 Sentinel-2 bands; VV, VH; NAIP's R, G, B, NIR). Other counts
#: (four Sentinel-2 bands: B02, B03, B04, B08 or B04, B03, B02, B08?) are refused.
DEFAULT_BANDS: dict[str, dict[int, tuple[str, ...]]] = {
    "s1": {2: ("VV", "VH")},
    "s2": {
        13: get_sensor("s2").band_names,
        12: tuple(b for b in get_sensor("s2").band_names if b != "B10"),
    },
    "naip": {4: ("R", "G", "B", "NIR"), 3: ("R", "G", "B")},
    "rgb": {3: ("R", "G", "B")},
}


def _band_pattern(bands: Sequence[str]) -> re.Pattern[str]:
    names = "|".join(sorted((re.escape(b) for b in bands), key=len, reverse=True))
    return re.compile(rf"(?<![A-Za-z0-9])(?P<band>{names})(?![A-Za-z0-9])")


@dataclass(frozen=True)
class RasterItem:
    """One acquisition file of a modality (``path`` holds ``{band}`` for per-band files)."""

    path: str
    date: datetime | None

    def band_path(self, band: str) -> str:
        """The file of ``band`` (:func:`rsmm.stacks.files.band_path`)."""
        return band_path(self.path, band)


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
        sensor = get_sensor(spec.sensor or spec.key)
        self.ignored: list[tuple[str, str]] = []
        self.band_indexes: tuple[int, ...] | None = None
        self.products: list[Product] = []
        if spec.glob is None and sensor.name == "s2" and not is_gdal_name(spec.root):
            self.products = [read_product(p) for p in find_products(spec.root)]
            if self.products:
                refuse_loose_rasters(spec.root, spec.key)
        if self.products:
            self.separate_files = True
            self.items, self.bands = self._product_items(spec)
            files: list[str] = []
        else:
            files = list_files(spec.root, spec.glob, spec.key)
            pattern = _band_pattern(sensor.band_names)
            tokens = {f: pattern.findall(Path(f).name) for f in files}
            separate = spec.separate_files
            if separate is None:
                found = {t[-1] for t in tokens.values() if t}
                separate = len(found) > 1 and sum(map(bool, tokens.values())) * 2 >= len(files)
            self.separate_files = bool(separate)
        if files and self.separate_files:
            if spec.bands is not None and SKIP_BAND in spec.bands:
                raise DatasetFileError(
                    f"{spec.key}: the files under {spec.root} hold one band each; "
                    f"{SKIP_BAND!r} skips a band of multi-band files, so list only the "
                    "bands to read"
                )
            self.items, self.bands = self._group_band_files(files, pattern, spec)
        elif files:
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
            self.file_bands = self._file_bands(spec, sensor.name, counts.pop())
            self.bands = tuple(b for b in self.file_bands if b != SKIP_BAND)
            if len(self.bands) < len(self.file_bands):
                self.band_indexes = tuple(
                    i for i, b in enumerate(self.file_bands, 1) if b != SKIP_BAND
                )
        else:
            self.file_bands = tuple(self.bands)
        self.gsd = self._target_gsd(spec, sensor.name, infos)
        self._resolve_offsets()
        if any(i.date is None for i in self.items):
            self.items = [RasterItem(i.path, None) for i in self.items]

    def _product_items(self, spec: ModalitySpec) -> tuple[list[RasterItem], tuple[str, ...]]:
        """One per-band item per SAFE product; the bands every product holds (or the
        spec's, then a product lacking one is an error naming it)."""
        if spec.bands is not None and SKIP_BAND in spec.bands:
            raise DatasetFileError(
                f"{spec.key}: {spec.root} holds SAFE products (one file per band); "
                f"{SKIP_BAND!r} skips a band of multi-band files, so list only the bands to read"
            )
        groups = {p.template: p.band_files for p in self.products}
        order = get_sensor("s2").band_names
        bands = spec.named_bands or _shared_bands(groups, order)
        items = []
        for p in self.products:
            missing = [b for b in bands if b not in p.band_files]
            if missing and spec.bands is not None:
                raise DatasetFileError(
                    f"{spec.key}: product {p.path} has no band {', '.join(missing)}"
                )
            if missing:
                self.ignored.append((p.path, f"product lacks band(s) {', '.join(missing)}"))
                continue
            items.append(RasterItem(p.template, p.date))
        return items, tuple(bands)

    def _resolve_offsets(self) -> None:
        """Set :attr:`file_offsets`, :attr:`offset` and :attr:`spec` (with the offset
        and, for SAFE products, nodata 0 filled in).

        Files of one modality may declare different offsets (Sentinel-2 products of
        baselines before and since 04.00). The modality's offset is the most common
        one (a tie: the lowest, i.e. the newer baselines' -1000); a file whose offset
        differs has its values shifted by ``file offset - modality offset`` when read
        (:meth:`shift`), so that ``value + offset`` is the same quantity for every file.
        """
        spec = self.spec
        if self.products:
            by_product = product_offsets(
                self.products, f"{spec.key} ({spec.root})", spec.offset, spec.offsets
            )
            kept = {i.path for i in self.items}
            self.file_offsets = {
                p.template: by_product[p.path] for p in self.products if p.template in kept
            }
        else:
            self.file_offsets = {i.path: float(spec.offset or 0.0) for i in self.items}
        counts = Counter(self.file_offsets.values())
        top = max(counts.values())
        #: the offset recorded for the modality (see :meth:`_resolve_offsets`)
        self.offset = float(min(o for o, n in counts.items() if n == top))
        nodata = 0.0 if self.products and spec.nodata is None else spec.nodata
        self.spec = replace(spec, offset=self.offset, nodata=nodata)

    def shift(self, path: str) -> float:
        """What to add to the values read from item ``path`` to bring them to the
        modality's offset (0 unless the files' offsets differ)."""
        return self.file_offsets.get(path, self.offset) - self.offset

    def product_meta(self) -> dict[str, object]:
        """The manifest's extra modality entries: for SAFE products the processing
        level(s) and, for the products whose offset differs from the modality's,
        ``file_offsets`` (``{product name: offset}``; the reader applies them with
        :func:`~rsmm.stacks.products.offset_shifts`)."""
        if not self.products:
            return {}
        differ = {
            p.name: self.file_offsets[p.template]
            for p in self.products
            if self.file_offsets.get(p.template, self.offset) != self.offset
        }
        return {"levels": sorted({p.level for p in self.products}), "file_offsets": differ or None}

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

    def _file_bands(self, spec: ModalitySpec, sensor: str, count: int) -> tuple[str, ...]:
        """The bands of multi-band files in order: given, from the files' band
        descriptions, or fixed by the band count (:data:`DEFAULT_BANDS`).

        Raises:
            DatasetFileError: if the names given do not match the band count, or the
                order cannot be told (naming a file and the option to give).
        """
        if spec.bands is not None:
            if len(spec.bands) != count:
                raise DatasetFileError(
                    f"{spec.key}: the files under {spec.root} have {count} bands but "
                    f"{len(spec.bands)} band names were given ({', '.join(spec.bands)}); "
                    f"give one name per band, {SKIP_BAND!r} for a band not to read "
                    f"(e.g. VV,VH,{SKIP_BAND} for VV, VH and an angle band)"
                )
            return spec.bands
        first = self.items[0].path
        described = _described_bands(first, get_sensor(sensor).band_names)
        if described is not None:
            return described
        guess = DEFAULT_BANDS.get(sensor, {}).get(count)
        if guess is None:
            known = DEFAULT_BANDS.get(sensor, {})
            full = " or ".join(str(n) for n in sorted(known)) if known else "no count"
            raise DatasetFileError(
                f"{spec.key}: cannot tell the order of the {count} bands of the files under "
                f"{spec.root} (e.g. {first}): they carry no band names, and only {full} "
                f"band(s) fix the {sensor} order; give the band names in file order with "
                f"--{spec.key}-bands (or bands: in the stack YAML), {SKIP_BAND!r} for a band "
                f"not to read (e.g. --{spec.key}-bands "
                f"{','.join(_example_bands(sensor, count))})"
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


def _described_bands(path: str, names: Sequence[str]) -> tuple[str, ...] | None:
    """The band names a file's band descriptions give, if every band has one naming a
    band of the sensor (case-insensitive; ``"B2"`` is ``"B02"``; GDAL's SENTINEL2 driver
    writes ``"B4, central wavelength 665 nm"``: the name before the comma), else ``None``."""
    import rasterio

    with rasterio.open(path) as src:
        descriptions = src.descriptions
    lookup = {_band_key(n): n for n in names}
    found = [lookup.get(_band_key((d or "").split(",")[0])) for d in descriptions]
    if not found or any(f is None for f in found) or len(set(found)) < len(found):
        return None
    return tuple(f for f in found if f is not None)


def _band_key(name: str) -> str:
    """``"B02"``, ``"b2"`` and ``"B2"`` alike."""
    m = re.fullmatch(r"([A-Za-z]+)0*(\w*)", name.strip())
    return (m.group(1) + m.group(2)).upper() if m else name.strip().upper()


def _example_bands(sensor: str, count: int) -> list[str]:
    """A band list of ``count`` names for a message's example (S2: 10 m bands first)."""
    names = list(get_sensor(sensor).band_names)
    if sensor == "s2":
        names.sort(key=lambda b: get_sensor("s2").band(b).gsd or 60.0)
    return (names + [SKIP_BAND] * count)[:count]


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
        "__doc__": f"Rasters of modality {source.spec.key!r} of a user stack.",
        "filename_glob": "*",
        "filename_regex": rf"^{date_group}.*?{band_group}",
        "date_format": "%Y%m%d",
        "all_bands": all_bands,
        "separate_files": source.separate_files,
        # the checked files as given: GDAL dataset names (subdatasets) are no paths
        "files": property(lambda ds: sorted(str(p) for p in ds.paths)),
    }
    cls = type(f"{source.spec.key.upper()}StackRaster", (RasterDataset,), attrs)
    first = source.bands[0] if source.separate_files else ""
    paths = [item.band_path(first) for item in source.items]
    return cls(paths=paths, crs=crs, res=res or source.gsd, bands=source.bands)
