"""Hyperbolic multimodal pre-training (``loss: hyp_ntxent``) against eq. 4.1 (``ntxent``).

On the quick start's generated S1 / S2 / NAIP scene (:func:`rsmm.quickstart.build_scene_manifest`),
for each seed: pre-train tiny encoders with each loss (same data, views, sizes and
temperature), then probe the frozen encoders on 10 % of the labelled chips and report the
test overall accuracy of

* a linear probe on the backbone features (both losses), and
* a horospherical probe on the pre-trained ball embeddings (``hyp_ntxent`` only:
  ``FinetuneTask(head="horospherical", head_input="projector")``),

and the mean norm of the test chips' ball embeddings per class (the modalities' clipped
projector outputs averaged, then ``expmap0``): the radius read as certainty.

    python benchmarks/hyperbolic.py [--seeds 0 1] [--pretrain-epochs 3] [--probe-epochs 25] [--fast]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

#: ball of the hyperbolic runs (loss_kwargs and the horospherical head's head_kwargs)
BALL = {"c": 1.0, "clip_r": 2.3}
SIZES = {"projection_dim": 32, "hidden_dim": 64}


def _ball_norms(task: Any, dm: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Norms of the test chips' ball embeddings (the probe's ToPoincare of its input)."""
    task.eval()
    norms, labels = [], []
    with torch.no_grad():
        for i, batch in enumerate(dm.test_dataloader()):
            batch = dm.on_after_batch_transfer(batch, i)
            x = {m: batch[m][0] for m in task.modalities}
            norms.append(task.head[0](task.head_inputs(x)).norm(dim=1))
            labels.append(batch["label"])
    return torch.cat(norms), torch.cat(labels)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from lightning import seed_everything

    from rsmm.quickstart import SETTINGS, SceneDataModule, _trainer, build_scene_manifest
    from rsmm.tasks import FinetuneTask, PretrainTask

    p = argparse.ArgumentParser(
        prog="rsmm benchmark hyperbolic", allow_abbrev=False, description=__doc__
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--pretrain-epochs", type=int, default=3)
    p.add_argument("--probe-epochs", type=int, default=25)
    p.add_argument("--fast", action="store_true", help="the quick start's tiny scene")
    p.add_argument("--out", default=None, help="keep the scene and runs here")
    a = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    side, stride, _, _ = SETTINGS["fast" if a.fast else "full"]
    tmp = tempfile.TemporaryDirectory() if a.out is None else None
    out = Path(a.out or tmp.name)  # type: ignore[union-attr]
    rows: list[dict[str, Any]] = []
    norms: dict[int, torch.Tensor] = {}
    try:
        manifest = build_scene_manifest(out, side, stride, seed=0)
        common = {"root": str(manifest), "modalities": ("s1", "s2", "naip"), "batch_size": 64}
        chips: dict[str, dict[int, Any]] = {}
        classes: list[str] = []
        for seed in a.seeds:
            for loss in ("ntxent", "hyp_ntxent"):
                seed_everything(seed, verbose=False)
                dm = SceneDataModule(**common, views=2, augment="mm_pretrain", seed=seed)
                dm.chips = chips
                pre = PretrainTask(
                    backbone="tiny_cnn", temperature=0.2, lr=3e-3, loss=loss,
                    loss_kwargs=BALL if loss == "hyp_ntxent" else None, **SIZES,
                )  # fmt: skip
                run = out / f"seed{seed}" / loss
                tr = _trainer(run / "pretrain", a.pretrain_epochs, "val/knn_acc")
                tr.fit(pre, dm)
                ckpt = run / "pretrain.ckpt"
                tr.save_checkpoint(ckpt)
                probes = {"linear": {}}
                if loss == "hyp_ntxent":
                    probes["horospherical"] = {
                        "head": "horospherical", "head_kwargs": BALL, "head_input": "projector",
                    }  # fmt: skip
                for probe, options in probes.items():
                    seed_everything(seed + 1, verbose=False)
                    dmf = SceneDataModule(**common, label_fraction=0.1, seed=seed)
                    dmf.chips = chips
                    ft = FinetuneTask(
                        backbone="tiny_cnn", pretrained=str(ckpt), freeze_backbone=True,
                        lr=1e-2, **SIZES, **options,
                    )  # fmt: skip
                    trf = _trainer(run / probe, a.probe_epochs, "val/OA")
                    trf.fit(ft, dmf)
                    result = trf.test(ft, dmf, verbose=False)[0]
                    rows.append({"seed": seed, "loss": loss, "probe": probe, **result})
                    print(f"    seed {seed}, {loss}, {probe} probe: test OA {result['test/OA']:.3f}")
                    if probe == "horospherical":
                        n, y = _ball_norms(ft, dmf)
                        classes = list(dmf.classes)
                        norms[seed] = torch.stack(
                            [n[y == k].mean() if (y == k).any() else n.new_tensor(float("nan"))
                             for k in range(len(classes))]
                        )  # fmt: skip
    finally:
        if tmp is not None:
            tmp.cleanup()
    print("\n| seed | pre-training | probe | test OA | test kappa |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['seed']} | {r['loss']} | {r['probe']} | {r['test/OA']:.3f} "
            f"| {r['test/kappa']:.3f} |"
        )
    mean_norm = torch.stack(list(norms.values())).mean(0)
    print("\nhyp_ntxent: mean norm of the test chips' ball embeddings per class (c = 1):")
    print("| class | " + " | ".join(classes) + " |")
    print("| --- " * (len(classes) + 1) + "|")
    print("| mean norm | " + " | ".join(f"{v:.3f}" for v in mean_norm.tolist()) + " |")
    return {"rows": rows, "norms": dict(zip(classes, mean_norm.tolist()))}
