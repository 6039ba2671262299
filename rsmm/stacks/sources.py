"""The rasters of one modality: which files, which bands, what GSD, indexed how.

:class:`ModalitySource` lists a modality's rasters (any GDAL reads: GeoTIFF, JPEG2000,
VRT, a GDAL dataset name; multi-band files, or one file per band with the band name as
a token of the file name, ``scene_VV.tif``, ``T33UUP_20170613T101031_B02.jp2``), or its
Sentinel-2 SAFE products (:mod:`rsmm.stacks.products`; a folder holding both products
and loose rasters is refused, naming the loose files), checks that every file opens
and reads (:mod:`rsmm.stacks.files`), parses acquisition dates from the file names,
tells which bands the files hold (never guessed: from the file names, the files' band
descriptions, the spec, or a band count that fixes the order: :mod:`rsmm.stacks.band_names`),
the radiometric offset of each file (:mod:`rsmm.stacks.offsets`; a subdataset of
GDAL's SENTINEL2 driver takes its product's, :func:`~rsmm.stacks.products.read_subdataset`)
and the modality's target GSD.
:func:`make_raster_dataset` indexes the footprints in the stack's common CRS with a
generic torchgeo ``RasterDataset`` subclass. Chips are read by
:func:`rsmm.stacks.windows.read_window`.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from rasterio.crs import CRS

from rsmm.errors import ConfigError, DatasetFileError, DatasetNotFoundError
from rsmm.sensors import get_sensor
from rsmm.stacks.band_names import (
    AUXILIARY_LAYERS,
    DEFAULT_BANDS,
    band_pattern,
    described_bands,
    example_bands,
    shared_bands,
)
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
from rsmm.stacks.offsets import OffsetTarget, file_key, resolve_offsets
from rsmm.stacks.products import (
    Product,
    find_products,
    read_product,
    read_subdataset,
    refuse_loose_rasters,
)
from rsmm.stacks.spec import SKIP_BAND, ModalitySpec

__all__ = ["BAND_PLACEHOLDER", "DEFAULT_BANDS", "ModalitySource", "RasterItem", "band_path"]

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
        #: the product of a subdataset of GDAL's SENTINEL2 driver given as the root
        self.subdataset = read_subdataset(spec.root) if is_gdal_name(spec.root) else None
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
            pattern = band_pattern(sensor.band_names)
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
            self.items = [RasterItem(f, self._date(f)) for f in files]
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
        bands = spec.named_bands or shared_bands(groups, order)
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

    def _date(self, path: str) -> datetime | None:
        """A file's acquisition date: from its name, or a subdataset's product."""
        date = parse_date(Path(path).name)
        return date if date is not None or self.subdataset is None else self.subdataset.date

    def _offset_targets(self) -> list[OffsetTarget]:
        """The modality's files as :func:`~rsmm.stacks.offsets.resolve_offsets` sees
        them: every SAFE product (kept or not), the subdataset's product, or each item
        with the names of its files."""
        products = self.products or ([self.subdataset] if self.subdataset else [])
        if products:
            keys = [p.template for p in self.products] or [self.items[0].path]
            return [
                OffsetTarget(k, (p.name, Path(p.path).name, p.path, k), p.level, p.offset, p.path)
                for k, p in zip(keys, products, strict=True)
            ]
        targets = []
        for item in self.items:
            files = [item.band_path(b) for b in self.bands] if self.separate_files else [item.path]
            names = tuple(Path(f).name for f in files) + tuple(files)
            targets.append(OffsetTarget(item.path, names, label=item.path))
        return targets

    def _resolve_offsets(self) -> None:
        """Set :attr:`file_offsets`, :attr:`offset` and :attr:`spec` (with the offset
        and, for SAFE products and their subdatasets, nodata 0 filled in).

        Files of one modality may have different offsets (Sentinel-2 products of
        baselines before and since 04.00, the user's per-file offsets:
        :mod:`rsmm.stacks.offsets`). The modality's offset is the most common one (a
        tie: the lowest, i.e. the newer baselines' -1000); a file whose offset differs
        has its values shifted by ``file offset - modality offset`` when read
        (:meth:`shift`), so that ``value + offset`` is the same quantity for every file.
        """
        spec = self.spec
        offsets = resolve_offsets(
            self._offset_targets(), spec.key, f"{spec.key} ({spec.root})", spec.offset,
            spec.offsets,
        )  # fmt: skip
        self.file_offsets = {i.path: offsets[i.path] for i in self.items}
        counts = Counter(self.file_offsets.values())
        top = max(counts.values())
        #: the offset recorded for the modality (see :meth:`_resolve_offsets`)
        self.offset = float(min(o for o, n in counts.items() if n == top))
        product = bool(self.products) or self.subdataset is not None
        nodata = 0.0 if product and spec.nodata is None else spec.nodata
        self.spec = replace(spec, offset=self.offset, nodata=nodata)

    def shift(self, path: str) -> float:
        """What to add to the values read from item ``path`` to bring them to the
        modality's offset (0 unless the files' offsets differ)."""
        return self.file_offsets.get(path, self.offset) - self.offset

    def product_meta(self) -> dict[str, object]:
        """The manifest's extra modality entries: for SAFE products (and a SENTINEL2
        subdataset) the processing level(s); ``file_offsets`` (``{product or file
        name: offset}``, :func:`~rsmm.stacks.offsets.file_key`; the reader applies them
        with :func:`~rsmm.stacks.offsets.offset_shifts`) for the files whose offset
        differs from the modality's (for loose files, only when some differ).

        Raises:
            DatasetFileError: for two files of one name with different offsets (the
                manifest names files by their names).
        """
        by_key: dict[str, float] = {}
        for path, value in self.file_offsets.items():
            key = file_key(path)
            if by_key.setdefault(key, value) != value:
                raise DatasetFileError(
                    f"{self.spec.key}: two files named {key} under {self.spec.root} have "
                    f"different offsets ({by_key[key]:g} and {value:g}); rename one"
                )
        differ = {k: v for k, v in by_key.items() if v != self.offset}
        products = self.products or ([self.subdataset] if self.subdataset else [])
        if not products:
            return {"file_offsets": differ} if differ else {}
        return {"levels": sorted({p.level for p in products}), "file_offsets": differ or None}

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
        bands = spec.bands if spec.bands is not None else shared_bands(groups, sensor.band_names)
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
        aux = AUXILIARY_LAYERS.get(sensor, ())
        described = described_bands(first, get_sensor(sensor).band_names, aux)
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
                f"{','.join(example_bands(sensor, count))})"
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


def make_raster_dataset(source: ModalitySource, crs: CRS, res: float | None = None):
    """A torchgeo ``RasterDataset`` over ``source``'s files, indexed in ``crs``.

    The class is built per modality (band list, ``separate_files``, a file-name regex
    with a ``band`` group for per-band files and a ``date`` group when file names
    carry dates), so torchgeo's index, samplers and ``IntersectionDataset`` work on it.
    """
    from torchgeo.datasets import RasterDataset

    band_group = ""
    if source.separate_files:
        band_group = band_pattern(source.bands).pattern
    # skipped bands get placeholder names, so torchgeo reads the named ones by position
    all_bands = tuple(
        b if b != SKIP_BAND else f"skipped_band_{i}" for i, b in enumerate(source.file_bands, 1)
    )
    first = source.bands[0] if source.separate_files else ""
    paths = [item.band_path(first) for item in source.items]
    # dates from the file names (a subdataset's date comes from its product instead)
    named = source.dated and all(parse_date(Path(p).name) for p in paths)
    date_group = r"(?=.*?(?<!\d)(?P<date>(?:19|20)\d{6})(?!\d))" if named else ""
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
    return cls(paths=paths, crs=crs, res=res or source.gsd, bands=source.bands)
