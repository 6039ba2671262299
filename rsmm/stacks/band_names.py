"""The band names of a modality's files, never guessed.

Per-band files carry the band name as a token of the file name (``scene_VV.tif``,
``T33UUP_20170613T101031_B02.jp2``: :func:`band_pattern`); a multi-band file names its
bands by its band descriptions (:func:`described_bands`; GDAL's SENTINEL2 driver
writes ``"B4, central wavelength 665 nm"`` and adds L2A layers that are not read,
:data:`AUXILIARY_LAYERS`), or its band count fixes the order (:data:`DEFAULT_BANDS`);
otherwise the user names them. :func:`shared_bands` picks the bands read from per-band
file groups.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rsmm.sensors import get_sensor
from rsmm.stacks.spec import SKIP_BAND

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


#: Layers that multi-band files may carry beside a sensor's bands, named by their band
#: descriptions and not read: GDAL's SENTINEL2 driver adds the L2A aerosol optical
#: thickness, water vapour, scene classification and cloud / snow confidence layers
#: to the bands of a resolution (the L2A 10m subdataset: B4, B3, B2, B8, AOT, WVP).
AUXILIARY_LAYERS: dict[str, tuple[str, ...]] = {"s2": ("AOT", "WVP", "SCL", "CLD", "SNW")}


def band_pattern(bands: Sequence[str]) -> re.Pattern[str]:
    names = "|".join(sorted((re.escape(b) for b in bands), key=len, reverse=True))
    return re.compile(rf"(?<![A-Za-z0-9])(?P<band>{names})(?![A-Za-z0-9])")


def described_bands(
    path: str, names: Sequence[str], auxiliary: Sequence[str] = ()
) -> tuple[str, ...] | None:
    """The band names a file's band descriptions give, if every band has one naming a
    band of the sensor (case-insensitive; ``"B2"`` is ``"B02"``; GDAL's SENTINEL2 driver
    writes ``"B4, central wavelength 665 nm"``: the name before the comma) or one of
    the ``auxiliary`` layers (:data:`AUXILIARY_LAYERS`, ``"-"``: not read) and at
    least one names a band, else ``None``."""
    import rasterio

    with rasterio.open(path) as src:
        descriptions = src.descriptions
    lookup = {band_key(n): n for n in names}
    lookup.update({band_key(a): SKIP_BAND for a in auxiliary})
    found = [lookup.get(band_key((d or "").split(",")[0])) for d in descriptions]
    bands = [f for f in found if f != SKIP_BAND]
    if not bands or any(f is None for f in found) or len(set(bands)) < len(bands):
        return None
    return tuple(f for f in found if f is not None)


def band_key(name: str) -> str:
    """``"B02"``, ``"b2"`` and ``"B2"`` alike."""
    m = re.fullmatch(r"([A-Za-z]+)0*(\w*)", name.strip())
    return (m.group(1) + m.group(2)).upper() if m else name.strip().upper()


def example_bands(sensor: str, count: int) -> list[str]:
    """A band list of ``count`` names for a message's example (S2: 10 m bands first)."""
    names = list(get_sensor(sensor).band_names)
    if sensor == "s2":
        names.sort(key=lambda b: get_sensor("s2").band(b).gsd or 60.0)
    return (names + [SKIP_BAND] * count)[:count]


def shared_bands(groups: dict[str, dict[str, str]], order: Sequence[str]) -> tuple[str, ...]:
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
