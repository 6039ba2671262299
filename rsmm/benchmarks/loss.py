"""Cost of the optimal-transport objectives inside a full pre-training step.

Runs the step of ``benchmarks/step.py`` (Sentinel-2 13 bands, 64x64, batch 32, two views,
ResNet-18) with plain ``mm_ntxent`` and with SSW-SSL, L_Sample and GCA-UOT, and prints each
one's extra time as a share of the NT-Xent step (goal: under 20 %).

    python benchmarks/loss.py [--steps 6] [--device cpu|cuda] [--losses ssw_ssl ot_sample gca_uot]
"""

from __future__ import annotations

import argparse
import warnings

from rsmm.benchmarks._timing import cpu_name, step_count
from rsmm.benchmarks.step import rsmm_step


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(prog="rsmm benchmark loss", allow_abbrev=False, description=__doc__)
    p.add_argument("--steps", type=step_count, default=6)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="32-true")
    p.add_argument("--losses", nargs="+", default=["ssw_ssl", "ot_sample", "gca_uot"])
    a = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    ms = {"ntxent": 1e3 * rsmm_step(a.steps, a.precision, a.device, "ntxent")}
    for loss in a.losses:
        ms[loss] = 1e3 * rsmm_step(a.steps, a.precision, a.device, loss)
    print(f"pre-training step by objective, {a.precision}, {a.device} ({cpu_name()})")
    print("| objective | step ms | extra vs mm_ntxent |")
    print("| --- | --- | --- |")
    for loss, t in ms.items():
        print(f"| {loss} | {t:.0f} | {100 * (t / ms['ntxent'] - 1):+.1f} % |")
    return ms


if __name__ == "__main__":
    main()
