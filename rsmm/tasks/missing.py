"""What a fine-tuning task needs to serve samples that lack a modality.

A batch may carry ``presence`` (``{modality: B booleans}``, see
:mod:`rsmm.datamodules.collate`) or not carry a modality at all (a test on data that
loads only some of the model's modalities). :class:`MissingModalities`, mixed into
:class:`~rsmm.tasks.finetune.FinetuneTask`, turns both into one presence mapping over the
model's modalities, applies seeded modality dropout while training, rebuilds a model
from a checkpoint that has more modalities than the data, and evaluates every
available-modality subset (:class:`~rsmm.tasks.metrics.SubsetMetrics`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from rsmm.errors import UnknownNameError
from rsmm.models.fusion import modality_dropout
from rsmm.tasks.metrics import SubsetMetrics, modality_subsets


class MissingModalities:
    """Mixin of a fine-tuning task (a ``LightningModule`` with ``hparams``,
    :attr:`modalities`, ``configure_models`` and ``head_inputs``) for absent modalities."""

    hparams: Any
    modalities: tuple[str, ...]
    subset_test_metrics: SubsetMetrics
    head: Callable[[Tensor], Tensor]
    _built: bool
    _trainer: Any

    def _serve_checkpoint_modalities(self, checkpoint: Mapping[str, Any]) -> None:
        """Evaluating a checkpoint on data that loads only some of its modalities (``rsmm
        test --data.init_args.modalities [s1]`` on a model fine-tuned on S1 + S2): the
        model, built from the data, is built again with every modality of the checkpoint
        (the others then absent from every sample) before the weights are loaded."""
        trainer = self._trainer
        if trainer is None or trainer.training or not self._built:
            return
        theirs = dict((checkpoint.get("hyper_parameters") or {}).get("in_channels") or {})
        mine = dict(self.hparams.in_channels)
        if not set(mine) < set(theirs) or any(theirs[m] != c for m, c in mine.items()):
            return  # not a subset: the usual checks name what does not fit
        device = self.device
        self.hparams["in_channels"] = theirs
        self.hparams["modalities"] = list(theirs)
        self.configure_models()
        self.to(device)

    def available(self, batch: Mapping[str, Any]) -> tuple[str, ...]:
        """The model's modalities that ``batch`` carries, in the model's order."""
        mods = tuple(m for m in self.modalities if m in batch)
        if not mods:
            raise UnknownNameError(
                f"the batch has none of the model's modalities {list(self.modalities)} "
                f"(keys: {sorted(batch)})"
            )
        return mods

    def presence(self, batch: Mapping[str, Any]) -> dict[str, Tensor] | None:
        """``{modality: B booleans}`` for every modality of the model (False for one the
        batch does not carry), from the batch's ``presence``; ``None`` when every sample
        has every modality of the model."""
        given = batch.get("presence")
        if given is None and all(m in batch for m in self.modalities):
            return None
        b = batch["label"].shape[0]
        device = batch["label"].device
        out = {}
        for m in self.modalities:
            if m not in batch:
                out[m] = torch.zeros(b, dtype=torch.bool, device=device)
            elif given is not None and m in given:
                out[m] = given[m].to(torch.bool)
            else:
                out[m] = torch.ones(b, dtype=torch.bool, device=device)
        return out

    def dropped(self, presence: Mapping[str, Tensor] | None, b: int) -> dict[str, Tensor] | None:
        """``presence`` after modality dropout (while training with
        ``modality_dropout > 0``; else unchanged), seeded by ``modality_dropout_seed``,
        the global step and the rank."""
        p = self.hparams.get("modality_dropout", 0.0)
        if not (self.training and p > 0):
            return presence
        if presence is None:
            device = self.device
            presence = {m: torch.ones(b, dtype=torch.bool, device=device) for m in self.modalities}
        seed = self.hparams.get("modality_dropout_seed", 0)
        gen = torch.Generator().manual_seed(
            (seed * 1_000_003 + self.global_rank * 7_919 + self.global_step) % 2**63
        )
        return modality_dropout(presence, p, gen)

    def _subset_metrics_on(self, presence: Mapping[str, Tensor] | None) -> bool:
        wanted = self.hparams.get("subset_metrics")
        return presence is not None if wanted is None else bool(wanted)

    def _update_subset_metrics(
        self,
        feats: Mapping[str, Tensor],
        presence: Mapping[str, Tensor] | None,
        y: Tensor,
        available: tuple[str, ...],
    ) -> None:
        """Metrics of every non-empty subset of ``available``, each on the samples that
        have all of its modalities, predicting from those modalities only."""
        b = y.shape[0]
        full = presence or {m: torch.ones(b, dtype=torch.bool, device=y.device) for m in available}
        for subset in modality_subsets(available):
            has = torch.stack([full[m] for m in subset]).all(0)
            sub = {m: has if m in subset else torch.zeros_like(has) for m in self.modalities}
            logits = self.head(self.head_inputs(feats, True, sub))
            self.subset_test_metrics.update(
                subset, self._predictions(logits[has]), self._target(y[has])
            )
