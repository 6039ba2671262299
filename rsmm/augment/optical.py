"""Radiometric operations for optical (multispectral) sensors, plus the two
kind-agnostic ones (Gaussian blur, band dropout).

kornia's colour augmentations assume 3-channel images in ``[0, 1]``: ``RandomBrightness``
adds ``factor - 1`` and clamps to ``[0, 1]``, ``RandomContrast`` multiplies by the
factor around 0 and clamps, ``RandomGrayscale`` needs RGB. On stored multispectral
values (digital numbers, reflectance x 1e4) those are wrong, so brightness, contrast and
grayscale are written here, per band. The Gaussian blur uses kornia's taps but runs as
batched matrix products (:mod:`rsmm.augment.filters` says why).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from rsmm.augment.filters import gaussian_blur
from rsmm.augment.ops import (
    ModalityInfo,
    Op,
    apply_to_subset,
    as_range,
    bernoulli,
    register,
    select,
    uniform,
)
from rsmm.errors import ConfigError

OPTICAL = frozenset({"optical"})
ANY_KIND = frozenset({"optical", "sar"})

#: Rec. 601 luma weights of the red, green and blue ranges (nm, inclusive-exclusive).
LUMA_RANGES: tuple[tuple[float, float, float], ...] = (
    (400.0, 500.0, 0.114),
    (500.0, 600.0, 0.587),
    (600.0, 700.0, 0.299),
)


def grayscale_weights(info: ModalityInfo, weights: Any = "luminance") -> Tensor:
    """Per-band grayscale weights (summing to 1) for a modality's bands.

    ``"luminance"`` (default): each visible band gets the Rec. 601 luma weight of its
    colour range (blue 400-500 nm: 0.114, green 500-600 nm: 0.587, red 600-700 nm:
    0.299), split equally between bands falling in the same range (Sentinel-2's B01 and
    B02 share blue's); every other band (red edge, NIR, SWIR...) gets 1/3, the weight of
    an average visible colour. The vector is then rescaled to sum to 1, so with RGB
    bands only this is the usual luma. ``"equal"``: 1/C each. A mapping
    ``{band: weight}`` gives explicit weights (missing bands get 0).

    Raises:
        ValueError: for an unknown rule, a mapping naming a band the modality lacks, or
            weights summing to 0.
    """
    if isinstance(weights, Mapping):
        unknown = set(weights) - set(info.bands)
        if unknown:
            raise ConfigError(
                f"grayscale weights name band(s) {sorted(unknown)} absent from modality "
                f"{info.name!r} (bands {list(info.bands)})"
            )
        w = torch.tensor([float(weights.get(b, 0.0)) for b in info.bands])
    elif weights == "equal":
        w = torch.ones(len(info.bands))
    elif weights == "luminance":
        wl = [info.sensor.band(b).wavelength_nm for b in info.bands]
        w = torch.full((len(wl),), 1.0 / 3.0)
        for lo, hi, luma in LUMA_RANGES:
            members = [i for i, x in enumerate(wl) if lo <= x < hi]
            for i in members:
                w[i] = luma / len(members)
    else:
        raise ConfigError(
            f"grayscale weights must be 'luminance', 'equal' or a mapping, got {weights!r}"
        )
    if float(w.sum()) <= 0:
        raise ConfigError(f"grayscale weights for modality {info.name!r} sum to {float(w.sum())}")
    return w / w.sum()


class _FactorOp(Op):
    """Shared drawing of a multiplicative factor per sample (and per band)."""

    kinds = OPTICAL

    def __init__(self, p: float = 0.8, factor: Any = (0.6, 1.4), per_band: bool = True) -> None:
        super().__init__(p)
        self.factor = as_range(factor, f"{self.name}.factor", low=0.0)
        self.per_band = bool(per_band)

    def draw(self, n: int, info: ModalityInfo, generator: torch.Generator) -> dict[str, Tensor]:
        applied = bernoulli(n, self.p, generator)
        f = uniform((n, len(info.bands) if self.per_band else 1), self.factor, generator)
        f = torch.where(applied[:, None], f, torch.ones_like(f))
        return {"applied": applied, "factor": f.expand(n, len(info.bands)).contiguous()}


@register
class Brightness(_FactorOp):
    """Per-band brightness jitter: ``x * b[n, c]``.

    A multiplicative gain on the stored values (an illumination / calibration change),
    drawn independently for every sample and band (``per_band=False``: one gain per
    sample). Written here because kornia's brightness is additive in ``[0, 1]`` units.
    """

    name = "brightness"

    def apply(
        self,
        x: Tensor,
        params: Mapping[str, Tensor],
        info: ModalityInfo,
        generator: torch.Generator,
    ) -> Tensor:
        return x.mul_(params["factor"].to(x.device, x.dtype)[:, :, None, None])


@register
class Contrast(_FactorOp):
    """Per-band contrast jitter: ``mu + c[n, c] * (x - mu)``, ``mu`` the spatial mean
    of that band in that sample.

    Each band is stretched around its own mean (bands have different scales, so a
    single grayscale mean as in torchvision would mix them); ``per_band=False`` draws
    one factor per sample. Written here because kornia's contrast scales around 0.
    """

    name = "contrast"

    def apply(
        self,
        x: Tensor,
        params: Mapping[str, Tensor],
        info: ModalityInfo,
        generator: torch.Generator,
    ) -> Tensor:
        c = params["factor"].to(x.device, x.dtype)[:, :, None, None]
        mu = x.mean(dim=(-2, -1), keepdim=True)
        # mu + c (x - mu) in one in-place pass
        return torch.addcmul(mu * (1 - c), x, c, out=x)


@register
class Grayscale(Op):
    """Band-weighted grayscale: every band replaced by ``sum_c w_c x_c``.

    Weights by band name, see :func:`grayscale_weights` (kornia's grayscale is RGB
    only). Applied to the stored values, so the normalisation that follows maps the
    common gray image through each band's own statistics.
    """

    name = "grayscale"
    kinds = OPTICAL

    def __init__(self, p: float = 0.2, weights: Any = "luminance") -> None:
        super().__init__(p)
        if not (isinstance(weights, Mapping) or weights in ("luminance", "equal")):
            raise ConfigError(
                f"grayscale.weights must be 'luminance', 'equal' or a mapping, got {weights!r}"
            )
        self.weights = weights
        self._cache: dict[tuple[str, ...], Tensor] = {}

    def check(self, info: ModalityInfo) -> None:
        super().check(info)
        grayscale_weights(info, self.weights)

    def draw(self, n: int, info: ModalityInfo, generator: torch.Generator) -> dict[str, Tensor]:
        return {"applied": bernoulli(n, self.p, generator)}

    def apply(
        self,
        x: Tensor,
        params: Mapping[str, Tensor],
        info: ModalityInfo,
        generator: torch.Generator,
    ) -> Tensor:
        if info.bands not in self._cache:
            self._cache[info.bands] = grayscale_weights(info, self.weights)
        w = self._cache[info.bands].to(x.device, x.dtype)
        applied = params["applied"]
        if not bool(applied.any()):
            return x
        n, _, h, wd = x.shape
        # (C) @ (n, C, HW): a small n x HW result, then broadcast back over the bands
        gray = torch.matmul(w, x.reshape(n, -1, h * wd)).view(n, 1, h, wd)
        idx = select(applied, x.device)
        if idx is None:
            return x.copy_(gray.expand_as(x))
        x[idx] = gray[idx]
        return x


def blur_kernel_size(requested: int | str, height: int, width: int) -> int:
    """Odd kernel size: ``"auto"`` = 10 % of the side (SimCLR's rule), capped so the
    reflection padding fits in the image."""
    side = min(height, width)
    ks = side // 10 // 2 * 2 + 1 if requested == "auto" else int(requested)
    return min(max(ks, 3), 2 * side - 1)


@register
class GaussianBlur(Op):
    """Gaussian blur with a per-sample sigma (pixels): kornia's Gaussian taps, applied
    as two batched matrix products (:func:`rsmm.augment.filters.gaussian_blur`).

    A spatial filter, not a colour op, so it is allowed on SAR too.
    """

    name = "blur"
    kinds = ANY_KIND

    def __init__(
        self, p: float = 0.5, sigma: Any = (0.1, 2.0), kernel_size: int | str = "auto"
    ) -> None:
        super().__init__(p)
        self.sigma = as_range(sigma, "blur.sigma", low=1e-6)
        if kernel_size != "auto" and (int(kernel_size) < 1 or int(kernel_size) % 2 == 0):
            raise ConfigError(
                f"blur.kernel_size must be 'auto' or an odd positive int, got {kernel_size!r}"
            )
        self.kernel_size = kernel_size

    def draw(self, n: int, info: ModalityInfo, generator: torch.Generator) -> dict[str, Tensor]:
        return {
            "applied": bernoulli(n, self.p, generator),
            "sigma": uniform((n,), self.sigma, generator),
        }

    def apply(
        self,
        x: Tensor,
        params: Mapping[str, Tensor],
        info: ModalityInfo,
        generator: torch.Generator,
    ) -> Tensor:
        ks = blur_kernel_size(self.kernel_size, x.shape[-2], x.shape[-1])
        if ks == 1:
            return x
        sigma = params["sigma"]

        def blur(sub: Tensor, idx: Tensor | None) -> Tensor:
            s = sigma if idx is None else sigma[idx.cpu()]
            return gaussian_blur(sub, s, ks)

        return apply_to_subset(x, params["applied"], blur)


@register
class BandDropout(Op):
    """Band dropout: ``bands`` randomly chosen bands of a sample set to 0 after
    normalisation, i.e. to that band's dataset mean.

    Runs after the per-band normalisation (``stage = "normalised"``), where 0 is the
    band's mean, so a dropped band carries no information and no out-of-range value.
    At most ``C - 1`` bands are dropped (never a whole image).
    """

    name = "band_dropout"
    kinds = ANY_KIND
    stage = "normalised"

    def __init__(self, p: float = 0.2, bands: int = 1) -> None:
        super().__init__(p)
        if int(bands) < 1:
            raise ConfigError(f"band_dropout.bands must be >= 1, got {bands}")
        self.bands = int(bands)

    def draw(self, n: int, info: ModalityInfo, generator: torch.Generator) -> dict[str, Tensor]:
        c = len(info.bands)
        applied = bernoulli(n, self.p, generator)
        rank = torch.rand(n, c, generator=generator).argsort(dim=1).argsort(dim=1)
        dropped = (rank < min(self.bands, c - 1)) & applied[:, None]
        return {"applied": applied, "dropped": dropped}

    def apply(
        self,
        x: Tensor,
        params: Mapping[str, Tensor],
        info: ModalityInfo,
        generator: torch.Generator,
    ) -> Tensor:
        keep = (~params["dropped"]).to(x.device, x.dtype)[:, :, None, None]
        return x.mul_(keep)
