"""Parallel chip reads: one stack's chips read by worker processes, in chip order.

``rsmm manifest build --workers N`` reads chips (the
:meth:`~rsmm.stacks.chips.ChipReader.read` step: acquisitions, windowed reads, nodata
and cloud checks, band sums, the chip's label) in ``N`` processes. :func:`read_chips`
hands the workers contiguous runs of chips (:func:`chip_runs`: long runs first, so that
a worker decodes a file block for the neighbouring chips it reads, shorter ones at the
end, so that the workers finish together) and yields their results in chip order, so
the manifest is the same, row for row, as with one worker; the statistics are merged
from each chip's band *sums* (count, sum, sum of squares) in the same order, so they
are bit-identical.

Each worker receives the reader and the chips once (inherited with ``fork``, pickled
with ``spawn``); a run is sent as two numbers. It opens the GeoTIFFs itself
(:func:`~rsmm.stacks.windows.open_cached` never shares a GDAL handle across
processes). A worker holds one chip's pixels at a time, a GDAL
block cache of :data:`WORKER_GDAL_CACHE_MB` (unless ``GDAL_CACHEMAX`` is set) and
returns only its manifest row and ``3 x bands`` sums per modality, so memory grows with
the number of workers, not with the scene.

:class:`ProgressBar` is the ``progress(done, total)`` callback of the command line: a
tqdm bar in the format of Lightning's ``TQDMProgressBar``, off when standard error is
not a terminal.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from rsmm.errors import ConfigError

#: Lightning's ``TQDMProgressBar.BAR_FORMAT``.
BAR_FORMAT = (
    "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_noinv_fmt}{postfix}]"
)
#: Most chips in one of the short runs that end the chips (:func:`batch_size`).
MAX_BATCH = 16
#: Most chips in one run sent to a worker (the first runs; the progress callback
#: hears of a run's chips once it is read).
MAX_RUN = 64
#: GDAL block cache of a worker, in MiB, unless ``GDAL_CACHEMAX`` is set (GDAL's
#: default, 5 % of the RAM per process, would let each worker grow with the scene).
WORKER_GDAL_CACHE_MB = 32

#: The reader of this worker process and the ``(chip_id, box)`` of every chip (set by
#: :func:`_init_worker`).
_READER: Any = None
_ITEMS: Sequence[tuple[str, Any]] = ()


def available_cpus() -> int:
    """The CPUs this process may run on (``os.sched_getaffinity``; ``os.cpu_count``
    where that does not exist)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def check_workers(workers: int, option: str = "--workers") -> int:
    """``workers`` if it is at least 1.

    Raises:
        ConfigError: naming ``option`` otherwise.
    """
    if int(workers) < 1:
        raise ConfigError(f"{option} must be at least 1, got {workers}")
    return int(workers)


def batch_size(chips: int, workers: int) -> int:
    """Chips in the shortest runs (:func:`chip_runs`): about a quarter of a worker's
    share, at most :data:`MAX_BATCH`."""
    return max(1, min(MAX_BATCH, chips // (4 * workers)))


def chip_runs(chips: int, workers: int) -> list[tuple[int, int]]:
    """``[start, stop)`` runs of chips handed to the workers, in chip order.

    Guided scheduling: each run is a ``1 / (2 * workers)`` share of the chips not yet
    handed out, at most :data:`MAX_RUN` and at least :func:`batch_size` chips. Long
    contiguous runs first keep a worker on neighbouring chips (one decode of the file
    blocks they share), the short runs at the end balance the workers.
    """
    least, runs, start = batch_size(chips, workers), [], 0
    while start < chips:
        n = max(least, min(MAX_RUN, -(-(chips - start) // (2 * workers))))
        runs.append((start, min(chips, start + n)))
        start += n
    return runs


def _init_worker(reader: Any, items: Sequence[tuple[str, Any]]) -> None:
    """Keep ``reader`` and the chips for :func:`_read_run`; bound this worker's GDAL
    block cache."""
    global _READER, _ITEMS
    _READER, _ITEMS = reader, items
    if "GDAL_CACHEMAX" not in os.environ:  # never raises: a failing initializer
        try:  # makes the pool start workers forever
            from rasterio.env import set_gdal_config

            set_gdal_config("GDAL_CACHEMAX", WORKER_GDAL_CACHE_MB * 2**20)  # bytes
        except Exception:  # only memory is at stake
            pass


def _read_run(start: int, stop: int) -> list[Any]:
    return [_READER.read(*_ITEMS[i]) for i in range(start, stop)]


def _context() -> Any:
    """``fork`` where there is one (the reader is inherited, nothing re-imported),
    else ``spawn``."""
    return mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")


def read_chips(
    reader: Any,
    chip_ids: Sequence[str],
    boxes: Sequence[Any],
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[Any]:
    """``reader.read(chip_id, box)`` of every chip, in chip order.

    Args:
        reader: a :class:`~rsmm.stacks.chips.ChipReader` (anything with
            ``read(chip_id, box)`` that pickles, for ``spawn``).
        chip_ids: the chips' ids.
        boxes: the chips' polygons, aligned with ``chip_ids``.
        workers: processes reading chips (1: read here, no process started).
        progress: optional ``callback(done, total)``, called with 0 first and after
            every chip read.

    Yields:
        What ``reader.read`` returns for each chip, in the order of ``boxes``.
    """
    total = len(boxes)
    items = list(zip(chip_ids, boxes))
    if progress is not None:
        progress(0, total)
    workers = min(check_workers(workers), total)
    if workers <= 1:
        for done, item in enumerate(items, 1):
            yield reader.read(*item)
            if progress is not None:
                progress(done, total)
        return
    # concurrent.futures rather than multiprocessing.Pool: a worker that dies (killed
    # for memory, a crash in GDAL) breaks the executor with an error instead of leaving
    # the pool waiting for its results forever
    pool = ProcessPoolExecutor(
        workers, mp_context=_context(), initializer=_init_worker, initargs=(reader, items)
    )
    done = 0
    try:
        runs = [pool.submit(_read_run, a, b) for a, b in chip_runs(total, workers)]
        for run in runs:
            for result in run.result():
                yield result
                done += 1
                if progress is not None:
                    progress(done, total)
    except BrokenProcessPool as e:
        raise RuntimeError(
            "a chip-reading worker process died (killed, e.g. for memory, or crashed) "
            f"after {done} of {total} chips; run again with fewer --workers, or with "
            "--workers 1 to see the error in this process"
        ) from e
    finally:  # an error, or a caller that stops early: no run left to read
        pool.shutdown(wait=True, cancel_futures=True)


class ProgressBar:
    """A ``progress(done, total)`` callback drawing a tqdm bar like Lightning's.

    Args:
        desc: the text before the bar.
        disable: ``None`` (default): off when standard error is not a terminal;
            ``True``: off.

    The bar is created on the first call (with its total) and closed by
    :meth:`close` or on leaving a ``with`` block.
    """

    def __init__(self, desc: str = "Indexing chips", disable: bool | None = None) -> None:
        self.desc = desc
        self.disable = (not sys.stderr.isatty()) if disable is None else disable
        self.bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        """Show ``done`` of ``total`` chips."""
        if self.disable:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                desc=self.desc,
                unit="chip",
                dynamic_ncols=True,
                smoothing=0,
                leave=True,
                file=sys.stderr,
                bar_format=BAR_FORMAT,
            )
        if total != self.bar.total:
            self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        """Close the bar (if one was drawn)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
