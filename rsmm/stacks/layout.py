"""The chip layout: chip, stride and block sizes in whole pixels, and the chips laid out.

Lengths are given in metres or in pixels of the reference modality (Sentinel-2 if
required, else the first required one). Chip size and stride must be whole numbers
of pixels at every modality's target GSD (:func:`whole_pixels`), the block size of
reference pixels (:func:`chip_grid`). Chips of ``chip_size`` are then laid every
``stride`` on the reference pixel grid, anchored on the reference files' own pixel
origin when they are in the stack's CRS (:func:`grid_anchor`), and kept where the
common footprint covers them (:func:`lay_chips`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from rasterio.crs import CRS

from rsmm.errors import ConfigError
from rsmm.stacks.sources import ModalitySource
from rsmm.stacks.spec import StackSpec

#: Default block side, in chips, when no block size is given.
BLOCK_CHIPS = 4


def length_m(value: tuple[float, str], gsd: float) -> float:
    """A ``(value, "m" | "px")`` length in metres, pixels counted at ``gsd``."""
    v, unit = value
    return v * gsd if unit == "px" else v


def whole_pixels(name: str, value: tuple[float, str], metres: float, gsds: dict[str, float]) -> int:
    """``metres`` in pixels of the first modality of ``gsds``, checked whole for every one.

    Args:
        name: the parameter, as the message names it (``"--stride"``).
        value: the length as given, ``(value, "m" | "px")``.
        metres: the length in metres.
        gsds: ``{modality: GSD in metres}``; the first one counts the pixels.

    Returns:
        The length in pixels of the first modality.

    Raises:
        ConfigError: naming the parameter, the modality and the nearest lengths that are
            whole numbers of pixels of every modality in ``gsds``.
    """
    from fractions import Fraction
    from math import gcd, lcm

    for k, g in gsds.items():
        n = metres / g
        if abs(n - round(n)) <= 1e-6 and round(n) > 0:
            continue
        steps = [Fraction(v).limit_denominator(10_000) for v in gsds.values()]
        step = Fraction(lcm(*(f.numerator for f in steps)), gcd(*(f.denominator for f in steps)))
        lo = int(Fraction(metres).limit_denominator(10_000) // step) * step
        options = [f"{float(v):g}m" for v in (lo, lo + step) if v > 0]
        hint = " or ".join(options)
        if len(gsds) > 1:
            hint += f" (multiples of {float(step):g} m fit every modality)"
        raise ConfigError(
            f"{name} {value[0]:g}{value[1]} is not a whole number of {k} pixels "
            f"({g:g} m): use {hint}"
        )
    return round(metres / next(iter(gsds.values())))


@dataclass(frozen=True)
class ChipGrid:
    """Chip, stride and block sizes in whole pixels of the reference modality.

    Attributes:
        reference: the modality whose pixels count the sizes.
        gsd: the reference GSD in metres.
        chip_px: chip side in reference pixels.
        stride_px: distance between neighbouring chips in reference pixels.
        block_px: side of the split blocks in reference pixels.
        pixels: ``{modality: chip side in pixels at its GSD}``.
    """

    reference: str
    gsd: float
    chip_px: int
    stride_px: int
    block_px: int
    pixels: dict[str, int]

    # lengths in metres from whole reference pixels: equal edges are equal floats
    @property
    def chip_m(self) -> float:
        """Chip side in metres."""
        return self.chip_px * self.gsd

    @property
    def stride_m(self) -> float:
        """Stride in metres."""
        return self.stride_px * self.gsd

    @property
    def block_m(self) -> float:
        """Block side in metres."""
        return self.block_px * self.gsd


def reference_modality(sources: Mapping[str, ModalitySource], required: Sequence[str]) -> str:
    """Sentinel-2 if it is required, else the first required modality."""
    return next((k for k in required if sources[k].spec.sensor == "s2"), required[0])


def chip_grid(
    spec: StackSpec, sources: Mapping[str, ModalitySource], required: Sequence[str]
) -> ChipGrid:
    """The :class:`ChipGrid` of ``spec`` (default stride: the chip size; block: 4 chips).

    Raises:
        ConfigError: if the chip size or stride is no whole number of pixels of every
            modality, or the block size none of reference pixels.
    """
    ref = reference_modality(sources, required)
    g = sources[ref].gsd
    # the reference modality first: chip, stride and block are counted in its pixels
    gsds = {ref: g, **{k: s.gsd for k, s in sources.items() if k != ref}}
    chip_m = length_m(spec.chip_size, g)
    chip_px = whole_pixels("--chip-size", spec.chip_size, chip_m, gsds)
    pixels = {k: round(chip_m / s.gsd) for k, s in sources.items()}
    stride = spec.stride or spec.chip_size
    stride_px = whole_pixels("--stride", stride, length_m(stride, g), gsds)
    if spec.block_size is not None:
        block_px = whole_pixels(
            "--block-size", spec.block_size, length_m(spec.block_size, g), {ref: g}
        )
    else:
        block_px = BLOCK_CHIPS * chip_px
    return ChipGrid(ref, g, chip_px, stride_px, block_px, pixels)


def grid_anchor(source: ModalitySource, crs: CRS) -> tuple[float, float]:
    """The top-left corner of ``source``'s first file if it is in ``crs``, else ``(0, 0)``.

    Chip edges fall on the reference files' pixel edges when the files are in the
    stack's CRS; otherwise on multiples of the reference GSD from the CRS origin.
    """
    if source.crs != crs:
        return 0.0, 0.0
    import rasterio

    with rasterio.open(source.items[0].band_path(source.bands[0])) as src:
        return src.transform.c, src.transform.f


@dataclass(frozen=True)
class ChipLayout:
    """The chips laid on a footprint (see :func:`lay_chips`).

    Attributes:
        cols: grid column of every chip (from the top-left chip of the grid).
        rows: grid row of every chip.
        boxes: the chip polygons in the stack's CRS.
        origin: top-left corner ``(x0, y0)`` of the grid's first chip.
        ids: the chip ids (default ``"x<col>_y<row>"``).
    """

    cols: np.ndarray
    rows: np.ndarray
    boxes: np.ndarray
    origin: tuple[float, float]
    ids: tuple[str, ...] | None = None

    def chip_ids(self) -> list[str]:
        """Every chip's id."""
        if self.ids is not None:
            return list(self.ids)
        return [f"x{c:04d}_y{r:04d}" for c, r in zip(self.cols, self.rows)]


