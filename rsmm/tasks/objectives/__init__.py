"""Pre-training objectives: what ``PretrainTask(loss=<name>)`` runs.

One class per objective (see :class:`~rsmm.tasks.objectives.base.Objective`), grouped
by family:

* :mod:`.contrastive`: ``ntxent`` (eq. 4.1), ``supcon`` (eq. 4.3-4.4), ``kernel_ntxent``
  (eq. 4.1 weighted by a kernel on location and date, arXiv:2106.08808);
* :mod:`.pairwise`: ``ot_sample``, ``ot_feature``, ``coot``, ``ssw_ssl``, ``sw_ssl``,
  ``align_uniform``, ``infonce_alignment``, ``gca_ince``, ``gca_rince``, ``gca_uot``
  (thesis chapter 3 and generalised contrastive alignment);
* :mod:`.ssl`: the baseline methods ``moco``, ``byol``, ``barlow_twins``, ``vicreg``,
  ``mmcr``;
* :mod:`.dense`: dense matching added to a global objective (``PretrainTask(dense=...)``).

Equation numbers are those of the PhD thesis rsmm implements (see :mod:`rsmm.losses`).

Adding an objective is one class in one of these modules (or a new one) and one entry
in :data:`OBJECTIVES` below.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rsmm.errors import ConfigError
from rsmm.models.multimodal import MultiModalEncoder
from rsmm.tasks.objectives.base import Objective, Ranks, Views
from rsmm.tasks.objectives.contrastive import KernelNTXent, NTXent, SupCon
from rsmm.tasks.objectives.dense import DenseMatching, check_dense
from rsmm.tasks.objectives.hyperbolic import HypNTXent
from rsmm.tasks.objectives.pairwise import (
    COOT,
    GCAUOT,
    SSWSSL,
    SWSSL,
    AlignUniform,
    GCAInce,
    GCARInce,
    InfoNCEAlignment,
    OTFeature,
    OTSample,
)
from rsmm.tasks.objectives.ssl import BYOL, MMCR, BarlowTwins, MoCo, VICReg


def _registry(*classes: type[Objective]) -> dict[str, type[Objective]]:
    names = [c.name for c in classes]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated or not all(names):
        raise RuntimeError(f"objective names must be unique and non-empty: {repeated or names}")
    return dict(zip(names, classes))


#: every objective by its ``PretrainTask(loss=...)`` name, in the order listed to users
OBJECTIVES: dict[str, type[Objective]] = _registry(
    NTXent,
    SupCon,
    KernelNTXent,
    OTSample,
    OTFeature,
    COOT,
    SSWSSL,
    SWSSL,
    AlignUniform,
    InfoNCEAlignment,
    GCAInce,
    GCARInce,
    GCAUOT,
    MoCo,
    BYOL,
    BarlowTwins,
    VICReg,
    MMCR,
    HypNTXent,
)


def objective_names(kind: type[Objective] = Objective) -> tuple[str, ...]:
    """The registered names of the objectives derived from ``kind`` (default: all)."""
    return tuple(name for name, cls in OBJECTIVES.items() if issubclass(cls, kind))


def get_objective(name: str) -> type[Objective]:
    """The objective class registered as ``name``.

    Raises:
        ConfigError: for an unknown name, listing the known ones.
    """
    if name not in OBJECTIVES:
        raise ConfigError(f"loss: unknown {name!r}; choose one of {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name]


def check_objective(name: str, options: Mapping[str, Any] | None = None) -> type[Objective]:
    """The class of objective ``name`` once its ``loss_kwargs`` are checked.

    Raises:
        ConfigError: for an unknown objective, or an unknown or out-of-range option.
    """
    cls = get_objective(name)
    cls.check_options(options)
    return cls


def build_objective(
    name: str,
    encoder: MultiModalEncoder,
    *,
    temperature: float,
    hidden_dim: int = 512,
    batch_norm: bool = True,
    options: Mapping[str, Any] | None = None,
) -> Objective:
    """Objective ``name`` for ``encoder`` with its ``loss_kwargs`` ``options`` (checked
    by the objective, see :meth:`Objective.check_options`)."""
    return get_objective(name)(
        encoder,
        temperature=temperature,
        hidden_dim=hidden_dim,
        batch_norm=batch_norm,
        **dict(options or {}),
    )


__all__ = [
    "OBJECTIVES",
    "DenseMatching",
    "Objective",
    "Ranks",
    "Views",
    "build_objective",
    "check_dense",
    "check_objective",
    "get_objective",
    "objective_names",
]
