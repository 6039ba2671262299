"""Band and sensor registry.

Every piece of rsmm that needs to know what a channel *is* (its name, wavelength,
ground sample distance, whether it is optical or radar) looks it up here by name,
never by a magic channel index. Datasets declare the band names they store, in order;
the augmentation pipeline asks the registry whether a band is optical or SAR.

Sources: Sentinel-2 centre wavelengths are the Sentinel-2A values of the ESA
Sentinel-2 User Handbook (rounded to the nanometre); Sentinel-1 is C-band SAR at
5.405 GHz (wavelength 5.547 cm), IW GRD high-resolution products have a 10 m pixel
spacing; NAIP centre wavelengths are the centres of the Leica ADS100 pass bands used
by the USDA NAIP programme (approximate: the camera varies by year and state).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from rsmm.errors import ConfigError, UnknownNameError

SensorKind = Literal["optical", "sar"]

#: Units of stored pixel values that rsmm knows how to interpret.
UNITS = ("db", "linear", "dn", "reflectance_x1e4")


@dataclass(frozen=True)
class Band:
    """One spectral band (or SAR polarisation channel).

    Attributes:
        name: band name as used throughout rsmm (``"B04"``, ``"VV"``, ``"NIR"``).
        wavelength_nm: centre wavelength in nanometres (for SAR, the radar wavelength).
        gsd: native ground sample distance in metres, or ``None`` when it varies
            (plain RGB photographs such as RESISC-45).
        description: human-readable description.
    """

    name: str
    wavelength_nm: float
    gsd: float | None
    description: str = ""


@dataclass(frozen=True)
class Sensor:
    """A sensor: an ordered set of bands and a kind (optical or SAR)."""

    name: str
    kind: SensorKind
    bands: tuple[Band, ...]
    description: str = ""
    _index: dict[str, int] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {b.name: i for i, b in enumerate(self.bands)})

    @property
    def band_names(self) -> tuple[str, ...]:
        """All band names of this sensor, in registry order."""
        return tuple(b.name for b in self.bands)

    def band(self, name: str) -> Band:
        """Return the band called ``name``.

        Raises:
            KeyError: if the sensor has no such band (the message lists the valid names).
        """
        try:
            return self.bands[self._index[name]]
        except KeyError:
            raise UnknownNameError(
                f"sensor {self.name!r} has no band {name!r}; valid bands: {', '.join(self.band_names)}"
            ) from None

    def check_bands(self, names: Sequence[str]) -> tuple[str, ...]:
        """Validate a list of band names for this sensor and return it as a tuple.

        Raises:
            ValueError: on an unknown or repeated band name.
        """
        names = tuple(names)
        unknown = [n for n in names if n not in self._index]
        if unknown:
            raise ConfigError(
                f"unknown band(s) {unknown} for sensor {self.name!r}; valid bands: "
                f"{', '.join(self.band_names)}"
            )
        if len(set(names)) != len(names):
            raise ConfigError(f"repeated band names in {list(names)} for sensor {self.name!r}")
        return names

    @property
    def is_sar(self) -> bool:
        """Whether this is a radar sensor."""
        return self.kind == "sar"


_C_BAND_NM = 5.5466e7  # 5.405 GHz

SENTINEL1 = Sensor(
    name="s1",
    kind="sar",
    description="Sentinel-1 C-band SAR, IW GRD, dual polarisation",
    bands=(
        Band("VV", _C_BAND_NM, 10.0, "vertical transmit, vertical receive"),
        Band("VH", _C_BAND_NM, 10.0, "vertical transmit, horizontal receive"),
    ),
)

SENTINEL2 = Sensor(
    name="s2",
    kind="optical",
    description="Sentinel-2 MSI, 13 bands",
    bands=(
        Band("B01", 443.0, 60.0, "coastal aerosol"),
        Band("B02", 490.0, 10.0, "blue"),
        Band("B03", 560.0, 10.0, "green"),
        Band("B04", 665.0, 10.0, "red"),
        Band("B05", 705.0, 20.0, "vegetation red edge 1"),
        Band("B06", 740.0, 20.0, "vegetation red edge 2"),
        Band("B07", 783.0, 20.0, "vegetation red edge 3"),
        Band("B08", 842.0, 10.0, "near infrared"),
        Band("B8A", 865.0, 20.0, "narrow near infrared"),
        Band("B09", 945.0, 60.0, "water vapour"),
        Band("B10", 1375.0, 60.0, "SWIR cirrus"),
        Band("B11", 1610.0, 20.0, "short-wave infrared 1"),
        Band("B12", 2190.0, 20.0, "short-wave infrared 2"),
    ),
)

NAIP = Sensor(
    name="naip",
    kind="optical",
    description="USDA National Agriculture Imagery Program aerial imagery (R, G, B, NIR)",
    bands=(
        Band("R", 635.0, 1.0, "red"),
        Band("G", 560.0, 1.0, "green"),
        Band("B", 470.0, 1.0, "blue"),
        Band("NIR", 860.0, 1.0, "near infrared"),
    ),
)

RGB = Sensor(
    name="rgb",
    kind="optical",
    description="plain RGB photograph (ground sample distance varies)",
    bands=(
        Band("R", 640.0, None, "red"),
        Band("G", 550.0, None, "green"),
        Band("B", 470.0, None, "blue"),
    ),
)

SENSORS: dict[str, Sensor] = {s.name: s for s in (SENTINEL1, SENTINEL2, NAIP, RGB)}

#: Sentinel-2 bands at each native resolution, in canonical order.
S2_BANDS_BY_GSD: dict[int, tuple[str, ...]] = {
    10: ("B02", "B03", "B04", "B08"),
    20: ("B05", "B06", "B07", "B8A", "B11", "B12"),
    60: ("B01", "B09", "B10"),
}


def get_sensor(name: str | Sensor) -> Sensor:
    """Look a sensor up by name (``"s1"``, ``"s2"``, ``"naip"``, ``"rgb"``).

    Raises:
        KeyError: for an unknown name (the message lists the registered sensors).
    """
    if isinstance(name, Sensor):
        return name
    try:
        return SENSORS[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown sensor {name!r}; registered sensors: {', '.join(SENSORS)}"
        ) from None


def check_units(units: str) -> str:
    """Validate a units string (one of :data:`UNITS`)."""
    if units not in UNITS:
        raise ConfigError(f"unknown units {units!r}; expected one of {', '.join(UNITS)}")
    return units
