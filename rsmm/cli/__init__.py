"""The ``rsmm`` command.

``rsmm pretrain|finetune|linear-probe|test --config X.yaml [--data.label_fraction 0.1 ...]``
build a LightningCLI (jsonargparse) for the right task without running it, then call
the Trainer themselves (:mod:`rsmm.cli.train`); ``rsmm export`` writes encoder weights
(:mod:`rsmm.cli.export`); ``rsmm manifest build|stats`` indexes user stacks and
recomputes band statistics (:mod:`rsmm.cli.manifest`); ``rsmm quickstart`` runs the
whole workflow on generated data; ``rsmm benchmark`` prints the side-by-side benchmarks
(:mod:`rsmm.cli.benchmark`); ``rsmm grid`` runs a results grid (:mod:`rsmm.cli.grid`).

Importing this package (and asking any command for ``--help``) imports neither torch
nor Lightning: each command imports what it needs once its options are parsed.

Errors a user can cause (missing file, bad option value, wrong checkpoint) print one
line ``rsmm: error: ...`` and exit with status 2; anything else is a bug and shows its
traceback (:mod:`rsmm.cli.errors`). An interruption (``SIGINT``, ``SIGTERM``) prints one
line and exits with status 130 or 143.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from rsmm.cli.errors import (
    SIGNAL_STATUS,
    USER_ERRORS,
    debugging,
    interrupted_by,
    report,
    report_interruption,
    reported_interruptions,
)
from rsmm.cli.train import TRAIN_COMMANDS, build_cli, run_training

__all__ = [
    "DESCRIPTION",
    "TRAIN_COMMANDS",
    "USER_ERRORS",
    "build_cli",
    "main",
    "run",
    "run_training",
]

DESCRIPTION = """\
rsmm: multimodal pre-training for co-registered remote-sensing imagery.

Pre-train one encoder per modality (Sentinel-1 SAR, Sentinel-2 multispectral, NAIP
aerial) with multimodal contrastive losses, fine-tune on a labelled fraction, and
export the encoders.

commands:
  pretrain      multimodal self-supervised pre-training (PretrainTask)
  finetune      fine-tune encoders + a head on labels (FinetuneTask); without
                --model.pretrained: the random-initialisation baseline
  linear-probe  train only a linear head on frozen encoders
  test          evaluate a checkpoint on the test split (metrics, confusion matrix)
  export        encoders of a checkpoint -> <modality>.safetensors + rsmm-encoders.json
  manifest      `rsmm manifest build` indexes chips of your own S1/S2/NAIP GeoTIFF folders;
                `rsmm manifest stats` recomputes band statistics
  quickstart    the whole workflow on a generated co-registered S1/S2/NAIP GeoTIFF scene
  benchmark     side-by-side performance tables against peers
  grid          a results grid (pre-training x protocols x seeds) -> one mean ± std table

`rsmm <command> --help` explains each command's options (`--help-all` for every option
of a training command, the Trainer's included). Errors a user can cause are one line;
set RSMM_DEBUG=1 to see the full traceback instead."""

# command -> the module whose main(argv) runs it (imported only when it runs)
COMMANDS = {
    "export": "rsmm.cli.export",
    "manifest": "rsmm.cli.manifest",
    "quickstart": "rsmm.quickstart",
    "benchmark": "rsmm.cli.benchmark",
    "grid": "rsmm.cli.grid",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rsmm`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(DESCRIPTION)
        return 0
    if argv[0] in ("-V", "--version"):
        import rsmm

        print(f"rsmm {rsmm.__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in TRAIN_COMMANDS and command not in COMMANDS:
        print(f"rsmm: error: unknown command {command!r}; see `rsmm --help`", file=sys.stderr)
        return 2
    with reported_interruptions(lightning_handles_sigterm=command in TRAIN_COMMANDS) as seen:
        try:
            if command in TRAIN_COMMANDS:
                run_training(command, rest)
                status = 0
            else:
                status = importlib.import_module(COMMANDS[command]).main(rest)
        except BrokenPipeError:  # the reader of stdout left (`rsmm pretrain --help | head`)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
            return 1
        except USER_ERRORS as err:
            if debugging():  # the full traceback, for bug reports
                raise
            return report(err, command)
        except BaseException as err:  # Ctrl-C, SIGTERM, or a run stopped by one
            if isinstance(err, SystemExit) and getattr(err, "reported", False):
                return int(err.code)  # a training run stopped by SIGTERM printed its line
            sig = interrupted_by(err, seen)
            if sig is None or debugging():
                raise
            return report_interruption(sig, command)
    if seen.deferred is not None:  # SIGTERM while Lightning tested: it ran to its end
        return report_interruption(seen.deferred, command)
    return status


def run() -> NoReturn:
    """The ``rsmm`` console script: :func:`main` on ``sys.argv``, then exit.

    An interrupted command (status 130 or 143) has printed its line and left its outputs
    complete or removed; it exits at once, skipping the interpreter's shutdown, where C
    extensions torn down after an interruption inside GeoPandas' Parquet writer print
    "Error in sys.excepthook" four times on Python 3.12.
    """
    status = main()
    if status in SIGNAL_STATUS.values():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)


if __name__ == "__main__":
    run()
