"""Pre-emption: on SIGTERM, a resumable checkpoint and a non-zero exit.

SLURM (at a time limit or pre-emption) and Kubernetes stop a job with SIGTERM, then
SIGKILL after a grace period. Lightning catches SIGTERM, finishes the current batch and
stops the run with a ``SystemExit`` whose status is 0, so a stopped job would look like a
finished one and lose the work since its last checkpoint. :class:`SigtermCheckpoint`
saves ``last.ckpt`` at the end of the batch during which SIGTERM arrived; the command
then ends with status 143 (128 + SIGTERM) and one line naming the checkpoint
(:func:`rsmm.cli.train.run_training`), and ``--ckpt_path <that file>`` resumes the run as
if it had not stopped (:mod:`rsmm.checkpoints.resume`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from rsmm.checkpoints.resume import at_last_batch

#: The exit status of a run stopped by SIGTERM (128 + signal number 15).
SIGTERM_EXIT_STATUS = 143


class StoppedBySigterm(SystemExit):
    """The exit (status 143) of a run stopped by SIGTERM, raised once its one line was
    printed.

    Attributes:
        checkpoint: the checkpoint to resume from, or ``None`` when none was written.
    """

    #: its line is printed: ``rsmm.cli.main`` returns its status without a second one
    reported = True

    def __init__(self, checkpoint: Path | None) -> None:
        super().__init__(SIGTERM_EXIT_STATUS)
        self.checkpoint = checkpoint


def last_checkpoint_path(trainer: Trainer) -> Path:
    """Where the run's ``last.ckpt`` goes: the folder of its first ModelCheckpoint, else
    ``<log dir>/checkpoints``."""
    name = ModelCheckpoint.CHECKPOINT_NAME_LAST + ModelCheckpoint.FILE_EXTENSION
    for cb in trainer.checkpoint_callbacks:
        if isinstance(cb, ModelCheckpoint) and cb.dirpath:
            return Path(cb.dirpath) / name
    return Path(trainer.log_dir or trainer.default_root_dir) / "checkpoints" / name


class SigtermCheckpoint(Callback):
    """Saves ``last.ckpt`` when the run received SIGTERM, at the end of a training batch.

    Lightning then stops the run (``SIGTERMException``). After the last batch of an
    epoch nothing is saved here (a checkpoint there would not resume exactly, see
    :class:`~rsmm.checkpoints.resume.StepCheckpoint`): the epoch's validation runs and
    the epoch's checkpoint is written before Lightning stops the run, unless the
    validation has more than one batch, which Lightning interrupts; then, as after a
    SIGTERM during validation, the latest checkpoint is the one written before it (by
    the step or epoch checkpoints).

    Attributes:
        saved: the checkpoint written after SIGTERM, or ``None``.
    """

    def __init__(self) -> None:
        self.saved: Path | None = None

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.received_sigterm and self.saved is None and not at_last_batch(trainer):
            path = last_checkpoint_path(trainer)
            trainer.save_checkpoint(path)
            self.saved = path
