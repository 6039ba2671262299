"""Radiometric operations for SAR sensors, aware of the stored units.

SAR backscatter is stored either in linear power (``"linear"``: sigma0 as an intensity,
not an amplitude) or in decibels (``"db"``: ``10 log10`` of it). Both operations here are
multiplicative in linear power, so in dB they become additive and need no round trip
through the exponential:

- speckle: ``I * G`` with ``G ~ Gamma(L, 1 / L)`` (mean 1, variance ``1 / L``), the
  fully developed speckle of an ``L``-look intensity image (Goodman 1976; Ulaby et al.,
  *Microwave Remote Sensing*), i.e. ``x_dB + 10 log10 G`` on dB values;
- calibration offset: ``x_dB + o``, i.e. ``I * 10^(o / 10)`` on linear values.

Other units (``"dn"``, ``"reflectance_x1e4"``) cannot be interpreted as backscatter and
are refused with a ``ValueError`` naming the modality and its units.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from rsmm.augment.ops import (
    ModalityInfo,
    Op,
    apply_to_subset,
    as_range,
    bernoulli,
    register,
    uniform,
)
from rsmm.errors import ConfigError

SAR = frozenset({"sar"})
#: Units that SAR operations can interpret.
SAR_UNITS = ("db", "linear")


def db_to_linear(x: Tensor) -> Tensor:
    """Decibels to linear power: ``10^(x / 10)``."""
    return torch.pow(10.0, x / 10.0)


def linear_to_db(x: Tensor, floor: float = 1e-10) -> Tensor:
    """Linear power to decibels: ``10 log10(max(x, floor))``."""
    return 10.0 * torch.log10(x.clamp_min(floor))


class _SarOp(Op):
    kinds = SAR

    def check(self, info: ModalityInfo) -> None:
        super().check(info)
        if info.units is None:
            raise ConfigError(
                f"augmentation op {self.name!r} needs the units of SAR modality {info.name!r}; "
                f"pass units={{{info.name!r}: 'db' or 'linear'}} to BandAugment"
            )
        if info.units not in SAR_UNITS:
            raise ConfigError(
                f"augmentation op {self.name!r} cannot interpret modality {info.name!r} stored "
                f"in units {info.units!r}: SAR ops need backscatter in 'db' or 'linear' power"
            )


@register
class Speckle(_SarOp):
    """Multiplicative gamma speckle (mean 1, ``looks`` looks) in linear power.

    ``looks`` is a number or a ``[min, max]`` range drawn per sample (Sentinel-1 IW GRD
    high resolution has an equivalent number of looks of about 4.4). Independent per
    pixel and polarisation.
    """

    name = "speckle"

    def __init__(self, p: float = 0.5, looks: Any = (2.0, 8.0)) -> None:
        super().__init__(p)
        self.looks = as_range(looks, "speckle.looks", low=1e-3)

    def draw(self, n: int, info: ModalityInfo, generator: torch.Generator) -> dict[str, Tensor]:
        return {
            "applied": bernoulli(n, self.p, generator),
            "looks": uniform((n,), self.looks, generator),
        }

    def apply(
        self,
        x: Tensor,
        params: Mapping[str, Tensor],
        info: ModalityInfo,
        generator: torch.Generator,
    ) -> Tensor:
        looks = params["looks"]

        def speckle(sub: Tensor, idx: Tensor | None) -> Tensor:
            dtype = torch.float64 if sub.dtype == torch.float64 else torch.float32
            L = (looks if idx is None else looks[idx.cpu()]).to(sub.device, dtype)
            shape = L[:, None, None, None].expand(sub.shape).contiguous()
            # torch.distributions.Gamma cannot take a generator; the underlying
            # sampler can, which keeps seeded pipelines reproducible.
            g = torch._standard_gamma(shape, generator=generator) / shape
            if info.units == "db":
                return sub.add_(linear_to_db(g, floor=1e-30).to(sub.dtype))
            return sub.mul_(g.to(sub.dtype))

        return apply_to_subset(x, params["applied"], speckle)


@register
class DbOffset(_SarOp):
    """Additive offset in dB (a calibration / incidence-angle change), i.e. a
    multiplicative gain ``10^(o / 10)`` in linear power.

    ``per_band=True`` draws one offset per polarisation, otherwise one per sample.
    """

    name = "db_offset"

    def __init__(self, p: float = 0.5, offset: Any = (-1.0, 1.0), per_band: bool = False) -> None:
        super().__init__(p)
        self.offset = as_range(offset, "db_offset.offset")
        self.per_band = bool(per_band)

    def draw(self, n: int, info: ModalityInfo, generator: torch.Generator) -> dict[str, Tensor]:
        applied = bernoulli(n, self.p, generator)
        o = uniform((n, len(info.bands) if self.per_band else 1), self.offset, generator)
        o = torch.where(applied[:, None], o, torch.zeros_like(o))
        return {"applied": applied, "offset": o.expand(n, len(info.bands)).contiguous()}

    def apply(
        self,
        x: Tensor,
        params: Mapping[str, Tensor],
        info: ModalityInfo,
        generator: torch.Generator,
    ) -> Tensor:
        o = params["offset"].to(x.device, torch.float64)[:, :, None, None]
        if info.units == "db":
            return x.add_(o.to(x.dtype))
        return x.mul_(torch.pow(10.0, o / 10.0).to(x.dtype))
