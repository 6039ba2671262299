"""Linear-probe accuracy after pre-training with a geodesic metadata kernel vs plain eq. 4.1.

On the quick start's generated S1 / S2 / NAIP scene (:mod:`rsmm.quickstart`: same scene,
chips, encoders and linear-probe protocol), for each seed: pre-train with ``ntxent``
(eq. 4.1) and with ``kernel_ntxent`` (geodesic kernel on the chip centres, one run per
``--sigma-km``), then train a linear probe on the frozen encoders with 10 % of the
labelled training chips and report the test overall accuracy (OA), mean and std over
the seeds. Not a speed benchmark: it measures what the kernel does to the features.

    python benchmarks/kernel.py [--seeds 0 1 2] [--sigma-km 0.2 2.0] [--out DIR]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from rsmm.benchmarks._timing import cpu_name


def _run(out: Path, manifest: Path, seed: int, loss: str, options: dict, epochs: tuple) -> float:
    """Pre-train with ``loss`` then linear-probe; the test OA."""
    from lightning import seed_everything

    from rsmm.quickstart import MODALITIES, PROTOCOLS, SceneDataModule, _trainer
    from rsmm.tasks import FinetuneTask, PretrainTask

    pre_epochs, probe_epochs = epochs
    common: dict[str, Any] = {"root": str(manifest), "modalities": MODALITIES, "batch_size": 64}
    chips: dict[str, dict[int, Any]] = {}
    seed_everything(seed, verbose=False)
    dm = SceneDataModule(**common, views=2, augment="mm_pretrain", seed=seed)
    dm.chips = chips
    pre = PretrainTask(
        backbone="tiny_cnn",
        projection_dim=32,
        hidden_dim=64,
        temperature=0.2,
        lr=3e-3,
        loss=loss,
        loss_kwargs=options or None,
    )
    tr = _trainer(out / "pretrain", pre_epochs, "val/knn_acc")
    tr.fit(pre, dm)
    ckpt = out / "pretrain.ckpt"
    tr.save_checkpoint(ckpt, weights_only=False)
    probe = dict(PROTOCOLS)["linear probe"]
    seed_everything(seed + 1, verbose=False)
    dmf = SceneDataModule(**common, label_fraction=0.1, seed=seed)
    dmf.chips = chips
    ft = FinetuneTask(backbone="tiny_cnn", pretrained=str(ckpt), **probe)
    trf = _trainer(out / "probe", probe_epochs, "val/OA")
    trf.fit(ft, dmf)
    return float(trf.test(ft, dmf, verbose=False)[0]["test/OA"])


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    from rsmm.quickstart import SETTINGS, build_scene_manifest

    p = argparse.ArgumentParser(
        prog="benchmarks/kernel.py", allow_abbrev=False, description=__doc__
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--sigma-km", type=float, nargs="+", default=[0.2, 2.0])
    p.add_argument("--mode", choices=sorted(SETTINGS), default="full", help="quick start size")
    p.add_argument("--out", default=None, help="keep the runs here (default: a temp folder)")
    a = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    side, stride, pre_epochs, probe_epochs = SETTINGS[a.mode]
    methods: dict[str, tuple[str, dict]] = {"ntxent (eq. 4.1)": ("ntxent", {})}
    for s in a.sigma_km:
        methods[f"kernel_ntxent geo, sigma {s:g} km"] = ("kernel_ntxent", {"sigma_km": s})
    oa: dict[str, list[float]] = {name: [] for name in methods}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(a.out or tmp)
        for seed in a.seeds:
            manifest = build_scene_manifest(root / f"seed{seed}", side, stride, seed)
            for i, (name, (loss, options)) in enumerate(methods.items()):
                run = root / f"seed{seed}" / f"run{i}"
                oa[name].append(
                    _run(run, manifest, seed, loss, options, (pre_epochs, probe_epochs))
                )
                print(f"seed {seed}  {name}: linear-probe test OA {oa[name][-1]:.3f}", flush=True)
    print(
        f"\n{a.mode} quick-start scene ({side:g} m, stride {stride:g} m), {pre_epochs} "
        f"pre-training and {probe_epochs} probe epochs, seeds {a.seeds}, {cpu_name()}, "
        f"{(time.perf_counter() - start) / 60:.1f} min"
    )
    print("| pre-training | linear-probe test OA (mean ± std) | per seed |")
    print("| --- | --- | --- |")
    for name, values in oa.items():
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        seeds = ", ".join(f"{v:.3f}" for v in values)
        print(f"| {name} | {statistics.mean(values):.3f} ± {std:.3f} | {seeds} |")
    return oa


if __name__ == "__main__":
    main()
