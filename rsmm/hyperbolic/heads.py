"""Classification heads on the Poincaré ball (and a Euclidean one), all ``N x d -> N x K``.

The hyperbolic heads take points already inside the ball; :func:`build_head` puts a
:class:`~rsmm.hyperbolic.ball.ToPoincare` layer in front of them. Manifold parameters
(prototypes on the sphere, gyroplane offsets in the ball) are
:class:`geoopt.ManifoldParameter` s: train them with :func:`make_optimizer`.
"""

from __future__ import annotations

from collections.abc import Iterable

import geoopt
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rsmm.hyperbolic.ball import BOUNDARY_EPS, ToPoincare, _compute_dtype, busemann, poincare_ball
from rsmm.hyperbolic.metric_prototypes import MetricGuidedPrototypes
from rsmm.hyperbolic.prototypes import uniform_prototypes


def _log_one_minus_sq(x: Tensor, c: float) -> Tensor:
    """``log(1 - c ||x||^2)`` in float32 or wider, clamped away from the boundary."""
    x = x.to(_compute_dtype(x))
    return (1.0 - c * x.pow(2).sum(-1, keepdim=True)).clamp_min(BOUNDARY_EPS).log()


def _init_prototypes(prototypes: Tensor | None, dim: int, num_classes: int) -> Tensor:
    if prototypes is None:
        return uniform_prototypes(num_classes, dim)
    prototypes = torch.as_tensor(prototypes, dtype=torch.float32)
    if tuple(prototypes.shape) != (num_classes, dim):
        raise ValueError(
            f"prototypes must be num_classes x dim = {num_classes} x {dim}, "
            f"got {tuple(prototypes.shape)}"
        )
    return F.normalize(prototypes, dim=-1)


class HorosphericalClassifier(nn.Module):
    """Horospherical classifier with ideal prototypes (thesis eq. 5.1-5.4).

    Logit of class k::

        xi_k(x) = -B_{p_k}(x) + a_k + phi(d) * log(1 - c ||x||^2),   phi(d) = lam * d

    with ``B`` the Busemann function (:func:`~rsmm.hyperbolic.ball.busemann`), ``p_k`` a
    unit vector (an ideal point) and ``a_k`` a Euclidean bias; the decision boundaries
    are horospheres. The penalty is the same for every class, so it cancels in a softmax;
    it shapes the logits for per-class losses (sigmoid / multi-label) and for the
    Busemann loss. Prototypes are learnable on the sphere (``geoopt.Sphere``) unless
    ``learn_prototypes=False``.

    Args:
        dim: embedding dimension d.
        num_classes: number of classes K.
        prototypes: ``K x d`` initial prototypes (normalised); default
            :func:`~rsmm.hyperbolic.prototypes.uniform_prototypes`.
        lam: slope of the penalty, ``phi(d) = lam * d``.
        bias: learn the biases ``a_k`` (else a = 0).
        c: curvature magnitude of the ball.
        learn_prototypes: train the prototypes (Riemannian) or keep them fixed.
    """

    def __init__(
        self,
        dim: int,
        num_classes: int,
        prototypes: Tensor | None = None,
        lam: float = 0.1,
        bias: bool = True,
        c: float = 1.0,
        learn_prototypes: bool = True,
    ) -> None:
        super().__init__()
        self.dim, self.num_classes, self.lam, self.c = dim, num_classes, float(lam), float(c)
        init = _init_prototypes(prototypes, dim, num_classes)
        if learn_prototypes:
            self.prototypes = geoopt.ManifoldParameter(init, manifold=geoopt.Sphere())
        else:
            self.register_buffer("prototypes", init)
        self.bias = nn.Parameter(torch.zeros(num_classes)) if bias else None

    @property
    def phi(self) -> float:
        """The penalty weight ``phi(d) = lam * d``."""
        return self.lam * self.dim

    def forward(self, x: Tensor) -> Tensor:
        """``N x d`` points of the ball -> ``N x K`` logits (float32 or wider)."""
        logits = -busemann(x, self.prototypes, c=self.c)
        if self.phi != 0:
            logits = logits + self.phi * _log_one_minus_sq(x, self.c)
        if self.bias is not None:
            logits = logits + self.bias
        return logits

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_classes={self.num_classes}, lam={self.lam}, c={self.c}"


class BusemannClassifier(HorosphericalClassifier):
    """Fixed ideal prototypes and the penalised Busemann loss.

    Ghadimi Atigh, Keller-Ressel, Mettes, "Hyperbolic Busemann learning with ideal
    prototypes", NeurIPS 2021. Logits are ``-B_{p_k}(x) + phi(d) log(1 - c ||x||^2)``
    (prototypes fixed, no bias) and the training loss of a sample of class y is its
    penalised Busemann value ``B_{p_y}(x) - phi(d) log(1 - c ||x||^2)``, see :meth:`loss`.
    Prediction is the argmax of the logits.

    Args:
        dim: embedding dimension d.
        num_classes: number of classes K.
        prototypes: ``K x d`` prototypes (e.g. hierarchical ones); default uniform.
        lam: slope of the penalty, ``phi(d) = lam * d``.
        c: curvature magnitude of the ball.
    """

    def __init__(
        self,
        dim: int,
        num_classes: int,
        prototypes: Tensor | None = None,
        lam: float = 0.1,
        c: float = 1.0,
    ) -> None:
        super().__init__(
            dim, num_classes, prototypes, lam=lam, bias=False, c=c, learn_prototypes=False
        )

    @staticmethod
    def loss(logits: Tensor, target: Tensor) -> Tensor:
        """Mean penalised Busemann loss ``-logits[i, y_i]`` of the target classes."""
        return -logits.gather(1, target.long().view(-1, 1)).mean()