def lay_chips(
    grid: ChipGrid, footprint: Any, anchor: tuple[float, float], crs_name: str
) -> ChipLayout:
    """The chips of ``grid`` that ``footprint`` (a polygon in the stack's CRS) covers.

    Chip edges are whole reference pixels from ``anchor``; the first column and row
    are the first ones inside the footprint's bounds.

    Raises:
        ConfigError: if the chip is larger than the footprint or none fits in it
            (``crs_name`` names the CRS of the bounds in the message).
    """
    chip_m = grid.chip_m
    xmin, ymin, xmax, ymax = footprint.bounds
    if chip_m > xmax - xmin or chip_m > ymax - ymin:
        raise ConfigError(
            f"chip size {chip_m:g} m is larger than the overlap of the required modalities "
            f"({xmax - xmin:.0f} m x {ymax - ymin:.0f} m in {crs_name})"
        )
    layout = grid_chips(grid, footprint, anchor)
    if not len(layout.boxes):
        raise ConfigError(
            f"no chip of {chip_m:g} m fits inside the overlap of the required modalities "
            f"({format_bounds(footprint.bounds)} in {crs_name}); use a smaller --chip-size"
        )
    return layout


def grid_chips(grid: ChipGrid, footprint: Any, anchor: tuple[float, float]) -> ChipLayout:
    """The chips of ``grid`` anchored at ``anchor`` that ``footprint`` covers (maybe none)."""
    import shapely

    g, chip_px, stride_px, chip_m = grid.gsd, grid.chip_px, grid.stride_px, grid.chip_m
    ax, ay = anchor
    if footprint.is_empty:
        return ChipLayout(np.zeros(0, int), np.zeros(0, int), np.zeros(0, object), (ax, ay))
    xmin, ymin, xmax, ymax = footprint.bounds
    # chip edges are whole reference pixels (i0 + i, j0 + j) from the anchor (ax, ay)
    i0 = int(np.ceil((xmin - ax) / g - 1e-9))
    j0 = int(np.ceil((ay - ymax) / g - 1e-9))
    x0, y0 = ax + i0 * g, ay - j0 * g
    ncol = int(np.floor(((xmax - x0) / g - chip_px) / stride_px + 1e-9)) + 1
    nrow = int(np.floor(((y0 - ymin) / g - chip_px) / stride_px + 1e-9)) + 1
    cols, rows = np.meshgrid(np.arange(max(ncol, 0)), np.arange(max(nrow, 0)))
    cols, rows = cols.ravel(), rows.ravel()
    i, j = i0 + cols * stride_px, j0 + rows * stride_px
    boxes = shapely.box(ax + i * g, ay - (j + chip_px) * g, ax + (i + chip_px) * g, ay - j * g)
    inside = shapely.covers(footprint.buffer(1e-6 * chip_m), boxes)
    return ChipLayout(cols[inside], rows[inside], boxes[inside], (float(x0), float(y0)))


def resampled_bands(source: ModalitySource, chip_m: float) -> dict[str, dict[str, Any]]:
    """The bands of ``source`` not read at their native GSD: ``{band: {"gsd": native
    metres, "whole_pixels": whether the chip is a whole number of them}}``.

    They are resampled to the modality's GSD with its ``resampling`` (Sentinel-2's 20 m
    and 60 m bands at 10 m); a 600 m chip is 30 and 10 of their pixels.
    """
    from rsmm.sensors import get_sensor

    sensor = get_sensor(source.spec.sensor or source.spec.key)
    out = {}
    for b in source.bands:
        try:
            g = sensor.band(b).gsd
        except KeyError:  # a band the sensor does not list: read at the modality's GSD
            continue
        if g is not None and abs(g - source.gsd) > 1e-9 * g:
            n = chip_m / g
            out[b] = {"gsd": float(g), "whole_pixels": bool(abs(n - round(n)) <= 1e-6)}
    return out


def format_bounds(bounds: Sequence[float]) -> str:
    """``(xmin, ymin, xmax, ymax)`` rounded to whole units, for messages."""
    return "(" + ", ".join(f"{v:.0f}" for v in bounds) + ")"
