"""Fusion of per-modality features into one vector per sample, tolerating absence.

A fine-tuned model classifies the fused pooled features of its modalities. A sample may
lack some of them (a cloudy Sentinel-2 acquisition, no NAIP flight there), and a model
fine-tuned on S1 + S2 may be asked to predict from S1 alone. Every fusion reads the
per-modality features together with ``presence`` (``{modality: B booleans}``, ``None`` =
every sample has every modality; a modality missing from the features is absent for every
sample) and never uses the features of an absent row:

- ``concat`` (the thesis' fusion, the default): the features concatenated in modality
  order; an absent modality's block is zero. With nothing missing it is exactly
  ``torch.cat`` and has no parameters.
- ``masked_mean``: each modality's features projected to a common width by its own
  linear layer, then averaged over the modalities the sample has.
- ``concat_missing``: concatenation where an absent modality's block is a learned
  "missing" embedding of that modality (initialised at zero, i.e. ``concat``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from rsmm.errors import ConfigError

#: the fusion names a fine-tuning task accepts (``FinetuneTask(fusion=...)``)
FUSIONS = ("concat", "masked_mean", "concat_missing")


def presence_masks(
    features: Mapping[str, Tensor],
    modalities: Sequence[str],
    presence: Mapping[str, Tensor] | None,
) -> dict[str, Tensor]:
    """``{modality: B booleans}`` for each of ``modalities``: False where the sample lacks
    it, and for every sample when ``features`` has no entry for it.

    Raises:
        ValueError: when ``features`` holds none of ``modalities`` (nothing to fuse).
    """
    given = [m for m in modalities if m in features]
    if not given:
        raise ValueError(f"no features of any of the modalities {list(modalities)}")
    ref = features[given[0]]
    out = {}
    for m in modalities:
        if m not in features:
            out[m] = torch.zeros(ref.shape[0], dtype=torch.bool, device=ref.device)
        elif presence is not None and m in presence:
            out[m] = presence[m].to(device=ref.device, dtype=torch.bool)
        else:
            out[m] = torch.ones(ref.shape[0], dtype=torch.bool, device=ref.device)
    return out


def masked_mean(features: Mapping[str, Tensor], masks: Mapping[str, Tensor]) -> Tensor:
    """Per-sample mean of same-width ``features`` over the modalities whose ``masks`` row is
    True (zeros for a sample with none); a modality without features counts as absent.

    An absent row never reaches the sum, not even as ``NaN * 0``.
    """
    ref = next(iter(features.values()))
    total = torch.zeros_like(ref)
    count = ref.new_zeros(ref.shape[0], 1)
    for m, f in features.items():
        keep = masks[m][:, None]
        total = total + torch.where(keep, f, 0.0)
        count = count + keep.to(ref.dtype)
    return total / count.clamp_min(1.0)


def modality_dropout(
    presence: Mapping[str, Tensor], p: float, generator: torch.Generator
) -> dict[str, Tensor]:
    """Drop each present modality of each sample with probability ``p``, never all of a
    sample's present ones (a sample that would lose them all keeps one, drawn uniformly).

    The same random numbers are drawn whatever is present (``2 x B x M`` uniforms from
    ``generator``, on the CPU), so a seed gives the same draws for any presence.

    Args:
        presence: ``{modality: B booleans}`` before dropout.
        p: drop probability, in ``[0, 1)``.
        generator: a CPU generator.

    Returns:
        ``{modality: B booleans}``, a subset of ``presence``.
    """
    mods = list(presence)
    present = torch.stack([presence[m].detach().to("cpu", torch.bool) for m in mods], 1)
    b, k = present.shape
    kept = present & (torch.rand(b, k, generator=generator) >= p)
    scores = torch.rand(b, k, generator=generator).masked_fill(~present, -1.0)
    lost = present.any(1) & ~kept.any(1)
    kept |= torch.nn.functional.one_hot(scores.argmax(1), k).bool() & lost[:, None]
    return {m: kept[:, i].to(presence[m].device) for i, m in enumerate(mods)}


class Fusion(nn.Module):
    """Base of the fusions: ``forward(features, presence) -> B x out_dim``.

    Args:
        dims: ``{modality: feature width}``, in the order the modalities are fused.
    """

    def __init__(self, dims: Mapping[str, int]) -> None:
        super().__init__()
        if not dims:
            raise ConfigError("fusion: at least one modality is needed")
        self.dims = dict(dims)
        self.modalities = tuple(dims)

    @property
    def out_dim(self) -> int:
        """Width of the fused features."""
        return sum(self.dims.values())

    def forward(
        self, features: Mapping[str, Tensor], presence: Mapping[str, Tensor] | None = None
    ) -> Tensor:
        """Fuse ``{modality: B x dim}`` features; see the module docstring."""
        raise NotImplementedError

    def _blocks(
        self, features: Mapping[str, Tensor], presence: Mapping[str, Tensor] | None
    ) -> tuple[dict[str, Tensor], Tensor]:
        """Present masks and a zero block template (for modalities without features)."""
        masks = presence_masks(features, self.modalities, presence)
        ref = next(features[m] for m in self.modalities if m in features)
        return masks, ref


class ConcatFusion(Fusion):
    """Concatenation; an absent modality's block is zero (no parameters)."""

    def forward(
        self, features: Mapping[str, Tensor], presence: Mapping[str, Tensor] | None = None
    ) -> Tensor:
        if presence is None and all(m in features for m in self.modalities):
            return torch.cat([features[m] for m in self.modalities], dim=1)
        masks, ref = self._blocks(features, presence)
        blocks = []
        for m in self.modalities:
            if m in features:
                blocks.append(torch.where(masks[m][:, None], features[m], 0.0))
            else:
                blocks.append(ref.new_zeros(ref.shape[0], self.dims[m]))
        return torch.cat(blocks, dim=1)


