"""Sentinel-2 SAFE products as a modality's files, read as they are delivered.

A SAFE product (``S2A_MSIL2A_20170613T101031_N0400_R022_T33UUP_20170613T101032.SAFE``,
a folder or its ``.zip``) holds one JPEG2000 file per band under
``GRANULE/<granule>/IMG_DATA``: L1C at native ground sample distance
(``T33UUP_20170613T101031_B02.jp2``), L2A in ``R10m``/``R20m``/``R60m`` folders with
``_10m`` ... suffixes, most bands at several GSDs. :func:`read_product` takes each band
at its native GSD (:mod:`rsmm.sensors`: B02 from ``R10m``, B05 from ``R20m``, B01 from
``R60m``), ignores TCI/AOT/WVP, keeps the L2A scene classification (SCL, 20 m) for a
cloud layer, and reads the acquisition date, tile and processing baseline from the
names, the processing level and the radiometric offset from ``MTD_MSIL1C.xml`` /
``MTD_MSIL2A.xml`` (``RADIO_ADD_OFFSET`` / ``BOA_ADD_OFFSET``: -1000 since baseline
04.00, none before). A zipped product is read through GDAL's ``/vsizip/`` without
unpacking it.

A subdataset of GDAL's SENTINEL2 driver given as a modality's source
(``SENTINEL2_L2A:/p/<product>.SAFE/MTD_MSIL2A.xml:10m:EPSG_32633``) is read by the
driver as one multi-band raster, but the driver applies no radiometric offset and
reports none: :func:`read_subdataset` reads the product's level, date and offset
from the metadata file the string names, as for a SAFE product. Offsets the user
gives per product or file: :mod:`rsmm.stacks.offsets`.

The band files of one product are named by one template (:func:`band_template`) with
a ``{band}`` and, for L2A, a ``{gsd:s2}`` placeholder (the band's native GSD in
metres), which :func:`rsmm.stacks.files.band_path` expands; so a product is one
acquisition of a one-file-per-band modality (:mod:`rsmm.stacks.sources`).

A folder holding SAFE products is read as products only; rasters beside them
(:func:`loose_rasters`) are refused rather than read or skipped
(:func:`refuse_loose_rasters`): they carry no product metadata, so neither their
processing level nor their radiometric offset is known, and they are often a copy of
a product's bands (an export, a crop) that would be read twice.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from rsmm.errors import DatasetFileError
from rsmm.sensors import get_sensor
from rsmm.stacks.files import BAND_PLACEHOLDER, band_path, is_raster_name, split_gdal_name
from rsmm.stacks.offsets import offset_shifts as offset_shifts  # re-exported
from rsmm.stacks.offsets import safe_name as safe_name  # re-exported

#: ``S2A_MSIL2A_20170613T101031_N0400_R022_T33UUP_20170613T101032``
_PRODUCT = re.compile(
    r"^(?P<mission>S2[A-D])_MSI(?P<level>L1C|L2A)_(?P<date>\d{8})T\d{6}_N(?P<baseline>\d{4})"
    r"_R\d{3}_(?P<tile>T\d{2}[A-Z]{3})_\d{8}T\d{6}$"
)
#: a band file of IMG_DATA: ``T33UUP_20170613T101031_B02[_10m].jp2``
_BAND_FILE = re.compile(
    r"^T\d{2}[A-Z]{3}_\d{8}T\d{6}_(?P<band>B\d[0-9A]|SCL|TCI|AOT|WVP)(?:_(?P<gsd>\d{2})m)?\.jp2$",
    re.IGNORECASE,
)
#: ``SENTINEL2_L2A:<product>/MTD_MSIL2A.xml:10m:EPSG_32633``: GDAL's SENTINEL2 subdatasets
_SUBDATASET = re.compile(
    r'^SENTINEL2_(?P<level>L1C|L2A):"?(?P<xml>[^"]+?/MTD_MSIL(?:1C|2A)\.xml)"?:[^:]+:[^:]+$'
)
#: the metadata element holding the radiometric offset of each level
OFFSET_TAGS = {"L1C": "RADIO_ADD_OFFSET", "L2A": "BOA_ADD_OFFSET"}
#: the placeholder of a band's native GSD in a band-file template
GSD_PLACEHOLDER = "{gsd:s2}"


@dataclass(frozen=True)
class Product:
    """What :func:`read_product` reads of one SAFE product.

    Attributes:
        path: the ``.SAFE`` folder or ``.zip`` file.
        name: the product name (without ``.SAFE``).
        level: ``"L1C"`` or ``"L2A"``.
        date: acquisition date (from the name).
        tile: MGRS tile (``"T33UUP"``).
        baseline: processing baseline (``"04.00"``).
        offset: radiometric offset added to stored values before the reflectance
            scale applies (-1000 since baseline 04.00; 0 before).
        band_files: ``{band: GDAL path}`` of every spectral band at its native GSD
            (``{}`` for the product of a subdataset: the driver finds its files).
        scl: the L2A scene classification file (20 m), else ``None``.
    """

    path: str
    name: str
    level: str
    date: datetime
    tile: str
    baseline: str
    offset: float
    band_files: dict[str, str]
    scl: str | None = None

    @property
    def template(self) -> str:
        """The band-file template of the product (:func:`band_template`)."""
        return band_template(self.band_files, self.path)


def is_product(path: str | Path) -> bool:
    """Whether ``path`` is a SAFE product: a ``*.SAFE`` folder or a zip holding one."""
    p = Path(path)
    if p.is_dir():
        return p.suffix.upper() == ".SAFE"
    if p.is_file() and p.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(p) as z:
                return any(n.split("/")[0].upper().endswith(".SAFE") for n in z.namelist())
        except zipfile.BadZipFile:
            return False
    return False


def _walk_outside_products(root: str | Path) -> Iterator[tuple[str, list[str], list[str]]]:
    """``(folder, its *.SAFE folders, its files)`` for every folder under ``root`` that
    is not inside a ``*.SAFE`` folder."""
    for folder, dirs, files in os.walk(root):
        safes = [d for d in dirs if d.upper().endswith(".SAFE")]
        dirs[:] = [d for d in dirs if d not in safes]  # do not look inside a product
        yield folder, safes, files


def find_products(root: str | Path) -> list[str]:
    """The SAFE products at ``root`` (itself one) or anywhere under it, sorted."""
    if is_product(root):
        return [os.path.abspath(root)]
    if not Path(root).is_dir():
        return []
    found = []
    for folder, safes, files in _walk_outside_products(root):
        found += [os.path.join(folder, d) for d in safes]
        found += [os.path.join(folder, f) for f in files if f.lower().endswith(".zip")]
    return sorted(os.path.abspath(p) for p in found if is_product(p))


def loose_rasters(root: str | Path) -> list[str]:
    """The raster files under the folder ``root`` outside its SAFE products, sorted:
    those :func:`~rsmm.stacks.files.list_files` would list by default
    (:data:`~rsmm.stacks.files.RASTER_SUFFIXES`) that lie in no ``*.SAFE`` folder
    (``[]`` when ``root`` is a product itself or no folder)."""
    if is_product(root) or not Path(root).is_dir():
        return []
    return sorted(
        os.path.abspath(os.path.join(folder, f))
        for folder, _, files in _walk_outside_products(root)
        for f in files
        if is_raster_name(f)
    )


#: How many loose files :func:`refuse_loose_rasters` names (then a count of the rest).
NAMED_LOOSE = 5


def refuse_loose_rasters(root: str | Path, what: str) -> None:
    """Refuse a folder of SAFE products that also holds rasters outside them.

    Args:
        root: the modality's folder (its products were found).
        what: what the files are, for the message (the modality's key).

    Raises:
        DatasetFileError: naming the loose files (the first :data:`NAMED_LOOSE`, then
            how many more) and what to do.
    """
    loose = loose_rasters(root)
    if not loose:
        return
    named = ", ".join(loose[:NAMED_LOOSE])
    if len(loose) > NAMED_LOOSE:
        named += f" and {len(loose) - NAMED_LOOSE} more"
    raise DatasetFileError(
        f"{what}: {root} holds Sentinel-2 SAFE products and {len(loose)} raster file(s) "
        f"outside them ({named}); a folder is read as SAFE products or as loose rasters, "
        "not both (a loose raster has no product metadata: its processing level and "
        "radiometric offset are unknown, and it may copy a product's bands): move the "
        "loose rasters to a folder of their own (a modality or stack of their own) or the "
        "products to another folder"
    )


def _listing(path: str) -> tuple[str, list[str]]:
    """``(GDAL prefix of the product's members, member paths relative to it)``."""
    if Path(path).is_dir():
        base = Path(path)
        members = [
            Path(d, f).relative_to(base.parent).as_posix()
            for d, _, files in os.walk(base)
            for f in files
        ]
        return str(base.parent) + "/", members
    with zipfile.ZipFile(path) as z:
        members = [n for n in z.namelist() if not n.endswith("/")]
    return f"/vsizip/{path}/", members


def _read_member(path: str, member: str) -> bytes:
    if Path(path).is_dir():
        return (Path(path).parent / member).read_bytes()
    with zipfile.ZipFile(path) as z:
        return z.read(member)


def read_product(path: str | Path) -> Product:
    """Read a SAFE product's bands, date, tile, level and offset (module docstring).

    Raises:
        DatasetFileError: naming the product if its name, metadata or band files are
            not those of a Sentinel-2 L1C/L2A product.
    """
    path = os.path.abspath(path)
    prefix, members = _listing(path)
    safe = next((m.split("/")[0] for m in members if m.split("/")[0].upper().endswith(".SAFE")), "")
    m = _PRODUCT.match(safe[: -len(".SAFE")])
    if m is None:
        raise DatasetFileError(
            f"{path}: not a Sentinel-2 L1C/L2A SAFE product (its folder {safe or '(none)'!r} "
            "is not named like S2A_MSIL2A_20170613T101031_N0400_R022_T33UUP_20170613T101032.SAFE)"
        )
    level = m.group("level")
    metadata = f"{safe}/MTD_MSI{level}.xml"
    if metadata not in members:
        raise DatasetFileError(f"{path}: the {level} product has no {metadata}")
    offset = product_offset(_read_member(path, metadata), level, f"{path}/{metadata}")
    files: dict[str, dict[int, str]] = {}
    for member in members:
        parts = member.split("/")
        f = _BAND_FILE.match(parts[-1])
        if f is None or "IMG_DATA" not in parts:
            continue
        band = f.group("band").upper()
        gsd = int(f.group("gsd") or 0)
        files.setdefault(band, {})[gsd] = prefix + member
    sensor = get_sensor("s2")
    bands = {}
    for band in sensor.band_names:
        native = int(sensor.band(band).gsd or 0)
        found = files.get(band, {})
        chosen = found.get(native, found.get(0))  # L1C files carry no GSD suffix
        if chosen is not None:
            bands[band] = chosen
    if not bands:
        raise DatasetFileError(f"{path}: no band files (*_B02.jp2 ...) under GRANULE/*/IMG_DATA")
    scl = files.get("SCL", {})
    baseline = m.group("baseline")
    return Product(
        path=path,
        name=safe[: -len(".SAFE")],
        level=level,
        date=datetime.strptime(m.group("date"), "%Y%m%d"),
        tile=m.group("tile"),
        baseline=f"{baseline[:2]}.{baseline[2:]}",
        offset=offset,
        band_files=bands,
        scl=scl.get(20, next(iter(scl.values()), None)),
    )


def read_subdataset(name: str) -> Product | None:
    """The product of a subdataset of GDAL's SENTINEL2 driver
    (``SENTINEL2_L2A:/p/<product>.SAFE/MTD_MSIL2A.xml:10m:EPSG_32633``, the product
    folder or ``/vsizip/<product>.zip/<product>.SAFE``), ``None`` for any other name.

    The driver reads the band files of one resolution as one multi-band raster
    (band descriptions ``"B4, central wavelength 665 nm"``), but applies no radiometric
    offset and reports none (every band's offset is 0): the offset, level and date come
    from the metadata file the name points to and the product's name (or, renamed,
    its ``PRODUCT_URI``). The product has no :attr:`Product.band_files` (the driver
    finds them).

    Raises:
        DatasetFileError: naming the subdataset if its metadata file cannot be read or
            its product is not a Sentinel-2 L1C/L2A product of the subdataset's level.
    """
    m = _SUBDATASET.match(name)
    if m is None:
        return None
    level, xml = m.group("level"), m.group("xml")
    prefix, path, member = split_gdal_name(xml)
    try:
        if prefix:  # /vsizip/<archive>.zip/<product>.SAFE/MTD_MSIL2A.xml
            with zipfile.ZipFile(path) as z:
                data = z.read(member.lstrip("/"))
            product_path = path
        else:
            data = Path(xml).read_bytes()
            product_path = str(Path(xml).parent)
    except (OSError, KeyError, zipfile.BadZipFile) as err:
        raise DatasetFileError(f"{name}: cannot read the product metadata {xml} ({err})") from None
    folder = xml.rsplit("/", 2)[-2] if "/" in xml else ""
    title = folder[: -len(".SAFE")] if folder.upper().endswith(".SAFE") else folder
    found = _PRODUCT.match(title) or _PRODUCT.match(_element(data, "PRODUCT_URI", xml)[:-5])
    if found is None or found.group("level") != level:
        raise DatasetFileError(
            f"{name}: not a subdataset of a Sentinel-2 {level} product (neither its folder "
            f"{folder!r} nor the PRODUCT_URI of {xml} is named like "
            f"S2A_MSI{level}_20170613T101031_N0400_R022_T33UUP_20170613T101032.SAFE)"
        )
    baseline = found.group("baseline")
    return Product(
        path=os.path.abspath(product_path),
        name=found.group(0),
        level=level,
        date=datetime.strptime(found.group("date"), "%Y%m%d"),
        tile=found.group("tile"),
        baseline=f"{baseline[:2]}.{baseline[2:]}",
        offset=product_offset(data, level, xml),
        band_files={},
    )


def _element(xml: bytes, tag: str, where: str) -> str:
    """The text of the first element ``tag`` of ``xml`` (any namespace), else ``""``."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as err:
        raise DatasetFileError(f"{where}: invalid XML ({err})") from None
    return next((e.text or "" for e in root.iter() if e.tag.split("}")[-1] == tag), "")


def product_offset(xml: bytes, level: str, where: str) -> float:
    """The radiometric offset a product's metadata declares (0 when none: baselines
    before 04.00).

    Raises:
        DatasetFileError: naming ``where`` for invalid XML, or bands with different
            offsets (rsmm applies one offset per file).
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as err:
        raise DatasetFileError(f"{where}: invalid XML ({err})") from None
    tag = OFFSET_TAGS[level]
    values = {float(e.text or 0) for e in root.iter() if e.tag.split("}")[-1] == tag}
    if len(values) > 1:
        raise DatasetFileError(f"{where}: bands with different {tag} values {sorted(values)}")
    return values.pop() if values else 0.0


def band_template(band_files: dict[str, str], where: str) -> str:
    """One template naming every file of ``band_files`` (``{band}``, ``{gsd:s2}``).

    Raises:
        DatasetFileError: if the product's band files follow no common pattern.
    """
    band, first = next(iter(band_files.items()))
    gsd = int(get_sensor("s2").band(band).gsd or 0)
    folder, name = first.rsplit("/", 1)
    name = name.replace(f"_{band}_{gsd}m.", f"_{BAND_PLACEHOLDER}_{GSD_PLACEHOLDER}m.", 1)
    name = name.replace(f"_{band}.", f"_{BAND_PLACEHOLDER}.", 1)
    if folder.endswith(f"/R{gsd}m"):
        folder = folder[: -len(f"R{gsd}m")] + f"R{GSD_PLACEHOLDER}m"
    template = f"{folder}/{name}"
    odd = [f for b, f in band_files.items() if band_path(template, b) != f]
    if odd:
        raise DatasetFileError(f"{where}: band files named unlike the others: {', '.join(odd)}")
    return template


def cloud_layer_files(root: str, glob: str, kind: str) -> list[str] | None:
    """The scene classification (SCL) files of the SAFE products at or under ``root``
    for an ``scl`` cloud layer, or ``None`` when ``root`` holds no product (its
    ``glob`` files are the layer then).

    Raises:
        DatasetFileError: naming the products without an SCL file (L1C), a kind other
            than ``scl`` for products, or rasters beside the products
            (:func:`refuse_loose_rasters`).
    """
    products = [read_product(p) for p in find_products(root)]
    if not products:
        return None
    refuse_loose_rasters(root, "cloud layer")
    lacking = [p.path for p in products if p.scl is None]
    if kind != "scl" or lacking:
        raise DatasetFileError(
            f"cloud layer {root}: SAFE products serve as an scl cloud layer through their "
            f"L2A scene classification (SCL); "
            + (f"{', '.join(lacking)} carry none" if lacking else f"not as {kind!r}")
        )
    return [p.scl for p in products if p.scl is not None]
