"""Side-by-side benchmarks against peer libraries (torchgeo, kornia, lightly, POT).

One module per benchmark, each with ``main(argv) -> dict``: it prints a table (with the
ratios of rsmm's rate to the peers') and returns the figures. Run one with
``rsmm benchmark <name> [options]`` or ``python benchmarks/<name>.py [options]`` from a
checkout; the measured results are in the repository's ``benchmarks/RESULTS.md``.
Speed is never asserted by the tests.

Importing this package imports no benchmark (they import torch and the peers).
"""

BENCHMARKS = ("augment", "step", "loss", "sinkhorn", "loaders", "stacks", "hyperbolic", "missing")

__all__ = ["BENCHMARKS"]
