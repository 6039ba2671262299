"""MultiModalEncoder: one backbone (+ projector) per modality.

Pre-training embeds every (modality, view) of a batch; fine-tuning concatenates the
pooled backbone features of any subset of the pre-trained modalities (fusion by
concatenation, as in the thesis, or one of :mod:`rsmm.models.fusion`'s fusions that
tolerate a missing modality).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from rsmm.errors import ConfigError, UnknownNameError
from rsmm.models.backbones import build_backbone, load_backbone_weights
from rsmm.models.fusion import Fusion
from rsmm.models.heads import ProjectionHead
from rsmm.models.views import EmbeddedViews, SampleInfo, present_views, scatter_rows


def per_modality(
    value: str | Mapping[str, str] | None, modalities: Sequence[str], what: str
) -> dict[str, str | None]:
    """Expand a single value or a ``{modality: value}`` mapping to every modality."""
    if value is None or isinstance(value, str):
        return dict.fromkeys(modalities, value)
    unknown = [m for m in value if m not in modalities]
    if unknown:
        raise ConfigError(
            f"{what}: given for unknown modalities {unknown} (have {list(modalities)})"
        )
    missing = [m for m in modalities if m not in value]
    if missing:
        raise ConfigError(f"{what}: no entry for modalities {missing}")
    return {m: value[m] for m in modalities}


class MultiModalEncoder(nn.Module):
    """One encoder per modality, with an optional projector each.

    Args:
        in_channels: ``{modality: number of bands}``.
        backbone: a timm architecture name for all modalities, or one per modality
            (the thesis: ``{"s1": "small_alexnet", "s2": "small_alexnet", "naip": "resnet18"}``).
        weights: optional local weights file(s), one for all or one per modality.
        projection_dim: embedding size (0 = no projector).
        hidden_dim: projector hidden width.
        projector_layers: projector depth.
        projector_bn: batch norm in the projector.
        backbone_kwargs: extra arguments of ``timm.create_model`` (e.g.
            ``drop_path_rate``), for all modalities.
        dense_dim: size of the dense (per-patch) embeddings of a 1x1-convolution
            projector on the backbone's feature map, for dense matching losses (0 = none).
        bands: ``{modality: band names}`` the encoders read: weights files whose band
            list is known are mapped onto them by name (see :func:`load_backbone_weights`).
        stats: ``{modality: (mean, std)}`` per band the inputs are standardised with: the
            normalisation such weights expect is folded into their first convolution.
    """

    def __init__(
        self,
        in_channels: Mapping[str, int],
        backbone: str | Mapping[str, str] = "resnet18",
        weights: str | Mapping[str, str] | None = None,
        projection_dim: int = 128,
        hidden_dim: int = 512,
        projector_layers: int = 2,
        projector_bn: bool = True,
        backbone_kwargs: Mapping[str, object] | None = None,
        dense_dim: int = 0,
        bands: Mapping[str, Sequence[str]] | None = None,
        stats: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
    ) -> None:
        super().__init__()
        self.modalities = tuple(in_channels)
        if not self.modalities:
            raise ConfigError("in_channels: at least one modality is needed")
        self.archs = per_modality(backbone, self.modalities, "backbone")
        files = per_modality(weights, self.modalities, "weights")
        self.in_channels = dict(in_channels)
        self.backbones = nn.ModuleDict()
        self.projectors = nn.ModuleDict()
        for m in self.modalities:
            net = build_backbone(self.archs[m], in_channels[m], **dict(backbone_kwargs or {}))
            if files[m]:
                load_backbone_weights(net, files[m], (bands or {}).get(m), (stats or {}).get(m))
            self.backbones[m] = net
            if projection_dim > 0:
                self.projectors[m] = ProjectionHead(
                    net.num_features, hidden_dim, projection_dim, projector_layers, projector_bn
                )
        self.projection_dim = projection_dim
        self.dense_dim = dense_dim
        self.dense_projectors = nn.ModuleDict()
        if dense_dim > 0:
            for m in self.modalities:
                f = self.backbones[m].num_features
                self.dense_projectors[m] = nn.Sequential(
                    nn.Conv2d(f, hidden_dim, 1),
                    nn.ReLU(inplace=True),
                    nn.Conv2d(hidden_dim, dense_dim, 1),
                )

    def num_features(self, modalities: Sequence[str] | None = None) -> int:
        """Size of the fused (concatenated) features of ``modalities``."""
        return sum(self.backbones[m].num_features for m in (modalities or self.modalities))

    @staticmethod
    def fuse_first_view(
        feats: Mapping[str, Tensor], modalities: Sequence[str], batch_size: int
    ) -> Tensor:
        """Fused features of the first view from :meth:`embed_views`' per-modality
        features (rows ordered view, sample), without another backbone pass."""
        return torch.cat([feats[m][:batch_size] for m in modalities], dim=1)

    def features(
        self, x: Mapping[str, Tensor], presence: Mapping[str, Tensor] | None = None
    ) -> dict[str, Tensor]:
        """Pooled backbone features ``{modality: B x F}`` of the modalities in ``x``.

        With ``presence``, a modality's encoder sees only the rows of the samples that
        have it (zero-filled rows would enter batch-norm statistics); the other rows of
        its features are zero.
        """
        out = {}
        for m, t in x.items():
            keep = None if presence is None or m not in presence else presence[m].to(torch.bool)
            if keep is None or bool(keep.all()):
                out[m] = self.backbones[m](t)
            elif bool(keep.any()):
                out[m] = scatter_rows(self.backbones[m](t[keep]), keep)
            else:
                width = self.backbones[m].num_features
                out[m] = t.new_zeros(t.shape[0], width)
        return out

    def fused(
        self,
        x: Mapping[str, Tensor],
        modalities: Sequence[str] | None = None,
        presence: Mapping[str, Tensor] | None = None,
        fusion: Fusion | None = None,
    ) -> Tensor:
        """Fused backbone features of ``modalities`` (default: all in ``x``), in order.

        Args:
            x: ``{modality: B x C x H x W}`` images.
            modalities: the modalities fused, in order.
            presence: ``{modality: B booleans}`` (see :mod:`rsmm.models.fusion`).
            fusion: a :class:`~rsmm.models.fusion.Fusion` over ``modalities``; without
                one, concatenation of modalities that ``x`` must all have.
        """
        mods = tuple(modalities or x.keys())
        if fusion is None:
            missing = [m for m in mods if m not in x]
            if missing:
                raise UnknownNameError(f"batch lacks modalities {missing}")
            return torch.cat([self.backbones[m](x[m]) for m in mods], dim=1)
        return fusion(self.features({m: x[m] for m in mods if m in x}, presence), presence)

    def embed_views(
        self,
        views: Mapping[str, Sequence[Tensor]],
        dense: bool = False,
        samples: SampleInfo | None = None,
    ) -> EmbeddedViews:
        """Embed every (modality, view): each modality's views go through its encoder
        as one batch.

        Args:
            views: ``{modality: [view_1, ..., view_V]}``, each ``B x C x H x W``.
            dense: also compute dense embeddings ``B x dense_dim x h x w`` per group (one
                backbone pass gives both pooled and dense features).
            samples: what is known about the batch's samples (labels, negative-only
                samples, presence, metadata), carried along for the objectives.

        Returns:
            The :class:`~rsmm.models.views.EmbeddedViews`: one projector output per
            (modality, view) group in the order of ``views``, each modality's backbone
            features and, with ``dense=True``, the dense embeddings.
        """
        if dense and self.dense_dim <= 0:
            raise ConfigError("dense embeddings need an encoder built with dense_dim > 0")
        embeddings: list[Tensor] = []
        layout: list[tuple[str, int]] = []
        features: dict[str, Tensor] = {}
        dense_maps: list[Tensor] = []
        for m, vs in views.items():
            if m not in self.backbones:
                raise UnknownNameError(
                    f"no encoder for modality {m!r} (have {list(self.modalities)})"
                )
            x = torch.cat(list(vs), dim=0)
            net = self.backbones[m]
            # rows of samples that lack the modality never go through the encoder (their
            # zero placeholders would enter batch-norm statistics); their outputs are 0
            keep = present_views(samples, m, len(vs))
            if keep is not None:
                x = x[keep]
            if dense:
                fmap = net.forward_features(x)
                f = net.forward_head(fmap, pre_logits=True)
                d = self.dense_projectors[m](fmap)
                dense_maps.extend(scatter_rows(d, keep).chunk(len(vs), dim=0))
            else:
                f = net(x)
            z = self.projectors[m](f) if self.projection_dim > 0 else f
            f, z = scatter_rows(f, keep), scatter_rows(z, keep)
            embeddings.extend(z.float().chunk(len(vs), dim=0))
            layout.extend((m, v) for v in range(len(vs)))
            features[m] = f
        return EmbeddedViews(
            tuple(embeddings),
            tuple(layout),
            features,
            tuple(dense_maps) if dense else None,
            samples or SampleInfo(),
        )
