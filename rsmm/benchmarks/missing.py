"""Missing modalities: drop incomplete samples, train with presence, or one modality.

On the quick start's generated S1 / S2 / NAIP scene (:mod:`rsmm.quickstart`), the
training and validation chips lose Sentinel-2 at rate ``--drop-s2`` (0.5) and NAIP at
``--drop-naip`` (0.7), seeded (:class:`~rsmm.datamodules.absence.DroppedModalities`, the
same chips in every setting); the test chips keep every modality. Three settings, each
pre-trained (multimodal NT-Xent, eq. 4.1) then linear-probed and fine-tuned:

- (a) ``complete only``: today's behaviour, the chips that lack a modality are dropped
  (the datamodules' ``complete_only=True``); concatenation fusion.
- (b) ``all chips, presence``: every chip, absent modalities left out of the loss (their
  rows never used); masked-mean fusion with ``modality_dropout=0.3``.
- (c) ``<m> only``: one modality, on every chip that has it (``complete_only=[m]``).

Each model is tested with every subset of its modalities available (``test/OA@s1``, ...,
on the whole test split); the table gives OA and Cohen's kappa, mean and std over the
seeds. Not a speed benchmark: the defaults are tiny (seconds per run), the numbers only
show the pipeline; ``--mode full`` is the quick start's full scene and epochs. A setting
left with fewer than two training chips (few chips have every modality on a tiny scene)
is reported as not run. With ``--out``, a run whose test metrics are already there (its
``metrics.csv``) is read back instead of trained again, so an interrupted benchmark
resumes.

    python benchmarks/missing.py [--seeds 0 1 2] [--mode tiny|fast|full] [--out DIR]
"""

from __future__ import annotations

import argparse
import logging
import re
import shutil
import statistics
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rsmm.benchmarks._timing import cpu_name

#: (scene side m, chip stride m, pre-training epochs, downstream epochs) per mode
SIZES = {"tiny": (1600.0, 80.0, 1, 2), "fast": (1600.0, 80.0, 1, 4), "full": (2560.0, 40.0, 3, 25)}
#: the settings compared: name -> (modalities trained, ``complete_only`` of the training
#: and validation chips, fusion options)
SETTINGS: dict[str, tuple[tuple[str, ...], bool | tuple[str, ...], dict[str, Any]]] = {
    "(a) complete only": (("s1", "s2", "naip"), True, {"fusion": "concat"}),
    "(b) all chips, presence": (
        ("s1", "s2", "naip"),
        False,
        {"fusion": "masked_mean", "modality_dropout": 0.3},
    ),
    "(c) s1 only": (("s1",), ("s1",), {}),
    "(c) s2 only": (("s2",), ("s2",), {}),
    "(c) naip only": (("naip",), ("naip",), {}),
}


def _datamodule(
    manifest: Path,
    seed: int,
    complete_only: bool | tuple[str, ...],
    drops: dict[str, float],
    **kw: Any,
) -> Any:
    """The scene's datamodule, every modality loaded; with ``complete_only``, the chips
    that have each required modality once the ``drops`` are drawn (see
    :class:`~rsmm.datamodules.base.MultiModalDataModule`)."""
    from rsmm.quickstart import MODALITIES, SceneDataModule

    return SceneDataModule(
        root=str(manifest),
        modalities=MODALITIES,
        batch_size=32,
        seed=seed,
        drop_modalities=drops or None,
        complete_only=complete_only,
        **kw,
    )


def _logged(out: Path) -> dict[str, float]:
    """The test metrics a finished run logged under ``out`` (empty when none)."""
    from rsmm.report import last_logged

    csv = out / "version_0" / "metrics.csv"
    return last_logged(csv, ("test/",)) if csv.is_file() else {}


