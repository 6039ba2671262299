"""Hyperbolic multimodal contrastive pre-training: ``loss: hyp_ntxent``.

Thesis section 6.2 (hierarchies of scenes and objects; the radius as uncertainty): the
projector outputs are mapped into the Poincaré ball of curvature ``-c`` by
:class:`~rsmm.hyperbolic.ToPoincare` (feature clipping at ``clip_r``, Guo et al., CVPR
2022, then ``expmap0``) and scored by eq. 4.1 with the similarity ``-d_c(x, y)``, the
geodesic distance (:func:`rsmm.losses.hyp_ntxent`; Ermolov et al., arXiv:2203.10833).
Positives, negatives, the negative-only rule and the DDP gathering are those of
``loss: ntxent``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from rsmm.losses.hyperbolic import poincare_similarity
from rsmm.models.multimodal import MultiModalEncoder
from rsmm.models.views import EmbeddedViews
from rsmm.tasks.objectives.base import check_number
from rsmm.tasks.objectives.contrastive import NTXent


class HypNTXent(NTXent):
    """Multimodal NT-Xent in the Poincaré ball: eq. 4.1 with ``s = -d_c(x, y)``.

    Options (``loss_kwargs``):
        c: curvature magnitude of the ball (> 0; ``c -> 0`` is the Euclidean-distance
            loss with ``s = -2 ||x - y||``).
        clip_r: feature clipping radius before ``expmap0`` (> 0, or ``None``: no
            clipping); 2.3 keeps points at most ``tanh(2.3) = 0.98`` of the radius out.
    """

    name = "hyp_ntxent"
    defaults: ClassVar[Mapping[str, Any]] = {"c": 1.0, "clip_r": 2.3}

    def __init__(self, encoder: MultiModalEncoder, *, temperature: float, **kwargs: Any) -> None:
        super().__init__(encoder, temperature=temperature, **kwargs)
        # geoopt loads with a hyperbolic objective only, not with rsmm.tasks
        from rsmm.hyperbolic.ball import ToPoincare

        self.to_ball = ToPoincare(c=self.options["c"], clip_r=self.options["clip_r"])

    @classmethod
    def check_values(cls, options: Mapping[str, Any]) -> None:
        check_number(options, "c", 0.0, strict=True)
        if options["clip_r"] is not None:
            check_number(options, "clip_r", 0.0, strict=True)

    def rows(self, views: EmbeddedViews) -> Tensor:
        """``K x d`` points of the ball: the projector outputs through :class:`ToPoincare`."""
        return self.to_ball(torch.cat(views.embeddings))

    def similarity(self) -> Callable[[Tensor, Tensor], Tensor]:
        return poincare_similarity(self.options["c"])

