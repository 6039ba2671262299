"""Map a first convolution's input channels from one band list to another, by band name.

Weights trained on one band list (TorchGeo's SSL4EO-S12 ResNets: the 13 Sentinel-2 L1C
bands ``B1 ... B8, B8a, B9 ... B12``) start an encoder that reads another (rsmm's 12-band
L2A without ``B10``, or 4 bands in another order). Band names are compared after
:func:`normalise_band` (``B1 == B01``, ``B8a == B8A``), and the input convolution becomes:

- a band both lists hold: the kernel of that band in the weights (any order);
- a band of the weights the model does not read: dropped;
- a band the weights lack: the mean of the matched bands' kernels; the whole layer is then
  multiplied by ``C_matched / C_target``. For inputs that move together (neighbouring
  spectral bands, standardised) the layer's response stays the response of the matched
  bands instead of growing with every added band; with nothing added the factor is 1 and
  the mapping is a pure channel selection.

timm's ``adapt_input_conv`` only repeats RGB kernels (3 -> N) or sums them (N -> 1); it
knows no band names, so it is not used when both band lists are known.

The normalisation the weights expect can be folded into the same convolution
(:func:`fold_input_normalisation`): a layer trained on ``(x - m_w) / s_w`` gets, for
inputs standardised as ``(x - m) / s``, kernels scaled by ``s / s_w`` and a constant
per output channel that goes into the layer's bias or the next batch norm's running mean.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from rsmm.errors import WeightsError

_NUMBERED = re.compile(r"B0*(\d+)(A?)")


def normalise_band(name: str) -> str:
    """Canonical spelling of a band name for matching.

    Upper case, Sentinel-2 style as rsmm spells it: numbered bands get two digits
    (``B1`` -> ``B01``, ``b08`` -> ``B08``), ``B8a`` / ``B08A`` -> ``B8A``. Other names
    (``VV``, ``NIR``, ``SR_B1``) are only upper-cased.
    """
    text = str(name).strip().upper()
    m = _NUMBERED.fullmatch(text)
    if not m:
        return text
    return f"B{int(m.group(1))}A" if m.group(2) else f"B{int(m.group(1)):02d}"


def _index(bands: Sequence[str], what: str) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, b in enumerate(bands):
        key = normalise_band(b)
        if key in index:
            raise WeightsError(f"{what} band list {list(bands)} names {key} twice")
        index[key] = i
    return index


@dataclass(frozen=True)
class BandMapping:
    """How the channels of a band list map onto another.

    Attributes:
        source_bands: the bands of the weights, in their order.
        target_bands: the bands the model reads, in its order.
        index: for each target band, the channel of the weights it takes (``None`` for
            an added band).
        dropped: bands of the weights the model does not read.
        added: bands the model reads that the weights lack.
        scale: factor applied to the whole layer, ``C_matched / C_target``.
    """

    source_bands: tuple[str, ...]
    target_bands: tuple[str, ...]
    index: tuple[int | None, ...]
    dropped: tuple[str, ...]
    added: tuple[str, ...]
    scale: float

    @classmethod
    def between(cls, source_bands: Sequence[str], target_bands: Sequence[str]) -> BandMapping:
        """Match ``target_bands`` to ``source_bands`` by normalised name.

        Raises:
            WeightsError: when a list names a band twice, or no band name matches.
        """
        src = _index(source_bands, "the weights'")
        tgt = _index(target_bands, "the model's")
        index = tuple(src.get(k) for k in tgt)
        matched = sum(i is not None for i in index)
        if matched == 0:
            raise WeightsError(
                f"no band name matches: the weights have bands {list(source_bands)}, the "
                f"model reads {list(target_bands)}"
            )
        used = {i for i in index if i is not None}
        return cls(
            source_bands=tuple(source_bands),
            target_bands=tuple(target_bands),
            index=index,
            dropped=tuple(b for i, b in enumerate(source_bands) if i not in used),
            added=tuple(b for b, i in zip(target_bands, index, strict=True) if i is None),
            scale=matched / len(target_bands),
        )

    @property
    def matched(self) -> tuple[int, ...]:
        """Channels of the weights the model reads, in the model's order."""
        return tuple(i for i in self.index if i is not None)

    @property
    def is_identity(self) -> bool:
        """The same bands in the same order: the weights load unchanged."""
        return self.index == tuple(range(len(self.source_bands)))

    def select(self, values: Sequence[float]) -> list[float]:
        """Per-band values of the weights (one per source band) for the target bands:
        selected for matched bands, their mean over the matched bands for added ones."""
        if len(values) != len(self.source_bands):
            raise ValueError(f"{len(values)} values for {len(self.source_bands)} bands")
        mean = sum(values[i] for i in self.matched) / len(self.matched)
        return [float(values[i]) if i is not None else mean for i in self.index]

    def describe(self) -> str:
        """One sentence naming what changed (bands dropped, added, reordered)."""
        parts = []
        if self.dropped:
            parts.append(f"dropped {', '.join(self.dropped)} (not read by the model)")
        if self.added:
            parts.append(
                f"added {', '.join(self.added)} (not in the weights: mean of the "
                f"{len(self.matched)} matched kernels, layer scaled by {self.scale:.4g})"
            )
        if not parts:
            parts.append("same bands in another order: input channels reordered")
        return (
            f"input convolution mapped by band name from {list(self.source_bands)} to "
            f"{list(self.target_bands)}: " + "; ".join(parts)
        )


