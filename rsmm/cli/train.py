"""``rsmm pretrain|finetune|linear-probe|test``: a LightningCLI per command, run by rsmm.

Each command builds a LightningCLI (jsonargparse) for its task without running it, then
calls the Trainer itself (fit, then test when the data has a test split). ``--help``
prints rsmm's short help (:mod:`rsmm.cli.help`); ``--help-all`` LightningCLI's.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rsmm.cli.errors import USER_ERRORS, wrapped_user_error
from rsmm.cli.help import DESCRIPTIONS, short_help
from rsmm.cli.parse_errors import check_config_files, explain
from rsmm.errors import ConfigError

TRAIN_COMMANDS = ("pretrain", "finetune", "linear-probe", "test")

#: Default of ``--checkpoint_every_n_steps``: training steps between the step checkpoints
#: that a killed run resumes from (besides the checkpoint at the end of each epoch).
CHECKPOINT_EVERY_N_STEPS = 500


def _task_class(command: str) -> type:
    from rsmm.tasks import FinetuneTask, PretrainTask

    return PretrainTask if command == "pretrain" else FinetuneTask


def _pop_option(args: list[str], name: str) -> str | None:
    """Remove ``--name value`` / ``--name=value`` from ``args`` and return the value."""
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            value = args[i + 1]
            del args[i : i + 2]
            return value
        if a.startswith(name + "="):
            del args[i]
            return a.split("=", 1)[1]
    return None


def _check_configs(args: Sequence[str]) -> None:
    """Missing, unparsable or non-mapping ``--config`` files, named before LightningCLI
    reads them (:func:`rsmm.cli.parse_errors.check_config_files`)."""
    check_config_files(args)


def trainer_callbacks(checkpoint_every_n_steps: int = CHECKPOINT_EVERY_N_STEPS) -> list[Any]:
    """The callbacks every training command's Trainer gets (besides the user's).

    * ``ModelCheckpoint(save_last=True)``: ``last.ckpt`` and the latest
      ``epoch=E-step=S.ckpt`` at the end of each epoch;
    * :class:`~rsmm.checkpoints.resume.StepCheckpoint`: also ``last.ckpt`` every ``N``
      training steps (none for ``N = 0``), so that a run killed mid-epoch resumes from
      its last step checkpoint;
    * :class:`~rsmm.checkpoints.resume.RandomStateCheckpoint`: the random state in every
      checkpoint, restored on a resume (exact resume);
    * :class:`~rsmm.checkpoints.preemption.SigtermCheckpoint`: ``last.ckpt`` when the run
      receives SIGTERM (pre-emption), after which the command exits with status 143.

    The checkpoint callbacks overwrite one ``last.ckpt`` (no ``last-v1.ckpt``): it is
    always the latest state of the run.
    """
    from lightning.pytorch.callbacks import ModelCheckpoint

    from rsmm.checkpoints import RandomStateCheckpoint, SigtermCheckpoint, StepCheckpoint

    callbacks: list[Any] = [ModelCheckpoint(save_last=True, enable_version_counter=False)]
    if checkpoint_every_n_steps > 0:
        callbacks.append(StepCheckpoint(checkpoint_every_n_steps, enable_version_counter=False))
    return [*callbacks, RandomStateCheckpoint(), SigtermCheckpoint()]


def build_cli(
    command: str,
    args: list[str],
    run_dir: str | Path | None = None,
    checkpoint_every_n_steps: int = CHECKPOINT_EVERY_N_STEPS,
) -> Any:
    """The LightningCLI of a training command, instantiated but not run.

    Runs go to ``trainer.default_root_dir`` (default ``run_dir``, else
    ``runs/<command>``), one ``version_N`` folder each with CSV and TensorBoard logs,
    checkpoints (:func:`trainer_callbacks`, with step checkpoints every
    ``checkpoint_every_n_steps`` steps) and the resolved ``config.yaml``. The loggers
    are made after parsing (so an overridden root is honoured) and are left out of the
    saved config, which therefore runs again as it is (``rsmm <command> --config <run>/config.yaml``) into a
    new version folder.

    Raises:
        RsmmError: a class of the config refused its options (also when jsonargparse
            wrapped that error while instantiating a ``class_path``).
        argparse.ArgumentError: an unknown option (abbreviations are not taken) or an
            invalid value, in one line naming the option, and the config file that
            sets it when it does not come from the command line.
    """
    import warnings

    from lightning.pytorch.cli import LightningCLI
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
    from lightning.pytorch.plugins.io import CheckpointIO
    from lightning.pytorch.utilities.exceptions import MisconfigurationException

    from rsmm.checkpoints.atomic_io import AtomicCheckpointIO
    from rsmm.datamodules.base import MultiModalDataModule

    class RunCLI(LightningCLI):
        #: the topmost folder of the run root that this run creates (removed again,
        #: when left without a file, by a run that fails: :func:`_discard_failed_run`)
        fresh_root: Path | None = None

        def instantiate_trainer(self, **kwargs: Any) -> Any:
            trainer = self._get(self.config_init, "trainer", default={})
            root = trainer.get("default_root_dir") or default_root
            where = Path(root).absolute()
            missing = [p for p in (where, *where.parents) if not p.exists()]
            self.fresh_root = missing[-1] if missing else None
            # checkpoints through a temporary file and a rename: never a truncated
            # last.ckpt (kept out of the saved config, like the loggers)
            plugins = trainer.get("plugins") or []
            plugins = list(plugins) if isinstance(plugins, list) else [plugins]
            if not any(isinstance(p, CheckpointIO) for p in plugins):
                kwargs["plugins"] = [*plugins, AtomicCheckpointIO()]
            if trainer.get("logger") is None:  # not chosen by the user
                csv = CSVLogger(root, name="")
                kwargs["logger"] = [csv, TensorBoardLogger(root, name="", version=csv.version)]
            try:
                return super().instantiate_trainer(**kwargs)
            except (ValueError, MisconfigurationException) as err:
                # the Trainer's own check of its options (an unknown accelerator, strategy
                # or precision): the user's to fix, one line
                raise ConfigError(f"trainer: {' '.join(str(err).split())}") from err

        def parse_arguments(self, parser: Any, args: Any) -> None:
            try:
                super().parse_arguments(parser, args)
            except argparse.ArgumentError as err:  # one line naming the option or file
                raise argparse.ArgumentError(None, explain(err, parser, args)) from err

    # rsmm parses its own argv and hands the rest over, which is what args= is for
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
    task = _task_class(command)
    default_root = str(run_dir) if run_dir is not None else f"runs/{command}"
    trainer_defaults = {
        "default_root_dir": default_root,
        "callbacks": trainer_callbacks(checkpoint_every_n_steps),
    }
    try:
        return RunCLI(
            model_class=task,
            datamodule_class=MultiModalDataModule,
            subclass_mode_data=True,
            run=False,
            args=args,
            seed_everything_default=0,
            trainer_defaults=trainer_defaults,
            save_config_kwargs={"overwrite": True},
            parser_kwargs={
                "prog": f"rsmm {command}",
                "description": DESCRIPTIONS[command],
                # raise instead of printing the whole usage block: main() prints one line
                "exit_on_error": False,
                # --trainer.max_epoch is a typo, not an abbreviation of --trainer.max_epochs
                "allow_abbrev": False,
            },
        )
    except USER_ERRORS:
        raise
    except Exception as err:
        cause = wrapped_user_error(err)
        if cause is None:
            raise  # a bug: its traceback
        raise cause from None


def _discard_failed_run(log_dir: str | None, existed: bool, fresh_root: Path | None = None) -> None:
    """Remove the run folder a failed command created, unless it holds a checkpoint, and
    the folders above it that it created (``fresh_root``) when they hold no file."""
    import shutil

    if log_dir is not None and not existed and Path(log_dir).is_dir():
        if not any(Path(log_dir).rglob("*.ckpt")):
            shutil.rmtree(log_dir, ignore_errors=True)
    if fresh_root is not None and fresh_root.is_dir():
        if not any(p.is_file() or p.is_symlink() for p in fresh_root.rglob("*")):
            shutil.rmtree(fresh_root, ignore_errors=True)


def _run_trainer(command: str, trainer: Any, model: Any, dm: Any, ckpt: str | None) -> None:
    """Fit (then test, when fine-tuning on data with a test split) or test."""
    if command == "test":
        trainer.test(model, datamodule=dm, ckpt_path=ckpt, weights_only=True)
        return
    trainer.fit(model, datamodule=dm, ckpt_path=ckpt, weights_only=True)
    if command != "pretrain" and dm.has_test_split():
        trainer.test(
            model,
            datamodule=dm,
            ckpt_path="last" if trainer.checkpoint_callback else None,
            weights_only=True,
        )


def _steps_option(args: list[str]) -> int:
    """The value of ``--checkpoint_every_n_steps`` (removed from ``args``), or the default."""
    value = _pop_option(args, "--checkpoint_every_n_steps")
    if value is None:
        return CHECKPOINT_EVERY_N_STEPS
    try:
        steps = int(value)
    except ValueError:
        steps = -1
    if steps < 0:
        raise ConfigError(
            f"--checkpoint_every_n_steps must be an integer >= 0 (0: no step checkpoints), "
            f"got {value!r}"
        )
    return steps


def _stop_on_sigterm(
    command: str, trainer: Any, log_dir: str | None, existed: bool, fresh_root: Path | None
) -> SystemExit:
    """Print the one line of a run stopped by SIGTERM; the exit (status 143) to raise."""
    import sys

    from rsmm.checkpoints import SigtermCheckpoint, StoppedBySigterm, last_checkpoint_path

    saved = next((cb.saved for cb in trainer.callbacks if isinstance(cb, SigtermCheckpoint)), None)
    ckpt = saved or last_checkpoint_path(trainer)
    if ckpt.is_file():
        line = (
            f"rsmm: {command} interrupted by SIGTERM; resumable checkpoint: {ckpt} "
            "(resume with --ckpt_path)"
        )
    else:
        _discard_failed_run(log_dir, existed, fresh_root)
        line = f"rsmm: {command} interrupted by SIGTERM before its first checkpoint"
    print(line, file=sys.stderr)
    return StoppedBySigterm(ckpt if ckpt.is_file() else None)


def run_training(
    command: str, args: Sequence[str], run_dir: str | Path | None = None
) -> dict[str, float]:
    """Run one of the training commands; returns the final logged metrics.

    A run stopped by SIGTERM (pre-emption, a time limit) saves ``last.ckpt`` at the end
    of the current batch, prints one line naming it and exits with status 143
    (:mod:`rsmm.checkpoints.preemption`); ``--ckpt_path`` that file resumes it.

    Args:
        command: ``pretrain``, ``finetune``, ``linear-probe`` or ``test``.
        args: the command's options (``--config``, dotted overrides, ``--ckpt_path``,
            ``--checkpoint_every_n_steps N``: training steps between step checkpoints,
            default :data:`CHECKPOINT_EVERY_N_STEPS`, 0 for none).
        run_dir: the default ``trainer.default_root_dir`` (default ``runs/<command>``
            under the working directory); the run goes to its ``version_N`` folder.

    Raises:
        StoppedBySigterm: a ``SystemExit`` with status 143, when the run received
            SIGTERM (its line is printed).
    """
    args = list(args)
    if "--help-all" in args:  # LightningCLI's own, complete help
        args = ["--help" if a == "--help-all" else a for a in args]
    elif any(a in ("-h", "--help") for a in args):
        print(short_help(command))
        raise SystemExit(0)  # as argparse does after printing a help
    ckpt = _pop_option(args, "--ckpt_path")
    every_n_steps = _steps_option(args)
    _check_configs(args)
    asks_help = "--help" in args
    if command == "linear-probe":
        args += ["--model.freeze_backbone", "true"]
    if command == "test" and ckpt is None and not asks_help:
        raise ConfigError("rsmm test needs --ckpt_path <checkpoint>")
    if ckpt is not None:
        from rsmm.checkpoints import FINETUNE, PRETRAIN, check_checkpoint

        # a readable checkpoint of the task this command builds, or one line naming it
        check_checkpoint(ckpt, PRETRAIN if command == "pretrain" else FINETUNE)
        if command != "pretrain":
            # every weight comes from the checkpoint: the task is built without reading
            # its pre-training file (it may have moved); the checkpoint's record of that
            # file goes back into the task's hyper-parameters when it is loaded
            args += ["--model.pretrained", "null"]
    cli = build_cli(command, args, run_dir, every_n_steps)
    trainer, model, dm = cli.trainer, cli.model, cli.datamodule
    log_dir = trainer.log_dir
    existed = log_dir is not None and Path(log_dir).exists()
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    try:
        # a checkpoint that does not fit the model is a CheckpointError (the task's
        # on_load_checkpoint), not Lightning's RuntimeError
        _run_trainer(command, trainer, model, dm, ckpt)
    except SIGTERMException:  # Lightning's, a SystemExit with status 0
        raise _stop_on_sigterm(command, trainer, log_dir, existed, cli.fresh_root) from None
    except USER_ERRORS:
        _discard_failed_run(log_dir, existed, cli.fresh_root)
        raise
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    print(f"run directory: {trainer.log_dir}")
    if trainer.checkpoint_callback is not None and trainer.checkpoint_callback.last_model_path:
        print(f"checkpoint: {trainer.checkpoint_callback.last_model_path}")
    return metrics
