"""Run ``rsmm`` with one step made slow, to send it a real signal at a known point.

``python signal_driver.py <step> <ready-file> <rsmm arguments...>``: when the process
reaches ``<step>`` it creates ``<ready-file>`` and sleeps; the test then signals it.

Steps: ``export-card`` (an export's files are written to its temporary folder, the
model card is next) and ``manifest-write`` (the chip index is half written to its
temporary file).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any


def _arrive(ready: Path) -> None:
    ready.write_text("ready")
    time.sleep(120)  # the test signals the process here
    raise AssertionError("the test did not signal the process in time")


def _slow(step: str, ready: Path) -> None:
    if step == "export-card":
        import rsmm.export.write as write

        def card(*args: Any, **kwargs: Any) -> str:
            _arrive(ready)
            return ""

        write.model_card = card
    elif step == "manifest-write":
        import pyarrow.parquet as pq

        real = pq.write_table

        def write_table(table: Any, where: Any, *args: Any, **kwargs: Any) -> None:
            real(table, where, *args, **kwargs)
            _arrive(ready)

        pq.write_table = write_table
    else:
        raise SystemExit(f"unknown step {step}")


if __name__ == "__main__":
    _slow(sys.argv[1], Path(sys.argv[2]))
    from rsmm.cli import run

    sys.argv[1:] = sys.argv[3:]
    run()  # what the rsmm console script runs
