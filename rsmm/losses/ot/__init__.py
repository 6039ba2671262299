"""Optimal transport for self-supervised learning (thesis chapter 3).

Solvers (:mod:`.solvers`), plan losses L_Sample / L_Feature / L_COOT (:mod:`.plans`),
sliced uniformity and SSW-SSL (:mod:`.uniformity`), generalised contrastive alignment
(:mod:`.gca`) and dense matching (:mod:`.dense`). Every loss is a pure function of tensors,
with a thin ``nn.Module`` wrapper for configs.
"""

from rsmm.losses.ot.dense import (
    DENSE_NEGATIVES,
    MATCHING_METHODS,
    DenseContrastiveLoss,
    combine_global_dense,
    dense_contrastive_loss,
    dense_matching,
    patch_set,
)
from rsmm.losses.ot.gca import (
    GCALoss,
    cross_view_infonce,
    gca_ince,
    gca_rince,
    gca_uot,
    infonce_alignment,
)
from rsmm.losses.ot.plans import (
    COOTLoss,
    FeatureLoss,
    SampleLoss,
    coot_loss,
    coot_plans,
    feature_loss,
    sample_loss,
)
from rsmm.losses.ot.solvers import sinkhorn, sinkhorn_unbalanced
from rsmm.losses.ot.uniformity import (
    SSWSSLLoss,
    align_loss,
    circle_projections,
    ssw_ssl,
    ssw_uniformity,
    sw_uniformity,
    uniform_loss,
)

__all__ = [
    "DENSE_NEGATIVES",
    "MATCHING_METHODS",
    "COOTLoss",
    "DenseContrastiveLoss",
    "FeatureLoss",
    "GCALoss",
    "SSWSSLLoss",
    "SampleLoss",
    "align_loss",
    "circle_projections",
    "combine_global_dense",
    "coot_loss",
    "coot_plans",
    "cross_view_infonce",
    "dense_contrastive_loss",
    "dense_matching",
    "feature_loss",
    "gca_ince",
    "gca_rince",
    "gca_uot",
    "infonce_alignment",
    "patch_set",
    "sample_loss",
    "sinkhorn",
    "sinkhorn_unbalanced",
    "ssw_ssl",
    "ssw_uniformity",
    "sw_uniformity",
    "uniform_loss",
]
