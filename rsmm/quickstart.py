"""``rsmm quickstart``: the whole workflow on a generated scene, for a new user.

Writes a small co-registered scene the way real downloads arrive
(:func:`rsmm.stacks.scene.generate_scene`: Sentinel-1 VV/VH in dB in Web Mercator,
Sentinel-2 reflectance tiles in UTM, NAIP in a state plane, land-cover labels), builds
its chip manifest exactly as ``rsmm manifest build`` does, pre-trains one encoder per
modality with multimodal NT-Xent, fine-tunes on 10 % of the labelled training chips
(the whole network, and a linear probe on frozen encoders) from the pre-trained
encoders and from random ones, exports the encoders, and prints a comparison table with
the paths of the outputs (a PNG report among them).

Every phase prints one line per epoch (loss, validation metric, time). The default run
is sized to finish within 5 minutes on two CPU cores: 3 pre-training epochs (the k-NN
accuracy of the features levels off by then) and 25 fine-tuning epochs per protocol,
and the chips are read from disk once and kept in memory for all phases (the scene is
small; ``rsmm pretrain`` on real data reads them every epoch).
"""

from __future__ import annotations

import logging
import platform
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from lightning import Callback, LightningModule, Trainer, seed_everything

from rsmm.atomic import atomic_open
from rsmm.checkpoints.atomic_io import AtomicCheckpointIO
from rsmm.datamodules import CoRegisteredStackDataModule
from rsmm.export import export_encoders
from rsmm.parsing import OptionParser
from rsmm.report import embed_test_split, pca_2d, read_confusion, read_logged, write_report
from rsmm.stacks.build import build_manifest
from rsmm.stacks.manifest import save_figure, write_manifest
from rsmm.stacks.scene import generate_scene
from rsmm.stacks.spec import LabelSpec, spec_from_dirs
from rsmm.tasks import FinetuneTask, PretrainTask

MODALITIES = ("s1", "s2", "naip")

#: (scene side m, chip stride m, pre-training epochs, fine-tuning epochs) per mode; "full"
#: took 1 min 2 s on two quiet CPU cores (1.3 CPU-minutes, user + sys)
#: Easting of the UTM zone 17/18 border (78 degrees W) near 38.9 N in EPSG:32618: the
#: scene straddles it, its western Sentinel-2 tile is in zone 17 (EPSG:32617), so the
#: default ``--crs auto`` lays chips in two zones.
ZONE_BORDER_X = 239820.0
SETTINGS = {"fast": (1600.0, 80.0, 1, 2), "full": (2560.0, 40.0, 3, 25)}

#: the downstream protocols: (name, FinetuneTask options); both start from random and
#: from pre-trained encoders
PROTOCOLS = (
    ("fine-tuned", {"freeze_backbone": False, "lr": 3e-3, "backbone_lr": 1e-3}),
    ("linear probe", {"freeze_backbone": True, "lr": 1e-2}),
)
INITS = ("random init", "rsmm pre-trained")


class EpochLine(Callback):
    """One line per epoch: the epoch, the last training loss, the validation metric and
    the time since the phase started (rewritten in place on a terminal)."""

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        m = trainer.callback_metrics
        epoch, total = trainer.current_epoch + 1, trainer.max_epochs or 0
        parts = [f"    epoch {epoch:>{len(str(total))}}/{total}"]
        for name in ("train/loss", self.metric):
            if name in m:
                parts.append(f"{name} {float(m[name]):.3f}")
        parts.append(f"{time.perf_counter() - self.start:.0f} s")
        live = sys.stdout.isatty() and epoch < total
        print("  ".join(parts), end="\r" if live else "\n", flush=True)


def _trainer(out: Path, epochs: int, metric: str) -> Trainer:
    from lightning.pytorch.loggers import CSVLogger

    return Trainer(
        accelerator="auto",
        devices=1,
        max_epochs=epochs,
        default_root_dir=str(out),
        logger=CSVLogger(str(out), name=""),
        callbacks=[EpochLine(metric)],
        plugins=[AtomicCheckpointIO()],  # tr.save_checkpoint: never a truncated file
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
    )