class GyroplaneClassifier(nn.Module):
    """Hyperbolic multinomial logistic regression (Ganea, Bécigneul, Hofmann, NeurIPS 2018).

    Class k has an offset ``p_k`` in the ball and a normal ``a_k`` (a tangent vector at the
    origin, parallel-transported to ``p_k``); its logit is
    ``lambda_{p_k} ||a_k|| d_signed(x, H_k)``, the signed distance to the gyroplane
    ``H_k = {x : <(-p_k) (+) x, a_k> = 0}`` scaled by the normal's norm (geoopt's
    ``dist2plane(..., signed=True, scaled=True)``).

    Args:
        dim: embedding dimension d.
        num_classes: number of classes K.
        c: curvature magnitude of the ball.
    """

    def __init__(self, dim: int, num_classes: int, c: float = 1.0) -> None:
        super().__init__()
        self.dim, self.num_classes, self.c = dim, num_classes, float(c)
        self.ball = poincare_ball(c)
        self.offsets = geoopt.ManifoldParameter(torch.zeros(num_classes, dim), manifold=self.ball)
        bound = dim**-0.5
        self.normals = nn.Parameter(torch.empty(num_classes, dim).uniform_(-bound, bound))

    def forward(self, x: Tensor) -> Tensor:
        """``N x d`` points of the ball -> ``N x K`` logits (float32 or wider)."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.to(_compute_dtype(x)).unsqueeze(-2)
            p = self.offsets.to(x.dtype)
            a = self.ball.transp0(p, self.normals.to(x.dtype))
            dist = self.ball.dist2plane(x, p, a, signed=True, scaled=True)
            return self.ball.lambda_x(p) * dist

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_classes={self.num_classes}, c={self.c}"


class EuclideanClassifier(nn.Linear):
    """The linear baseline ``x W^T + b`` (features are not mapped to the ball)."""

    def __init__(self, dim: int, num_classes: int, bias: bool = True) -> None:
        super().__init__(dim, num_classes, bias=bias)


HEADS: dict[str, type[nn.Module]] = {
    "horospherical": HorosphericalClassifier,
    "busemann": BusemannClassifier,
    "gyroplane": GyroplaneClassifier,
    "linear": EuclideanClassifier,
    "mgp": MetricGuidedPrototypes,
}
#: heads that read Euclidean features (no :class:`~rsmm.hyperbolic.ball.ToPoincare` in front)
EUCLIDEAN_HEADS = ("linear", "mgp")


def build_head(
    name: str,
    dim: int,
    num_classes: int,
    c: float = 1.0,
    clip_r: float | None = None,
    **kwargs: object,
) -> nn.Module:
    """A classification head by name, taking Euclidean features.

    Args:
        name: ``"horospherical"``, ``"busemann"``, ``"gyroplane"``, ``"linear"`` or
            ``"mgp"`` (:class:`~rsmm.hyperbolic.metric_prototypes.MetricGuidedPrototypes`,
            which needs ``cost=``).
        dim: feature dimension.
        num_classes: number of classes.
        c: curvature of the ball (hyperbolic heads).
        clip_r: feature clipping radius of :class:`~rsmm.hyperbolic.ball.ToPoincare`.
        **kwargs: passed to the head's constructor.

    Returns:
        ``nn.Sequential(ToPoincare(c, clip_r), head)`` for the hyperbolic heads, the head
        alone for the Euclidean ones (``"linear"``: an ``nn.Linear``; ``"mgp"``).
    """
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r}; choose one of {', '.join(HEADS)}")
    if name in EUCLIDEAN_HEADS:
        return HEADS[name](dim, num_classes, **kwargs)
    head = HEADS[name](dim, num_classes, c=c, **kwargs)
    return nn.Sequential(ToPoincare(c=c, clip_r=clip_r), head)


def make_optimizer(
    params: nn.Module | Iterable[Tensor], lr: float, weight_decay: float = 0.0
) -> geoopt.optim.RiemannianAdam:
    """Riemannian Adam over manifold and Euclidean parameters together.

    Manifold parameters are updated along their manifold (retraction keeps prototypes on
    the sphere, offsets in the ball) and get no weight decay; Euclidean parameters are
    plain Adam(W) steps with ``weight_decay``.

    Args:
        params: a module or an iterable of parameters.
        lr: learning rate.
        weight_decay: weight decay of the Euclidean parameters.
    """
    if isinstance(params, nn.Module):
        params = params.parameters()
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("make_optimizer got no trainable parameters")
    manifold = [p for p in params if isinstance(p, geoopt.ManifoldParameter)]
    euclidean = [p for p in params if not isinstance(p, geoopt.ManifoldParameter)]
    groups = []
    if euclidean:
        groups.append({"params": euclidean, "weight_decay": weight_decay})
    if manifold:
        groups.append({"params": manifold, "weight_decay": 0.0})
    return geoopt.optim.RiemannianAdam(groups, lr=lr)
