"""Augmentation throughput: rsmm's batched pipeline against torchgeo and a per-sample loop.

On one ``256 x 13 x 64 x 64`` float batch, in one process, times the production of two
augmented views of every sample by:

(a) ``rsmm.augment.BandAugment`` with the ``torchgeo_simclr`` preset (two views, batched);
(b) torchgeo's ``simclr_augmentations(64, torch.ones(13))`` applied twice to the batch
    (its kornia ``AugmentationSequential``);
(c) the same rsmm pipeline run sample by sample on 1-sample batches, then the views
    collated into batches, as a DataLoader worker applying per-sample transforms and
    its ``default_collate`` would (``--per-sample-limit`` samples, default the whole
    batch; its rate is per sample, so comparable);
(d) for context, torchgeo's kornia pipeline run the same way, sample by sample.

Prints samples/s for each and the ratios of rsmm's rate to the others (medians over
``--repeats`` interleaved timed rounds after warm-up). Run::

    python benchmarks/augment.py [--device cpu|cuda] [--repeats N] [--batch-size B]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import default_collate

from rsmm.augment import BandAugment
from rsmm.benchmarks._timing import cpu_name

BANDS = 13
SIZE = 64


def device_name(device: torch.device) -> str:
    """A readable name of the device the benchmark ran on."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()} ({torch.get_num_threads()} torch threads)"


def collate(samples: Sequence[torch.Tensor]) -> torch.Tensor:
    """The batch a DataLoader's ``default_collate`` makes of per-sample views
    (each given as a ``1 x C x H x W`` tensor)."""
    return default_collate([t[0] for t in samples])


def median_times(
    fns: Mapping[str, Callable[[], Any]], device: torch.device, repeats: int, warmup: int = 1
) -> dict[str, float]:
    """Median wall time in seconds of each ``fn()`` over ``repeats`` rounds after ``warmup``.

    The candidates are timed in turn within each round (interleaved), so that a burst of
    load on a shared machine hits all of them alike instead of one whole series.
    """

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        for fn in fns.values():
            fn()
    sync()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            start = time.perf_counter()
            fn()
            sync()
            times[key].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and print its table; returns the results as a dict."""
    parser = argparse.ArgumentParser(
        prog="rsmm benchmark augment", allow_abbrev=False, description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--repeats", type=int, default=5, help="timed runs (median reported)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    parser.add_argument(
        "--per-sample-limit",
        type=int,
        default=None,
        help="samples of the batch timed in the per-sample loops (default: all; the rate "
        "is per sample)",
    )
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda asked for but CUDA is not available")
    device = torch.device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    from rsmm.compat import simclr_augmentations

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch_size, BANDS, SIZE, SIZE, generator=gen).to(device)
    stats = {"s2": (torch.full((BANDS,), 0.5), torch.full((BANDS,), 0.25))}
    rsmm_aug = BandAugment({"s2": "s2"}, stats, preset="torchgeo_simclr", views=2, seed=0)
    tg_aug = simclr_augmentations(SIZE, torch.ones(BANDS))

    def run_rsmm() -> None:
        rsmm_aug({"s2": x})

    def run_torchgeo() -> None:
        tg_aug(x)
        tg_aug(x)

    n = x.shape[0]
    n_loop = n if args.per_sample_limit is None else min(n, args.per_sample_limit)

    def run_per_sample() -> None:
        views = [rsmm_aug({"s2": x[i : i + 1]})["s2"] for i in range(n_loop)]
        collate([v[0] for v in views]), collate([v[1] for v in views])

    def run_kornia_per_sample() -> None:
        views = [(tg_aug(x[i : i + 1]), tg_aug(x[i : i + 1])) for i in range(n_loop)]
        collate([v[0] for v in views]), collate([v[1] for v in views])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        times = median_times(
            {
                "rsmm": run_rsmm,
                "torchgeo": run_torchgeo,
                "per_sample": run_per_sample,
                "kornia_per_sample": run_kornia_per_sample,
            },
            device,
            args.repeats,
        )
    rate = {k: (n_loop if k.endswith("per_sample") else n) / t for k, t in times.items()}
    results: dict[str, Any] = {
        "device": device_name(device),
        "batch": [n, BANDS, SIZE, SIZE],
        "views": 2,
        "repeats": args.repeats,
        "median_s": times,
        "samples_per_s": rate,
        "rsmm_over_torchgeo": rate["rsmm"] / rate["torchgeo"],
        "rsmm_over_per_sample": rate["rsmm"] / rate["per_sample"],
        "rsmm_over_kornia_per_sample": rate["rsmm"] / rate["kornia_per_sample"],
        "versions": {"torch": torch.__version__, **_peer_versions()},
    }
    print(f"augmentation benchmark on {results['device']}: {n}x{BANDS}x{SIZE}x{SIZE}, 2 views")
    labels = {
        "rsmm": "(a) rsmm BandAugment torchgeo_simclr, batched",
        "torchgeo": "(b) torchgeo simclr_augmentations x2",
        "per_sample": "(c) rsmm ops per sample + collate (worker-style)",
        "kornia_per_sample": "(d) torchgeo/kornia per sample x2 + collate",
    }
    for key, label in labels.items():
        print(f"  {label:<48} {rate[key]:>10.1f} samples/s  (median {times[key]:.4f} s)")
    print(f"  rsmm / torchgeo   = {results['rsmm_over_torchgeo']:.2f}x")
    print(f"  rsmm / per-sample = {results['rsmm_over_per_sample']:.2f}x")
    print(f"  rsmm / kornia per-sample = {results['rsmm_over_kornia_per_sample']:.2f}x")
    return results


def _peer_versions() -> dict[str, str]:
    import kornia
    import torchgeo

    return {"torchgeo": torchgeo.__version__, "kornia": kornia.__version__}


if __name__ == "__main__":
    main()
