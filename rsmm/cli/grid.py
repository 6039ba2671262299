"""``rsmm grid``: a results grid whose runs go through the training commands.

:mod:`rsmm.grid` (below the CLI) runs each cell through a *runner*; this module gives
it :func:`in_process_runner`, which runs a command with :func:`~rsmm.cli.train.run_training`
into the cell's folder, in this process.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rsmm.cli.errors import USER_ERRORS
from rsmm.errors import GridError


def in_process_runner(command: str, args: list[str], workdir: Path) -> None:
    """Run ``rsmm <command> <args>`` in this process; its run goes to
    ``<workdir>/runs/<command>/version_N`` (the working directory is left as it is).

    Raises:
        GridError: the command failed with a user error (the message names it).
    """
    from rsmm.cli.train import run_training

    workdir.mkdir(parents=True, exist_ok=True)
    try:
        run_training(command, args, run_dir=workdir / "runs" / command)
    except USER_ERRORS as err:
        detail = " ".join(str(err).split())
        raise GridError(f"rsmm {command} failed in {workdir}: {detail}") from err


def main(argv: Sequence[str] | None = None) -> int:
    """``rsmm grid spec.yaml [--dry-run] [--in-process] ...``."""
    from rsmm.grid import main as grid

    return grid(argv, in_process_runner=in_process_runner)