def map_input_conv(
    state_dict: Mapping[str, Tensor],
    conv_key: str,
    source_bands: Sequence[str],
    target_bands: Sequence[str],
) -> tuple[dict[str, Tensor], BandMapping]:
    """Map the input channels of the convolution weight ``conv_key`` by band name.

    Args:
        state_dict: the weights (not modified).
        conv_key: the first convolution's weight, e.g. ``"conv1.weight"``, shaped
            ``out x len(source_bands) x kh x kw``.
        source_bands: the bands the weights were trained on, in channel order.
        target_bands: the bands the model reads, in channel order.

    Returns:
        A new state dict whose ``conv_key`` has ``len(target_bands)`` input channels,
        and the :class:`BandMapping` applied.

    Raises:
        WeightsError: when ``conv_key`` is missing or its channels are not
            ``len(source_bands)``, or no band name matches.
    """
    if conv_key not in state_dict:
        raise WeightsError(f"the weights have no input convolution {conv_key!r}")
    weight = state_dict[conv_key]
    if weight.ndim != 4 or weight.shape[1] != len(source_bands):
        raise WeightsError(
            f"{conv_key} has shape {tuple(weight.shape)}: not {len(source_bands)} input "
            f"channels, one per band of {list(source_bands)}"
        )
    mapping = BandMapping.between(source_bands, target_bands)
    out = dict(state_dict)
    if mapping.is_identity:
        return out, mapping
    mean = weight[:, list(mapping.matched)].mean(dim=1)
    kernels = [weight[:, i] if i is not None else mean for i in mapping.index]
    out[conv_key] = (torch.stack(kernels, dim=1) * mapping.scale).to(weight.dtype)
    return out, mapping


def fold_input_normalisation(
    weight: Tensor,
    expected: tuple[Sequence[float], Sequence[float]],
    given: tuple[Sequence[float], Sequence[float]],
) -> tuple[Tensor, Tensor]:
    """Fold a change of input normalisation into a convolution.

    The layer was trained on ``x_w = (x - m_w) / s_w`` (``expected``); it will read
    ``x_g = (x - m_g) / s_g`` (``given``), per band. Since ``x_w = x_g * s_g / s_w +
    (m_g - m_w) / s_w``, ``conv(W, x_w) = conv(W', x_g) + shift`` with
    ``W' = W * s_g / s_w`` per input channel and ``shift`` the response of ``W`` to the
    constant ``(m_g - m_w) / s_w``. Exact away from the image border (zero padding
    stands for another value after the change).

    Args:
        weight: ``out x C x kh x kw``.
        expected: ``(mean, std)`` per input channel the weights expect.
        given: ``(mean, std)`` per input channel the inputs will have.

    Returns:
        ``(W', shift)``; ``shift`` (one value per output channel) must be added to the
        layer's output: to its bias, or subtracted from the next batch norm's running mean.
    """
    c = weight.shape[1]
    m_w, s_w, m_g, s_g = (
        torch.as_tensor(v, dtype=torch.float64).reshape(-1).expand(c) for v in (*expected, *given)
    )
    w = weight.to(torch.float64)
    folded = w * (s_g / s_w)[None, :, None, None]
    shift = (w * ((m_g - m_w) / s_w)[None, :, None, None]).sum(dim=(1, 2, 3))
    return folded.to(weight.dtype), shift.to(weight.dtype)
