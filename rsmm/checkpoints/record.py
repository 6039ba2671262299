"""What a checkpoint is: the task that wrote it, its modalities, bands, GSD and backbones.

A task writes what it is into its hyper-parameters: ``rsmm_task`` (:data:`PRETRAIN` or
:data:`FINETUNE`) and ``data_info``, the record of its data made by
:func:`data_info_from` (dataset, bands, statistics, sensors, units, classes, and the
GSD each modality was trained at). :class:`CheckpointRecord` reads both back.

Checkpoints written before ``rsmm_task`` existed are recognised by the arguments only
one task has, and those written before the GSD was recorded take it from their
dataset class (:attr:`rsmm.datasets.MultiModalDataset.gsd`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsmm.checkpoints.files import load_checkpoint
from rsmm.errors import CheckpointError, UnknownNameError
from rsmm.models.multimodal import per_modality

#: The hyper-parameter in which a task records what it is.
TASK_KEY = "rsmm_task"
#: ``rsmm_task`` of :class:`~rsmm.tasks.PretrainTask`.
PRETRAIN = "pretrain"
#: ``rsmm_task`` of :class:`~rsmm.tasks.FinetuneTask` (fine-tuning and linear probing).
FINETUNE = "finetune"
#: The task class of each kind, as exports and model cards name it.
TASK_CLASSES = {PRETRAIN: "PretrainTask", FINETUNE: "FinetuneTask"}
#: The tasks' default backbone, for hyper-parameters that do not name one.
DEFAULT_BACKBONE = "resnet18"
#: Arguments only one task has: how a checkpoint without ``rsmm_task`` (written by
#: rsmm before it recorded it) is recognised.
_ONLY_IN = {
    PRETRAIN: frozenset({"projector_layers", "projector_bn", "knn_k", "gather_distributed"}),
    FINETUNE: frozenset({"pretrained", "freeze_backbone", "num_classes", "head"}),
}


def task_kind(hp: Mapping[str, Any]) -> str | None:
    """:data:`PRETRAIN`, :data:`FINETUNE` or ``None`` (not known) for a checkpoint's
    hyper-parameters: ``rsmm_task`` when recorded, else LightningCLI's ``_class_path``,
    else the arguments only one task has."""
    recorded = hp.get(TASK_KEY)
    if recorded in TASK_CLASSES:
        return str(recorded)
    if hp.get("_class_path"):
        name = str(hp["_class_path"]).rsplit(".", 1)[-1]
        return next((kind for kind, cls in TASK_CLASSES.items() if cls == name), None)
    fits = [kind for kind, only in _ONLY_IN.items() if only & set(hp)]
    return fits[0] if len(fits) == 1 else None


# -- the data record a task writes ---------------------------------------------------------


def training_gsd(dataset: Any) -> dict[str, float | None]:
    """Pixel size in metres of each modality's arrays as a dataset gives them.

    This is the GSD an encoder trained on the dataset expects, which can differ from the
    sensor's native GSD (resampled bands, a stack's target GSD); ``None`` where it is
    not known (e.g. RESISC-45's mixed resolutions). Each dataset class declares it
    (:meth:`rsmm.datasets.MultiModalDataset.training_gsd`).

    Args:
        dataset: an rsmm :class:`~rsmm.datasets.MultiModalDataset`.
    """
    return dataset.training_gsd()


def data_info_from(datamodule: Any) -> dict[str, Any]:
    """What a task records about its data (``data_info``): bands, statistics, sensors,
    units, classes, and the pixel size (m) each modality was trained at."""
    stats = datamodule.stats
    return {
        "dataset": type(datamodule.reference_dataset).__name__,
        "bands": {m: list(b) for m, b in datamodule.band_names.items()},
        "mean": {m: [float(v) for v in s[0]] for m, s in stats.items()},
        "std": {m: [float(v) for v in s[1]] for m, s in stats.items()},
        "sensors": dict(datamodule.sensors),
        "units": dict(datamodule.units),
        "classes": list(datamodule.classes),
        "gsd": training_gsd(datamodule.reference_dataset),
    }


def recorded_gsd(
    info: Mapping[str, Any], datamodule_hp: Mapping[str, Any], modalities: Sequence[str]
) -> dict[str, float | None]:
    """Training GSD from a checkpoint: recorded in ``data_info`` by current rsmm, else
    declared by the dataset class for checkpoints written before it was recorded
    (``None`` for a dataset rsmm does not know)."""
    if "gsd" in info:
        recorded = dict(info["gsd"] or {})
        return {m: recorded.get(m) for m in modalities}
    from rsmm.datasets import dataset_class

    try:
        cls = dataset_class(str(info.get("dataset")))
    except UnknownNameError:
        return dict.fromkeys(modalities)
    return cls.gsd_for(modalities, datamodule_hp)


# -- reading it back -----------------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointRecord:
    """What an rsmm checkpoint is.

    Attributes:
        path: the checkpoint file.
        task: :data:`PRETRAIN`, :data:`FINETUNE` or ``None`` (not known).
        task_class: the task's class name (``"PretrainTask"``, ...), ``None`` if not known.
        in_channels: ``{modality: bands}`` of its encoders, in order.
        architectures: ``{modality: backbone architecture}``.
        bands: ``{modality: band names in the order trained on}`` (``None`` when not
            recorded).
        gsd: ``{modality: pixel size (m) trained at}`` (``None`` when not known).
        data_info: the task's record of its data (empty when not recorded).
        hparams: all of the task's hyper-parameters.
    """

    path: Path
    task: str | None
    task_class: str | None
    in_channels: dict[str, int]
    architectures: dict[str, str | None]
    bands: dict[str, list[str] | None]
    gsd: dict[str, float | None]
    data_info: dict[str, Any]
    hparams: dict[str, Any]

    @property
    def modalities(self) -> list[str]:
        """The modalities it has an encoder for."""
        return list(self.in_channels)

    @classmethod
    def from_checkpoint(cls, path: str | Path, ckpt: Mapping[str, Any]) -> CheckpointRecord:
        """The record of a checkpoint's content (as :func:`load_checkpoint` returns it)."""
        hp = dict(ckpt["hyper_parameters"])
        in_ch = {m: int(c) for m, c in dict(hp["in_channels"]).items()}
        info = dict(hp.get("data_info") or {})
        bands = dict(info.get("bands") or {})
        kind = task_kind(hp)
        class_path = hp.get("_class_path")
        return cls(
            path=Path(path),
            task=kind,
            task_class=str(class_path).rsplit(".", 1)[-1] if class_path else TASK_CLASSES.get(kind),
            in_channels=in_ch,
            architectures=per_modality(
                hp.get("backbone", DEFAULT_BACKBONE), list(in_ch), "backbone"
            ),
            bands={m: bands.get(m) for m in in_ch},
            gsd=recorded_gsd(
                info, dict(ckpt.get("datamodule_hyper_parameters") or {}), list(in_ch)
            ),
            data_info=info,
            hparams=hp,
        )


def read_record(path: str | Path) -> CheckpointRecord:
    """The :class:`CheckpointRecord` of a checkpoint file.

    Raises:
        ExportError: for a missing or unreadable checkpoint (see :func:`load_checkpoint`).
    """
    return CheckpointRecord.from_checkpoint(path, load_checkpoint(path))


def check_checkpoint(path: str | Path, task: str | None = None) -> CheckpointRecord:
    """The record of a checkpoint a run restores, refusing one of another task.

    Args:
        path: the checkpoint.
        task: the kind of task the run builds (:data:`PRETRAIN`, :data:`FINETUNE`);
            ``None`` accepts any.

    Raises:
        ExportError: for a missing or unreadable checkpoint.
        CheckpointError: for a checkpoint written by another kind of task.
    """
    record = read_record(path)
    if task is not None and record.task is not None and record.task != task:
        raise CheckpointError(
            f"checkpoint {path} does not fit this model: it is a {record.task_class} "
            f"checkpoint ({record.task}), and this run builds a {TASK_CLASSES[task]}"
        )
    return record
