"""What pre-training and fine-tuning tasks share: building the per-modality encoders
from the datamodule's bands, recording what the data was (for export), optimisers.

Following torchgeo's ``BaseTask``, a task splits into ``configure_models``,
``configure_optimizers`` and its steps. Models are built as soon as the number of
bands of every modality is known: from ``in_channels`` when given (and always when a
checkpoint is reloaded, since it is saved in the hyper-parameters), otherwise from the
datamodule in :meth:`setup`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from lightning import LightningModule

from rsmm.checkpoints import check_state_dict, data_info_from
from rsmm.errors import ConfigError, UnknownNameError
from rsmm.models.multimodal import MultiModalEncoder
from rsmm.models.views import META_KEYS, SampleInfo, negative_samples


def encoder_inputs(info: Mapping[str, Any] | None) -> dict[str, Any]:
    """``bands`` and ``stats`` arguments of :class:`MultiModalEncoder` from a task's
    ``data_info`` (weights files from elsewhere are mapped onto them by band name)."""
    info = info or {}
    mean, std = info.get("mean") or {}, info.get("std") or {}
    return {
        "bands": info.get("bands"),
        "stats": {m: (mean[m], std[m]) for m in mean if m in std},
    }


class MultiModalTask(LightningModule):
    """Base of :class:`PretrainTask` and :class:`FinetuneTask`."""

    encoder: MultiModalEncoder

    def __init__(self) -> None:
        super().__init__()
        self._built = False
        #: ids of the classes whose samples only serve as negatives (the dataset's
        #: ``negative_classes``, read from the datamodule in :meth:`setup`)
        self.negative_classes: tuple[int, ...] = ()

    # -- models ------------------------------------------------------------------------

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.hparams["in_channels"])

    def configure_models(self) -> None:
        """Build the encoder (and heads) once ``hparams.in_channels`` is known."""
        raise NotImplementedError

    def _maybe_build(self) -> None:
        if not self._built and self.hparams.get("in_channels"):
            self.configure_models()
            self._built = True

    def configure_model(self) -> None:
        """Lightning's hook (not :meth:`configure_models`, which builds the models): shard
        them over the ranks when the strategy gives a device mesh (ModelParallelStrategy,
        ``--trainer.strategy fsdp2``), through :meth:`shard`; nothing otherwise."""
        if self.device_mesh is not None:
            self.shard(self.device_mesh)

    def shard(self, mesh: Any) -> None:
        """Shard the models over ``mesh`` (FSDP2); idempotent.

        Raises:
            ConfigError: this task does not shard (the default).
        """
        raise ConfigError(
            f"{type(self).__name__} does not shard its models (FSDP2, ModelParallelStrategy): "
            "use --trainer.strategy ddp"
        )

    def _datamodule(self) -> Any:
        trainer = self._trainer
        return None if trainer is None else getattr(trainer, "datamodule", None)

    def setup(self, stage: str) -> None:
        """Take bands and statistics from the datamodule, then build the models."""
        dm = self._datamodule()
        if dm is not None:
            dm_mods = tuple(dm.band_names)
            wanted = self.hparams.get("modalities") or dm_mods
            missing = [m for m in wanted if m not in dm_mods]
            if missing:
                raise ConfigError(
                    f"modalities {missing} are not loaded by the datamodule (it loads {list(dm_mods)})"
                )
            in_ch = {m: len(dm.band_names[m]) for m in wanted}
            if self.hparams.get("in_channels") and dict(self.hparams["in_channels"]) != in_ch:
                raise ConfigError(
                    f"the model was built for bands {dict(self.hparams['in_channels'])} but the "
                    f"datamodule gives {in_ch}"
                )
            self.hparams["in_channels"] = in_ch
            self.negative_classes = self.resolve_negative_classes(
                tuple(getattr(dm, "negative_class_ids", ()))
            )
            if not self.hparams.get("data_info"):
                self.hparams["data_info"] = data_info_from(dm)
        if not self.hparams.get("in_channels"):
            raise ConfigError(
                "the task needs in_channels (bands per modality) or a datamodule to read them from"
            )
        self._maybe_build()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """When a run restores a checkpoint (``Trainer.fit/test(ckpt_path=...)``), refuse
        one that does not fit this model with a :class:`~rsmm.errors.CheckpointError`
        naming it, before Lightning loads its weights strictly."""
        trainer = self._trainer
        if trainer is not None and self.strict_loading and "state_dict" in checkpoint:
            check_state_dict(trainer.ckpt_path, self.state_dict(), checkpoint["state_dict"])

    def resolve_negative_classes(self, declared: tuple[int, ...]) -> tuple[int, ...]:
        """The negative-only class ids to use, given those the dataset declares."""
        return declared

    # -- optimisation ------------------------------------------------------------------

    def param_groups(self) -> list[dict[str, Any]]:
        """Parameter groups for the optimiser (default: every trainable parameter)."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW or SGD with a linear warm-up then cosine decay, stepped per batch."""
        hp = self.hparams
        groups = self.param_groups()
        name = hp.get("optimizer", "adamw")
        if name == "adamw" and any(hasattr(p, "manifold") for p in self.parameters()):
            # parameters on a manifold (hyperbolic heads' prototypes): geoopt's Riemannian
            # Adam updates them along the manifold and Euclidean ones as AdamW would
            from geoopt.optim import RiemannianAdam

            opt: torch.optim.Optimizer = RiemannianAdam(
                groups, lr=hp.lr, weight_decay=hp.weight_decay
            )
        elif name == "adamw":
            opt = torch.optim.AdamW(groups, lr=hp.lr, weight_decay=hp.weight_decay)
        elif name == "sgd":
            opt = torch.optim.SGD(groups, lr=hp.lr, momentum=0.9, weight_decay=hp.weight_decay)
        else:
            raise ConfigError(f"optimizer: unknown {name!r}; use adamw or sgd")
        total = max(1, int(self.trainer.estimated_stepping_batches))
        epochs = max(1, self.trainer.max_epochs or 1)
        warm = int(total * hp.get("warmup_epochs", 0) / epochs)

        def schedule(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            progress = (step - warm) / max(1, total - warm)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # -- helpers -----------------------------------------------------------------------

    def sample_info(self, batch: Mapping[str, Any]) -> SampleInfo:
        """What the objectives know about a batch's samples: labels, which samples only
        serve as negatives (their class is one of :attr:`negative_classes`), and the
        numeric metadata of :data:`~rsmm.models.views.META_KEYS` (location, date)
        when the dataset gives it."""
        labels = batch.get("label")
        given = batch.get("meta")
        meta = {
            k: given[k]
            for k in META_KEYS
            if isinstance(given, Mapping) and isinstance(given.get(k), torch.Tensor)
        }
        return SampleInfo(
            labels=labels,
            negative=negative_samples(labels, self.negative_classes),
            meta=meta or None,
        )

    @staticmethod
    def batch_views(
        batch: Mapping[str, Any], modalities: Sequence[str]
    ) -> dict[str, list[torch.Tensor]]:
        """``{modality: [views]}`` of a batch (a bare tensor counts as one view)."""
        out = {}
        for m in modalities:
            if m not in batch:
                raise UnknownNameError(f"the batch has no modality {m!r} (keys: {sorted(batch)})")
            v = batch[m]
            out[m] = [v] if isinstance(v, torch.Tensor) else list(v)
        return out
