"""rsmm's Sinkhorn against POT's log-domain Sinkhorn (torch backend), same inputs, same iterations.

Costs are cosine costs ``1 - x y^T`` between random unit vectors (``n x n``, float32), the
case of the OT losses. Both solvers run the same number of iterations with no early stop:

- rsmm: ``rsmm.losses.ot.sinkhorn(C, eps=eps, n_iters=n)`` (batched when ``B x n x n``);
- POT: ``ot.sinkhorn(a, b, C, eps, method="sinkhorn_log", numItermax=n, stopThr=0)``, one
  call per problem.

Printed: time ratio rsmm / POT (below 1 = rsmm faster), speed-up POT / rsmm, and the
largest absolute difference between the plans (with the largest plan entry for scale).

Usage::

    python benchmarks/sinkhorn.py [--device cpu|cuda] [--size 512] [--iters 100] [--batch 16]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable, Sequence

import ot
import torch
import torch.nn.functional as F

from rsmm.losses.ot import sinkhorn


def _timed_pair(
    fns: tuple[Callable[[], torch.Tensor], Callable[[], torch.Tensor]],
    device: torch.device,
    repeats: int,
) -> tuple[list[float], list[torch.Tensor]]:
    """Median wall time of each function, the two run alternately (after one warm-up each).

    Alternating keeps the ratio fair when the machine's load changes during the run.
    """
    outs = [fn() for fn in fns]
    times: list[list[float]] = [[], []]
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            outs[k] = fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times[k].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times], outs


def _costs(batch: int, size: int, dim: int, device: torch.device, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = F.normalize(torch.randn(batch, size, dim, generator=g), dim=-1)
    y = F.normalize(torch.randn(batch, size, dim, generator=g), dim=-1)
    return (1.0 - x @ y.transpose(1, 2)).to(device)


def _pot(C: torch.Tensor, eps: float, n_iters: int) -> torch.Tensor:
    n, m = C.shape[-2:]
    a = torch.full((n,), 1.0 / n, dtype=C.dtype, device=C.device)
    b = torch.full((m,), 1.0 / m, dtype=C.dtype, device=C.device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "did not converge": expected with stopThr=0
        plans = [
            ot.sinkhorn(a, b, c, eps, method="sinkhorn_log", numItermax=n_iters, stopThr=0)
            for c in C
        ]
    return torch.stack(plans)


def run_case(
    batch: int, size: int, eps: float, n_iters: int, device: torch.device, repeats: int, seed: int
) -> dict[str, float]:
    """Time both solvers on ``batch`` problems of ``size x size``; return ratios and errors."""
    C = _costs(batch, size, 64, device, seed)
    (rsmm_s, pot_s), (P, P_ref) = _timed_pair(
        (lambda: sinkhorn(C, eps=eps, n_iters=n_iters), lambda: _pot(C, eps, n_iters)),
        device,
        repeats,
    )
    return {
        "batch": batch,
        "size": size,
        "eps": eps,
        "n_iters": n_iters,
        "rsmm_s": rsmm_s,
        "pot_s": pot_s,
        "ratio_rsmm_over_pot": rsmm_s / pot_s,
        "speedup": pot_s / rsmm_s,
        "max_abs_diff": float((P - P_ref).abs().max()),
        "max_plan": float(P_ref.abs().max()),
    }


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the benchmark; returns ``{"device": ..., "threads": ..., "cases": [...]}``."""
    parser = argparse.ArgumentParser(
        prog="rsmm benchmark sinkhorn", allow_abbrev=False, description=__doc__.splitlines()[0]
    )
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--batch", type=int, default=16, help="0 skips the batched case")
    parser.add_argument("--eps", type=float, nargs="+", default=[0.05, 0.01])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch default)")
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available")
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    results: dict = {"device": name, "threads": torch.get_num_threads(), "cases": []}
    print(f"device={name} threads={results['threads']} size={args.size} iters={args.iters}")
    print("batch  eps     rsmm/POT  speed-up  max|P-P_POT|  max P")
    batches = [1] + ([args.batch] if args.batch > 1 else [])
    for batch in batches:
        for eps in args.eps:
            case = run_case(batch, args.size, eps, args.iters, device, args.repeats, args.seed)
            results["cases"].append(case)
            print(
                f"{batch:<6} {eps:<7g} {case['ratio_rsmm_over_pot']:<9.4f} "
                f"{case['speedup']:<8.1f}x {case['max_abs_diff']:<13.2e} {case['max_plan']:.2e}"
            )
    return results


if __name__ == "__main__":
    main()
