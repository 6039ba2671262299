"""``rsmm benchmark <name>``: one of the side-by-side benchmarks of :mod:`rsmm.benchmarks`."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

from rsmm.benchmarks import BENCHMARKS
from rsmm.parsing import OptionParser


def main(argv: Sequence[str]) -> int:
    """Run ``rsmm benchmark <name> [options of the benchmark]``."""
    p = OptionParser(
        prog="rsmm benchmark",
        description="Side-by-side benchmarks (ratios against peers). "
        "`rsmm benchmark <name> --help` lists a benchmark's options.",
    )
    p.add_argument("name", choices=BENCHMARKS)
    p.add_argument("rest", nargs=argparse.REMAINDER, help="options of the benchmark")
    a = p.parse_args(argv)
    module = importlib.import_module(f"rsmm.benchmarks.{a.name}")
    module.main(a.rest)
    return 0