class SceneDataModule(CoRegisteredStackDataModule):
    """The quick start's datamodule: a :class:`CoRegisteredStackDataModule` whose
    datasets keep every chip they read in ``chips`` (``{split: {index: raw arrays}}``,
    shared by the phases and set after construction so that it stays out of the
    hyper-parameters): the small scene is read from disk once, not once per epoch."""

    chips: dict[str, dict[int, Any]] | None = None

    def make_dataset(self, split: str, **kwargs: Any) -> Any:
        ds = super().make_dataset(split, **kwargs)
        if ds is not None and self.chips is not None:
            ds.read_raw = _kept(ds.read_raw, self.chips.setdefault(split, {}))
        return ds


def _kept(read: Callable[[int], Any], kept: dict[int, Any]) -> Callable[[int], Any]:
    def read_once(index: int) -> Any:
        if index not in kept:
            kept[index] = read(index)
        return kept[index]

    return read_once


def build_scene_manifest(out: Path, side: float, stride: float, seed: int) -> Path:
    """Generate the scene under ``out/scene`` and write ``out/chips.parquet`` + map."""
    scene_dir = out / "scene"
    shutil.rmtree(scene_dir, ignore_errors=True)
    origin = (ZONE_BORDER_X - round(side / 2 / 60) * 60, 4311000.0)
    scene = generate_scene(
        scene_dir,
        extent_m=(side, side),
        seed=seed,
        naip_gsd=2.0,
        field_size=(200.0, 480.0),
        west_crs="EPSG:32617",
        origin=origin,
    )
    spec = spec_from_dirs(
        {m: scene_dir / m for m in MODALITIES},
        chip_size="160m",
        stride=f"{stride:g}m",
        block_size="320m",
        seed=seed,
        labels=LabelSpec(path=str(scene_dir / "labels.tif"), classes=scene.classes),
    )
    manifest = build_manifest(spec)
    print("    " + manifest.summary().replace("\n", "\n    "))
    path = write_manifest(manifest, out / "chips.parquet")
    save_figure(manifest.plot_map(manifest.extra.get("footprints")), out / "chips.png")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    p = OptionParser(
        prog="rsmm quickstart",
        description="Generate a co-registered S1/S2/NAIP GeoTIFF scene, build its chip "
        "manifest, pre-train one encoder per modality, fine-tune (and linear-probe) on 10%% "
        "of the labels, compare with random initialisation, export the encoders and write a "
        "PNG report. The output folder's scene/, chips.* and run folders are replaced.",
    )
    p.add_argument("--out", default="rsmm-quickstart", help="output directory")
    p.add_argument(
        "--fast", action="store_true", help="tiny settings (about 30 s of CPU; for tests)"
    )
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = [f"{n}, {p}".replace(" ", "_").replace(",", "") for p, _ in PROTOCOLS for n in INITS]
    for run in ("pretrain", "random_init", "rsmm_pre-trained", *runs):
        shutil.rmtree(out / run, ignore_errors=True)
    warnings.filterwarnings("ignore", message=".*estimated them.*")
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    side, stride, pre_ep, ft_ep = SETTINGS["fast" if a.fast else "full"]
    start = time.perf_counter()

    print(f"[1/5] generating a {side / 1000:g} km S1/S2/NAIP scene and its chip manifest ...")
    manifest = build_scene_manifest(out, side, stride, a.seed)
    common = {"root": str(manifest), "modalities": MODALITIES, "batch_size": 64}
    chips: dict[str, dict[int, Any]] = {}  # every chip read once, shared by the phases

    seed_everything(a.seed, verbose=False)
    print("[2/5] pre-training S1, S2 and NAIP encoders (multimodal NT-Xent) ...")
    dm = SceneDataModule(**common, views=2, augment="mm_pretrain", seed=a.seed)
    dm.chips = chips
    pre = PretrainTask(
        backbone="tiny_cnn", projection_dim=32, hidden_dim=64, temperature=0.2, lr=3e-3
    )
    tr = _trainer(out / "pretrain", pre_ep, "val/knn_acc")
    tr.fit(pre, dm)
    ckpt = out / "pretrain.ckpt"
    tr.save_checkpoint(ckpt, weights_only=False)
    knn = tr.callback_metrics.get("val/knn_acc")

    results, confusions, embeddings = {}, {}, {}
    dmf = None
    for protocol, options in PROTOCOLS:
        for name in INITS:
            init = None if name == "random init" else str(ckpt)
            step = 3 if protocol == "fine-tuned" else 4
            print(f"[{step}/5] {protocol} on 10% of the labelled chips from {name} ...")
            seed_everything(a.seed + 1, verbose=False)
            dmf = SceneDataModule(**common, label_fraction=0.1, seed=a.seed)
            dmf.chips = chips
            ft = FinetuneTask(backbone="tiny_cnn", pretrained=init, **options)
            key = f"{name}, {protocol}"
            trf = _trainer(out / key.replace(" ", "_").replace(",", ""), ft_ep, "val/OA")
            trf.fit(ft, dmf)
            results[key] = trf.test(ft, dmf, verbose=False)[0]
            if protocol == "fine-tuned":
                confusions[key] = read_confusion(Path(trf.log_dir) / "confusion.csv")
            else:  # the frozen encoders' own features
                feats, labels = embed_test_split(ft, dmf)
                embeddings[name] = (pca_2d(feats), labels)
    print("[5/5] exporting the encoders and writing the report ...")
    card_metrics = {
        f"{key} (10% labels), test {m}": float(r[f"test/{m}"])
        for key, r in results.items()
        for m in ("OA", "kappa")
    }
    if knn is not None:
        card_metrics["k-NN accuracy of the pre-trained features, validation"] = float(knn)
    export = export_encoders(
        ckpt, out / "encoders", overwrite=True, format="torchgeo", metrics=card_metrics
    )

    # Same seed, threads, CPU kind and torch build: the same numbers (the kernels' summation
    # order depends on the thread count and on the CPU's vector instructions).
    print(
        f"\nseed {a.seed}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
        f"{platform.machine()} {torch.backends.cpu.get_cpu_capability()}"
    )
    print("| initialisation | protocol | OA | AA | kappa |")
    print("| --- | --- | --- | --- | --- |")
    for key, r in results.items():
        name, protocol = key.split(", ")
        print(
            f"| {name} | {protocol} | {r['test/OA']:.3f} | {r['test/AA']:.3f} "
            f"| {r['test/kappa']:.3f} |"
        )
    if knn is not None:
        print(
            f"\nk-NN accuracy of the pre-trained features on the validation split: {float(knn):.3f}"
        )
    report = write_report(
        out / "report.png",
        loss=read_logged(Path(tr.log_dir) / "metrics.csv", "train/loss"),
        confusions=confusions,
        embeddings=embeddings,
        classes=dmf.classes,
        title="rsmm quickstart: S1 + S2 + NAIP, 10% of the labelled chips (confusion: "
        "fine-tuned; embeddings: frozen encoders)",
    )
    print(f"\nmanifest:   {manifest}\nchip map:   {out / 'chips.png'}")
    print(f"checkpoint: {ckpt}\nencoders:   {export}\nreport:     {report}")
    for protocol, _ in PROTOCOLS:
        gain = (
            results[f"rsmm pre-trained, {protocol}"]["test/OA"]
            - results[f"random init, {protocol}"]["test/OA"]
        )
        print(f"pre-training gain in overall accuracy, {protocol}: {gain:+.3f}")
    with atomic_open(out / "results.pt", "wb") as fh:
        torch.save({k: dict(v) for k, v in results.items()}, fh)
    print(f"done in {(time.perf_counter() - start) / 60:.1f} min")
    return 0