def _run(
    out: Path,
    manifest: Path,
    seed: int,
    setting: tuple[tuple[str, ...], bool | tuple[str, ...], dict[str, Any]],
    drops: dict[str, float],
    epochs: tuple[int, int],
) -> dict[str, dict[str, float]]:
    """Pre-train, then linear-probe and fine-tune; ``{protocol: test metrics}`` (empty,
    with the reason printed, when the setting has fewer than two training chips)."""
    from lightning import seed_everything

    from rsmm.errors import ConfigError
    from rsmm.quickstart import PROTOCOLS, _trainer
    from rsmm.tasks import FinetuneTask, PretrainTask

    modalities, complete_only, fusion = setting
    pre_epochs, down_epochs = epochs
    done = {p: _logged(out / p.replace(" ", "_")) for p, _ in PROTOCOLS}
    if all(done.values()):
        return done
    shutil.rmtree(out, ignore_errors=True)  # an unfinished run starts again
    chips: dict[str, dict[int, Any]] = {}
    seed_everything(seed, verbose=False)
    dm = _datamodule(manifest, seed, complete_only, drops, views=2, augment="mm_pretrain")
    dm.chips = chips
    try:
        dm.setup("fit")
    except ConfigError as err:  # complete_only left a split without any chip
        print(f"    {err}")
        return {}
    if len(dm.datasets["train"]) < 2:  # batch norm needs two samples per batch
        return {}
    pre = PretrainTask(
        modalities=list(modalities),
        backbone="tiny_cnn",
        projection_dim=32,
        hidden_dim=64,
        temperature=0.2,
        lr=3e-3,
        loss="ntxent",
    )
    tr = _trainer(out / "pretrain", pre_epochs, "val/knn_acc")
    tr.fit(pre, dm)
    ckpt = out / "pretrain.ckpt"
    tr.save_checkpoint(ckpt, weights_only=False)
    results = {}
    for protocol, options in PROTOCOLS:
        seed_everything(seed + 1, verbose=False)
        dmf = _datamodule(manifest, seed, complete_only, drops)
        dmf.chips = chips
        test_dm = _datamodule(manifest, seed, False, {})
        test_dm.chips = chips  # the test split is never dropped: the same chips
        ft = FinetuneTask(
            modalities=list(modalities),
            backbone="tiny_cnn",
            pretrained=str(ckpt),
            subset_metrics=True,
            **fusion,
            **options,
        )
        trf = _trainer(out / protocol.replace(" ", "_"), down_epochs, "val/OA")
        trf.fit(ft, dmf)
        metrics = trf.test(ft, test_dm, verbose=False)[0]
        results[protocol] = {k: float(v) for k, v in metrics.items()}
    return results


def _cell(values: Sequence[float], seeds: int) -> str:
    if not values:
        return "–"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    fewer = f" ({len(values)} seeds)" if len(values) < seeds else ""
    return f"{statistics.mean(values):.3f} ± {std:.3f}{fewer}"


def table(results: dict[tuple[str, str], list[dict[str, float]]], metric: str, seeds: int) -> str:
    """A markdown table: one row per (setting, protocol), one column per test subset;
    a cell run with fewer than ``seeds`` seeds says how many."""
    from rsmm.quickstart import MODALITIES
    from rsmm.tasks.metrics import modality_subsets, subset_name

    names = [subset_name(s) for s in modality_subsets(MODALITIES)]
    lines = [
        f"| setting | protocol | {' | '.join(f'{metric} @{n}' for n in names)} |",
        "| --- | --- |" + " --- |" * len(names),
    ]
    for (setting, protocol), runs in results.items():
        cells = [
            _cell([r[f"test/{metric}@{n}"] for r in runs if f"test/{metric}@{n}" in r], seeds)
            for n in names
        ]
        lines.append(f"| {setting} | {protocol} | {' | '.join(cells)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[tuple[str, str], list[dict[str, float]]]:
    from rsmm.quickstart import build_scene_manifest

    p = argparse.ArgumentParser(
        prog="benchmarks/missing.py",
        allow_abbrev=False,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--mode", choices=sorted(SIZES), default="tiny", help="scene and epochs")
    p.add_argument("--drop-s2", type=float, default=0.5, help="rate of chips without S2")
    p.add_argument("--drop-naip", type=float, default=0.7, help="rate of chips without NAIP")
    p.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), default=list(SETTINGS))
    p.add_argument("--out", default=None, help="keep the runs here (default: a temp folder)")
    a = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    side, stride, pre_epochs, down_epochs = SIZES[a.mode]
    drops = {"s2": a.drop_s2, "naip": a.drop_naip}
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(a.out or tmp)
        for seed in a.seeds:
            manifest = root / f"seed{seed}" / "chips.parquet"
            if not manifest.is_file():
                manifest = build_scene_manifest(root / f"seed{seed}", side, stride, seed)
            for name in a.settings:  # a run's folder is named after its setting (resumable)
                run = root / f"seed{seed}" / re.sub(r"\W+", "_", name).strip("_")
                got = _run(run, manifest, seed, SETTINGS[name], drops, (pre_epochs, down_epochs))
                if not got:
                    print(f"seed {seed}  {name}: fewer than two training chips, not run")
                for protocol, metrics in got.items():
                    results.setdefault((name, protocol), []).append(metrics)
                    print(f"seed {seed}  {name}, {protocol}: test OA {metrics['test/OA']:.3f}")
    print(
        f"\n{a.mode} scene ({side:g} m, stride {stride:g} m), training chips without S2 "
        f"{a.drop_s2:.0%}, without NAIP {a.drop_naip:.0%} (test chips complete), "
        f"{pre_epochs} pre-training and {down_epochs} downstream epochs, seeds {a.seeds}, "
        f"{cpu_name()}, {(time.perf_counter() - start) / 60:.1f} min\n"
    )
    for metric in ("OA", "kappa"):
        print(f"Test {metric} with each subset of modalities available (mean ± std):\n")
        print(table(results, metric, len(a.seeds)) + "\n")
    return results


if __name__ == "__main__":
    main()