class ConcatMissingFusion(Fusion):
    """Concatenation with a learned "missing" embedding in place of an absent block."""

    def __init__(self, dims: Mapping[str, int]) -> None:
        super().__init__(dims)
        self.missing = nn.ParameterDict(
            {m: nn.Parameter(torch.zeros(d)) for m, d in self.dims.items()}
        )

    def forward(
        self, features: Mapping[str, Tensor], presence: Mapping[str, Tensor] | None = None
    ) -> Tensor:
        masks, ref = self._blocks(features, presence)
        blocks = []
        for m in self.modalities:
            fill = self.missing[m].to(ref.dtype)[None].expand(ref.shape[0], -1)
            if m in features:
                blocks.append(torch.where(masks[m][:, None], features[m], fill))
            else:
                blocks.append(fill)
        return torch.cat(blocks, dim=1)


class MaskedMeanFusion(Fusion):
    """Per-modality linear projection to ``dim``, averaged over the present modalities.

    A sample without any present modality fuses to zeros.

    Args:
        dims: ``{modality: feature width}``.
        dim: the common width (default: the largest feature width).
    """

    def __init__(self, dims: Mapping[str, int], dim: int | None = None) -> None:
        super().__init__(dims)
        self.dim = int(dim or max(self.dims.values()))
        if self.dim <= 0:
            raise ConfigError(f"fusion_dim must be positive, got {dim}")
        self.projections = nn.ModuleDict({m: nn.Linear(d, self.dim) for m, d in self.dims.items()})

    @property
    def out_dim(self) -> int:
        return self.dim

    def forward(
        self, features: Mapping[str, Tensor], presence: Mapping[str, Tensor] | None = None
    ) -> Tensor:
        projected = {m: self.projections[m](f) for m, f in features.items() if m in self.dims}
        return masked_mean(projected, presence_masks(features, self.modalities, presence))


def build_fusion(name: str, dims: Mapping[str, int], dim: int | None = None) -> Fusion:
    """The fusion called ``name`` (one of :data:`FUSIONS`) of features of widths ``dims``.

    Args:
        name: ``concat``, ``masked_mean`` or ``concat_missing``.
        dims: ``{modality: feature width}`` in fusion order.
        dim: the common width of ``masked_mean`` (default: the largest of ``dims``).

    Raises:
        ConfigError: for an unknown name, or ``dim`` given to another fusion.
    """
    if name not in FUSIONS:
        raise ConfigError(f"fusion: unknown {name!r}; choose one of {', '.join(FUSIONS)}")
    if dim is not None and name != "masked_mean":
        raise ConfigError(f"fusion_dim applies to fusion 'masked_mean' only, not {name!r}")
    if name == "masked_mean":
        return MaskedMeanFusion(dims, dim)
    if name == "concat_missing":
        return ConcatMissingFusion(dims)
    return ConcatFusion(dims)
