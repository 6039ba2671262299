"""Timing helpers shared by the benchmark scripts (medians of repeated runs)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_seconds(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def cpu_name() -> str:
    """The processor's model name (Linux), for the results table."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


#: warm-up iterations left out of every step median (``StepTimer.median``)
WARMUP_STEPS = 2


def step_count(text: str) -> int:
    """``--steps`` of the step benchmarks: enough steps for a median after the warm-up."""
    import argparse

    n = int(text)
    if n < WARMUP_STEPS + 2:
        raise argparse.ArgumentTypeError(
            f"{n}: at least {WARMUP_STEPS + 2} steps (the first {WARMUP_STEPS} intervals are "
            "warm-up and the median needs one more)"
        )
    return n
