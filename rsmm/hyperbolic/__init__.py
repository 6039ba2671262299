"""Hyperbolic classification: Poincaré-ball maps, horospherical heads, prototypes, metrics.

Thesis chapter 5: features are mapped into the Poincaré ball (:class:`ToPoincare`) and
classified against ideal prototypes on its boundary (:class:`HorosphericalClassifier`),
placed by Gromov-Wasserstein according to the label tree (:func:`hierarchical_prototypes`)
so that mistakes fall between related classes (:func:`average_hierarchical_cost`). The
Euclidean baseline of the same idea, Metric-Guided Prototypes (Garnot & Landrieu 2021),
is :class:`MetricGuidedPrototypes` (``head: mgp``).
"""

from typing import Any

from rsmm.hyperbolic.ball import ToPoincare, busemann, poincare_ball
from rsmm.hyperbolic.heads import (
    HEADS,
    BusemannClassifier,
    EuclideanClassifier,
    GyroplaneClassifier,
    HorosphericalClassifier,
    build_head,
    make_optimizer,
)
from rsmm.hyperbolic.hierarchy import LabelTree, available_hierarchies
from rsmm.hyperbolic.metric_prototypes import (
    MetricGuidedPrototypes,
    distortion_loss,
    optimal_scale,
    prototype_distances,
)
from rsmm.hyperbolic.metrics import (
    AverageHierarchicalCost,
    average_hierarchical_cost,
    mistake_severity,
)
from rsmm.hyperbolic.prototypes import (
    gaussian_uniformity,
    gw_assignment,
    hierarchical_prototypes,
    radial_layout,
    uniform_prototypes,
)

__all__ = [
    "HEADS",
    "AverageHierarchicalCost",
    "BusemannClassifier",
    "EuclideanClassifier",
    "GyroplaneClassifier",
    "HorosphericalClassifier",
    "LabelTree",
    "MetricGuidedPrototypes",
    "ToPoincare",
    "available_hierarchies",
    "average_hierarchical_cost",
    "build_head",
    "busemann",
    "distortion_loss",
    "gaussian_uniformity",
    "gw_assignment",
    "hierarchical_prototypes",
    "make_optimizer",
    "mistake_severity",
    "optimal_scale",
    "plot_poincare",
    "poincare_ball",
    "prototype_distances",
    "radial_layout",
    "uniform_prototypes",
]


def __getattr__(name: str) -> Any:
    # matplotlib is imported only when a plot is asked for.
    if name == "plot_poincare":
        from rsmm.hyperbolic.plot import plot_poincare

        return plot_poincare
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
