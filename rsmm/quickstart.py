"""``rsmm quickstart``: the whole workflow on generated data, for a new user.

Generates co-registered Sentinel-1 / Sentinel-2 chips whose land-cover class shows in
both modalities (:class:`rsmm.datasets.SyntheticMultiModal`), pre-trains one encoder
per modality with multimodal NT-Xent, fine-tunes a linear probe on 10 % of the labels
from the pre-trained encoders and from random ones, exports the encoders and prints
a comparison table with the paths of the outputs.
"""

from __future__ import annotations

import argparse
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from lightning import Trainer, seed_everything

from rsmm.datamodules import SyntheticDataModule
from rsmm.export import export_encoders
from rsmm.report import embed_test_split, pca_2d, read_confusion, read_logged, write_report
from rsmm.tasks import FinetuneTask, PretrainTask


def _trainer(out: Path, epochs: int) -> Trainer:
    from lightning.pytorch.loggers import CSVLogger

    return Trainer(
        accelerator="auto",
        devices=1,
        max_epochs=epochs,
        default_root_dir=str(out),
        logger=CSVLogger(str(out), name=""),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="rsmm quickstart",
        description="Pre-train S1+S2 encoders on generated co-registered chips, fine-tune on "
        "10%% of the labels, compare with random initialisation, export the encoders.",
    )
    p.add_argument("--out", default="rsmm-quickstart", help="output directory")
    p.add_argument("--fast", action="store_true", help="tiny settings (seconds; for tests)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    warnings.filterwarnings("ignore", message=".*estimated them.*")
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    n, pre_ep, ft_ep = (96, 2, 3) if a.fast else (1024, 8, 30)
    sizes = {"train": n, "val": n // 4, "test": n // 2}
    common = {
        "modalities": ("s1", "s2"),
        "num_samples": sizes,
        "size": 16,
        "seed": a.seed,
        "batch_size": 64,
    }

    seed_everything(a.seed, verbose=False)
    print(f"[1/4] pre-training S1 + S2 encoders on {n} generated co-registered chips ...")
    dm = SyntheticDataModule(**common, views=2, augment="mm_pretrain")
    pre = PretrainTask(
        backbone="tiny_cnn", projection_dim=32, hidden_dim=64, temperature=0.2, lr=3e-3
    )
    tr = _trainer(out / "pretrain", pre_ep)
    tr.fit(pre, dm)
    ckpt = out / "pretrain.ckpt"
    tr.save_checkpoint(ckpt, weights_only=False)
    knn = tr.callback_metrics.get("val/knn_acc")

    results, confusions, embeddings = {}, {}, {}
    for name, init in (("random init", None), ("rsmm pre-trained", str(ckpt))):
        print(f"[{2 if init is None else 3}/4] linear probe on 10% of the labels from {name} ...")
        seed_everything(a.seed + 1, verbose=False)
        dmf = SyntheticDataModule(**common, label_fraction=0.1)
        ft = FinetuneTask(backbone="tiny_cnn", pretrained=init, freeze_backbone=True, lr=1e-2)
        trf = _trainer(out / name.replace(" ", "_"), ft_ep)
        trf.fit(ft, dmf)
        res = trf.test(ft, dmf, verbose=False)[0]
        results[name] = res
        confusions[name] = read_confusion(Path(trf.log_dir) / "confusion.csv")
        feats, labels = embed_test_split(ft, dmf)
        embeddings[name] = (pca_2d(feats), labels)
    print("[4/4] exporting the encoders ...")
    export = export_encoders(ckpt, out / "encoders", overwrite=True, format="torchgeo")

    print()
    print("| initialisation | OA | AA | kappa |")
    print("| --- | --- | --- | --- |")
    for name, r in results.items():
        print(f"| {name} | {r['test/OA']:.3f} | {r['test/AA']:.3f} | {r['test/kappa']:.3f} |")
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
        title="rsmm quickstart: linear probe on 10% of the labels",
    )
    print(f"\ncheckpoint: {ckpt}\nencoders:   {export}\nreport:     {report}")
    gain = results["rsmm pre-trained"]["test/OA"] - results["random init"]["test/OA"]
    print(f"\npre-training gain in overall accuracy: {gain:+.3f}")
    torch.save({k: dict(v) for k, v in results.items()}, out / "results.pt")
    return 0
