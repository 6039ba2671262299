"""Loss functions: pure functions of tensors, with thin ``nn.Module`` wrappers.

* multimodal contrastive losses (:mod:`.contrastive`): :func:`mm_ntxent` (eq. 4.1),
  :func:`mm_supcon` (eq. 4.3-4.4), the y-aware :func:`mm_kernel_ntxent` with the
  metadata kernels of :mod:`.kernels` (location, date) and the per-anchor form they share;
* eq. 4.1 in the Poincaré ball (:mod:`.hyperbolic`): :func:`hyp_ntxent`;
* classification losses and the SupCon mixture of eq. 4.5 (:mod:`.classification`);
* the baseline SSL losses lightly has no form for (:mod:`.ssl`): MoCo's InfoNCE with a
  queue, cross-group MoCo and BYOL, MMCR;
* optimal transport for SSL (:mod:`rsmm.losses.ot`): solvers, plan losses, sliced
  uniformity, generalised contrastive alignment and dense matching.

Equation numbers (eq. X.Y) are those of the PhD thesis rsmm implements (multimodal SSL
and SupCon, optimal transport for SSL, horospherical classifiers); the docstrings restate
what each loss computes, so that nothing depends on having read it. Other papers are
cited by arXiv id.

Example:
    >>> from rsmm.losses import mm_ntxent
    >>> z = torch.nn.functional.normalize(torch.randn(12, 32), dim=1)
    >>> loss = mm_ntxent(z, torch.arange(4).repeat(3), tau=0.1)
"""

from rsmm.losses import ot
from rsmm.losses.classification import (
    classification_loss,
    focal_loss,
    inverse_frequency_weights,
    supcon_mixture,
)
from rsmm.losses.contrastive import (
    MMNTXentLoss,
    MMSupConLoss,
    kernel_positives,
    mm_kernel_ntxent,
    mm_ntxent,
    mm_supcon,
    per_anchor_contrastive,
    supcon_positives,
)
from rsmm.losses.hyperbolic import hyp_ntxent, poincare_similarity
from rsmm.losses.kernels import (
    delta_kernel,
    doy_kernel,
    geo_kernel,
    geo_time_kernel,
    label_kernel,
)
from rsmm.losses.ssl import (
    cross_group_byol,
    cross_group_moco,
    mean_over_pairs,
    mmcr_loss,
    moco_infonce,
)

__all__ = [
    "MMNTXentLoss",
    "MMSupConLoss",
    "classification_loss",
    "cross_group_byol",
    "cross_group_moco",
    "delta_kernel",
    "doy_kernel",
    "focal_loss",
    "geo_kernel",
    "geo_time_kernel",
    "hyp_ntxent",
    "inverse_frequency_weights",
    "kernel_positives",
    "label_kernel",
    "mean_over_pairs",
    "mm_kernel_ntxent",
    "mm_ntxent",
    "mm_supcon",
    "mmcr_loss",
    "moco_infonce",
    "ot",
    "per_anchor_contrastive",
    "poincare_similarity",
    "supcon_mixture",
    "supcon_positives",
]
