"""Checkpoints and exports: reading them, what they are, whether they fit a model, and
loading pre-trained encoder weights, in one place below the tasks and the export.

* :mod:`~rsmm.checkpoints.files`: reading a task checkpoint (``.ckpt``, weights only)
  and an export directory (safetensors + ``rsmm-encoders.json``).
* :mod:`~rsmm.checkpoints.record`: what a checkpoint is (:class:`CheckpointRecord`:
  task, modalities, bands, GSD, backbones), from what the task writes into its
  hyper-parameters (``rsmm_task``, and ``data_info`` by :func:`data_info_from`).
* :mod:`~rsmm.checkpoints.fit`: band checks and state-dict fit checks.
* :mod:`~rsmm.checkpoints.pretrained`: pre-trained encoders for a fine-tuning.
* :mod:`~rsmm.checkpoints.resume`: the random state in every checkpoint, restored on a
  resume (exact resume).
* :mod:`~rsmm.checkpoints.preemption`: a resumable checkpoint on SIGTERM.

Restoring a task from its own checkpoint is a property of the run, passed explicitly:
a fine-tuning task restored from a checkpoint (``FinetuneTask.load_from_checkpoint``, or
``rsmm test`` / a resume with ``--ckpt_path``) is built with ``pretrained=None``, so it
does not read its pre-training file (which may have moved since), and takes the path
recorded in the checkpoint back into its hyper-parameters when the checkpoint is loaded.
"""

from rsmm.checkpoints.files import META_FILE, load_checkpoint, read_checkpoint, read_export
from rsmm.checkpoints.fit import band_mismatch, check_bands, check_state_dict, state_dict_problems
from rsmm.checkpoints.preemption import (
    SIGTERM_EXIT_STATUS,
    SigtermCheckpoint,
    StoppedBySigterm,
    last_checkpoint_path,
)
from rsmm.checkpoints.pretrained import (
    PretrainedEncoders,
    check_pretrained,
    load_pretrained,
    load_pretrained_encoder,
    read_pretrained,
)
from rsmm.checkpoints.record import (
    FINETUNE,
    PRETRAIN,
    TASK_CLASSES,
    TASK_KEY,
    CheckpointRecord,
    check_checkpoint,
    data_info_from,
    read_record,
    recorded_gsd,
    task_kind,
    training_gsd,
)
from rsmm.checkpoints.resume import (
    RANDOM_STATE_KEY,
    RandomStateCheckpoint,
    StepCheckpoint,
    random_state,
    set_random_state,
)

__all__ = [
    "FINETUNE",
    "META_FILE",
    "PRETRAIN",
    "RANDOM_STATE_KEY",
    "SIGTERM_EXIT_STATUS",
    "TASK_CLASSES",
    "TASK_KEY",
    "CheckpointRecord",
    "PretrainedEncoders",
    "RandomStateCheckpoint",
    "SigtermCheckpoint",
    "StepCheckpoint",
    "StoppedBySigterm",
    "band_mismatch",
    "check_bands",
    "check_checkpoint",
    "check_pretrained",
    "check_state_dict",
    "data_info_from",
    "last_checkpoint_path",
    "load_checkpoint",
    "load_pretrained",
    "load_pretrained_encoder",
    "random_state",
    "read_checkpoint",
    "read_export",
    "read_pretrained",
    "read_record",
    "recorded_gsd",
    "set_random_state",
    "state_dict_problems",
    "task_kind",
    "training_gsd",
]
