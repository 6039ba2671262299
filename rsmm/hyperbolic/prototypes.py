"""Class prototypes on the unit sphere: uniform, hierarchical (Gromov-Wasserstein), radial.

The sphere is the boundary of the Poincaré ball: these are the ideal prototypes of the
horospherical and Busemann classifiers (thesis chapter 5).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import geoopt
import numpy as np
import ot
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from rsmm.errors import ConfigError
from rsmm.hyperbolic.hierarchy import LabelTree


def gaussian_uniformity(p: Tensor) -> Tensor:
    """Gaussian-potential uniformity of points on the sphere, eq. 5.5.

    ``log mean_{i != j} exp(-||p_i - p_j||^2)`` (Wang & Isola, 2020, with t = 1); lower
    is more uniform.

    Args:
        p: ``n x d`` points (n >= 2).
    """
    n = p.shape[0]
    if n < 2:
        raise ConfigError(f"uniformity needs at least 2 points, got {n}")
    # cdist has no half-precision kernel on CPU: half inputs are computed in float32.
    p = p.to(torch.promote_types(p.dtype, torch.float32))
    sq = torch.cdist(p, p).pow(2)
    off = ~torch.eye(n, dtype=torch.bool, device=p.device)
    return torch.logsumexp(-sq[off], dim=0) - math.log(n * (n - 1))


def uniform_prototypes(
    n: int, d: int, steps: int = 1000, seed: int = 0, lr: float = 0.05
) -> Tensor:
    """``n`` prototypes spread uniformly on the unit sphere of ``R^d``.

    On the circle (``d = 2``) they are the closed-form optimum, equally spaced angles
    ``2 pi k / n``. Otherwise a seeded random start is moved by Riemannian Adam on the
    sphere to minimise :func:`gaussian_uniformity` (eq. 5.5).

    Args:
        n: number of prototypes.
        d: dimension of the ambient space (>= 2).
        steps: optimisation steps (d > 2).
        seed: seed of the random start.
        lr: Riemannian Adam learning rate.

    Returns:
        ``n x d`` float32 tensor of unit rows.
    """
    if n < 1:
        raise ConfigError(f"n must be >= 1, got {n}")
    if d < 2:
        raise ConfigError(f"d must be >= 2, got {d}")
    if d == 2:
        angles = torch.arange(n, dtype=torch.float64) * (2 * math.pi / n)
        return torch.stack([angles.cos(), angles.sin()], dim=1).float()
    gen = torch.Generator().manual_seed(seed)
    start = torch.randn(n, d, generator=gen, dtype=torch.float64)
    sphere = geoopt.Sphere()
    points = geoopt.ManifoldParameter(sphere.projx(start), manifold=sphere)
    if n > 1:
        opt = geoopt.optim.RiemannianAdam([points], lr=lr)
        for _ in range(steps):
            opt.zero_grad()
            gaussian_uniformity(points).backward()
            opt.step()
    return sphere.projx(points.detach()).float()


#: how :func:`gw_assignment` rounds the GW plan to an assignment
ROUNDINGS = ("assignment", "argmax")


def gw_assignment(
    class_distances: Tensor | np.ndarray,
    prototypes: Tensor | np.ndarray,
    n_init: int = 10,
    seed: int = 0,
    refine: bool = True,
    normalise: bool = True,
    rounding: str = "assignment",
) -> np.ndarray:
    """Assignment of classes to prototypes by Gromov-Wasserstein, eq. 5.6-5.7.

    Solves square-loss GW (POT's ``ot.gromov.gromov_wasserstein``) between the class
    metric and the prototypes' cosine distance ``1 - <p_i, p_j>``.

    rsmm's defaults: each metric is divided by its maximum so that both live on the same
    scale (``normalise``); GW is non-convex, so it is started from the product coupling
    and from ``n_init - 1`` seeded couplings mixed with random permutations; each plan is
    rounded to a permutation by ``scipy.optimize.linear_sum_assignment(-P)``
    (``rounding="assignment"``: an argmax per row can give two classes the same
    prototype), optionally improved by swapping pairs of classes while the GW cost of
    the permutation decreases (``refine``), and the permutation with the lowest cost is
    kept.

    The thesis' procedure (eq. 5.6-5.7 as printed) is ``normalise=False, n_init=1,
    rounding="argmax"``: one GW solve from the product coupling on the raw metrics, class
    ``i`` taking the prototype ``argmax_j P_ij`` (two classes may then share one;
    ``refine`` only applies to ``rounding="assignment"``).

    Args:
        class_distances: ``K x K`` metric between classes (e.g. tree path lengths).
        prototypes: ``K x d`` unit vectors.
        n_init: number of GW starts (>= 1).
        seed: seed of the random starts.
        refine: polish each rounded permutation by pairwise swaps (a local search on the
            same objective; ``O(K^4)`` per pass, fine for tens of classes).
        normalise: divide each metric by its maximum.
        rounding: ``"assignment"`` (one-to-one) or ``"argmax"`` (row argmax).

    Returns:
        ``perm`` of length K: class ``i`` gets prototype ``perm[i]``.
    """
    c1 = np.asarray(torch.as_tensor(class_distances, dtype=torch.float64))
    protos = np.asarray(torch.as_tensor(prototypes, dtype=torch.float64))
    k = c1.shape[0]
    if c1.shape != (k, k) or protos.shape[0] != k:
        raise ConfigError(
            f"class_distances must be K x K and prototypes K x d, got {c1.shape} and {protos.shape}"
        )
    if n_init < 1:
        raise ConfigError(f"n_init must be >= 1, got {n_init}")
    if rounding not in ROUNDINGS:
        raise ConfigError(f"rounding: unknown {rounding!r}; choose one of {', '.join(ROUNDINGS)}")
    c2 = np.clip(1.0 - protos @ protos.T, 0.0, None)
    np.fill_diagonal(c2, 0.0)
    if normalise:
        c1 = c1 / max(c1.max(), 1e-12)
        c2 = c2 / max(c2.max(), 1e-12)
    marg = np.full(k, 1.0 / k)
    rng = np.random.default_rng(seed)
    best, best_cost = np.arange(k), math.inf
    for start in range(n_init):
        g0 = np.outer(marg, marg)
        if start > 0:
            g0 = 0.5 * g0 + 0.5 * np.eye(k)[rng.permutation(k)] / k
        plan = ot.gromov.gromov_wasserstein(c1, c2, marg, marg, loss_fun="square_loss", G0=g0)
        if rounding == "argmax":
            perm = plan.argmax(axis=1)
        else:
            _, perm = linear_sum_assignment(-plan)
            if refine:
                perm = _swap_search(c1, c2, perm)
        cost = _perm_cost(c1, c2, perm)
        if cost < best_cost - 1e-12:
            best, best_cost = perm, cost
    return best


def _perm_cost(c1: np.ndarray, c2: np.ndarray, perm: np.ndarray) -> float:
    """GW square-loss cost of the one-to-one matching ``i -> perm[i]``."""
    return float(((c1 - c2[np.ix_(perm, perm)]) ** 2).sum())


def _swap_search(
    c1: np.ndarray, c2: np.ndarray, perm: np.ndarray, max_swaps: int = 10_000
) -> np.ndarray:
    """Apply the best pairwise swap of assignments while the GW cost decreases.

    For symmetric zero-diagonal ``c1`` and ``b = c2[perm][:, perm]``, swapping the
    prototypes of classes i and j changes the cost by
    ``4 (S_ij - 2 c1_ij b_ij)``, ``S_ij = sum_k (c1_ik - c1_jk)(b_ik - b_jk)``: every
    swap is scored at once from ``g = c1 b^T``.
    """
    perm = perm.copy()
    for _ in range(max_swaps):
        b = c2[np.ix_(perm, perm)]
        g = c1 @ b.T
        diag = np.diag(g)
        delta = 4.0 * (diag[:, None] + diag[None, :] - g - g.T - 2.0 * c1 * b)
        i, j = np.unravel_index(np.argmin(delta), delta.shape)
        if delta[i, j] >= -1e-12:
            break
        perm[[i, j]] = perm[[j, i]]
    return perm


def hierarchical_prototypes(
    tree: LabelTree,
    d: int,
    classes: Sequence[str] | None = None,
    prototypes: Tensor | None = None,
    steps: int = 1000,
    seed: int = 0,
    n_init: int = 10,
    refine: bool = True,
    normalise: bool = True,
    rounding: str = "assignment",
    pad: bool = False,
) -> Tensor:
    """Uniform prototypes assigned to classes so that the tree's neighbours stay close.

    The prototypes (given, or :func:`uniform_prototypes`) are matched to the classes by
    :func:`gw_assignment` between the tree's leaf path-length metric and the cosine
    distance (thesis eq. 5.5-5.7).

    Args:
        tree: label hierarchy.
        d: prototype dimension.
        classes: class names in label order (default ``tree.leaves``).
        prototypes: ``K x d`` unit vectors to assign (default: uniform ones).
        steps: optimisation steps of :func:`uniform_prototypes`.
        seed: seed of the uniform prototypes and of the GW starts.
        n_init: number of GW starts.
        refine: polish the GW assignment by pairwise swaps (see :func:`gw_assignment`).
        normalise: scale both metrics to a maximum of 1 (see :func:`gw_assignment`).
        rounding: ``"assignment"`` or ``"argmax"`` (see :func:`gw_assignment`).
        pad: pad the tree's short branches with inert nodes first
            (:meth:`LabelTree.padded`), as the thesis does.

    The thesis' procedure is ``normalise=False, n_init=1, rounding="argmax", pad=True``.

    Returns:
        ``K x d`` float32 prototypes, row ``i`` for class ``i``.
    """
    classes = tree.leaves if classes is None else list(classes)
    dist = (tree.padded() if pad else tree).distance_matrix(classes)
    if prototypes is None:
        prototypes = uniform_prototypes(len(classes), d, steps=steps, seed=seed)
    elif tuple(prototypes.shape) != (len(classes), d):
        raise ConfigError(f"prototypes must be {len(classes)} x {d}, got {tuple(prototypes.shape)}")
    perm = gw_assignment(
        dist,
        prototypes,
        n_init=n_init,
        seed=seed,
        refine=refine,
        normalise=normalise,
        rounding=rounding,
    )
    return prototypes[torch.as_tensor(perm)].float()


def radial_layout(tree: LabelTree, classes: Sequence[str] | None = None) -> Tensor:
    """Prototypes on the circle with angular sectors proportional to leaf counts.

    Each node receives a sector of ``[0, 2 pi)`` proportional to the number of its
    leaves among ``classes``, split among its children in document order; a leaf sits
    at the middle of its sector. Leaves of one subtree are therefore contiguous and all
    leaves equally spaced.

    Args:
        tree: label hierarchy.
        classes: class names in label order (default ``tree.leaves``).

    Returns:
        ``K x 2`` float32 unit vectors, row ``i`` for class ``i``.
    """
    classes = tree.leaves if classes is None else list(classes)
    tree.check_classes(classes)
    wanted = set(classes)
    order = [leaf for leaf in tree.all_leaves if leaf in wanted]
    step = 2 * math.pi / len(order)
    angle = {leaf: (i + 0.5) * step for i, leaf in enumerate(order)}
    theta = torch.tensor([angle[c] for c in classes], dtype=torch.float64)
    return torch.stack([theta.cos(), theta.sin()], dim=1).float()
