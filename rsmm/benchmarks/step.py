"""One pre-training step: rsmm vs torchgeo's SimCLRTask vs a bare ResNet-18 step.

Same inputs for all: Sentinel-2, 13 bands, 64x64, 32 samples, two views (64 images a
step). Each step is timed as a whole Lightning training iteration (batch transfer and
augmentation hook, forward, loss, backward, optimiser step): the wall time between two
consecutive ``on_train_batch_end`` calls, median over steps. The bare step is a plain
ResNet-18 forward+backward+AdamW step on the 64 images. Also ``mm_ntxent`` vs lightly's
``NTXentLoss`` (N=512, d=128, forward+backward).

Then one step of every baseline SSL method of ``PretrainTask`` (issue 9), against
torchgeo's ``MoCoTask`` (v2, queue 3,072) and ``BYOLTask`` where torchgeo has the
method, with the projector sizes matched (``--methods ""`` skips this part). torchgeo's
``BYOLTask`` resizes every image to 224x224 inside its step; the benchmark replaces its
augmentation by the same one at 64x64, so that both see the same image size.

    python benchmarks/step.py [--steps 8] [--precision 32-true|bf16-mixed] [--device cpu|cuda]
        [--methods ntxent,moco,byol,barlow_twins,vicreg,mmcr]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch
from lightning import Callback, LightningDataModule, Trainer
from torch.utils.data import DataLoader, Dataset

from rsmm.benchmarks._timing import WARMUP_STEPS, cpu_name, median_seconds, step_count


class StepTimer(Callback):
    def __init__(self) -> None:
        self.stamps: list[float] = []

    def on_train_batch_end(self, *args) -> None:
        self.stamps.append(time.perf_counter())

    def median(self, skip: int = WARMUP_STEPS) -> float:
        d = [b - a for a, b in zip(self.stamps[:-1], self.stamps[1:])][skip:]
        return statistics.median(d)


class Images(Dataset):
    def __init__(self, n: int, key: str) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.rand(n, 13, 64, 64, generator=g) * 3000
        self.key = key

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {self.key: self.x[i], "label": torch.tensor(0)}


def run(task, datamodule, steps: int, precision: str, device: str) -> float:
    timer = StepTimer()
    tr = Trainer(
        accelerator=device,
        devices=1,
        max_steps=steps,
        precision=precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[timer],
    )
    tr.fit(task, datamodule)
    return timer.median()


def rsmm_step(steps: int, precision: str, device: str, loss: str, **task_kw) -> float:
    """Median seconds of one rsmm pre-training iteration (S2 13 bands, two views)."""
    import numpy as np

    from rsmm.datamodules.base import MultiModalDataModule
    from rsmm.datasets.base import MultiModalDataset
    from rsmm.tasks import PretrainTask

    class S2Only(MultiModalDataset):
        manifest_name = "eurosat"

        def __init__(self, root=None, split="train", modalities=("s2",), bands=None):
            super().__init__(modalities, bands)
            self.images = Images(32 * (steps + 2), "s2")

        def __len__(self):
            return len(self.images)

        def __getitem__(self, i):
            return self.images[i]

        def targets(self):
            return np.zeros(len(self), dtype=int)

    class S2DM(MultiModalDataModule):
        dataset_class = S2Only
        val_split = None
        test_split = None

    dm = S2DM("", batch_size=32, views=2, augment="mm_pretrain")
    task = PretrainTask(backbone="resnet18", loss=loss, **task_kw)
    return run(task, dm, steps, precision, device)


#: rsmm ``PretrainTask`` arguments per method, and torchgeo's task of the same method
#: (``None``: torchgeo has none) with matching projector sizes
METHODS: dict[str, tuple[dict, str | None]] = {
    "ntxent": ({}, "SimCLRTask"),
    "moco": (
        {"temperature": 0.2, "loss_kwargs": {"queue_size": 3072, "symmetric": False}},
        "MoCoTask",
    ),
    "byol": ({"hidden_dim": 4096, "projection_dim": 256}, "BYOLTask"),
    "barlow_twins": ({}, None),
    "vicreg": ({}, None),
    "mmcr": ({}, None),
}


def torchgeo_task(name: str):
    """torchgeo's task ``name`` on 13 bands, ResNet-18, 64x64 images."""
    from rsmm.compat import byol_augmentation
    from rsmm.compat import torchgeo_task as task_class

    if name == "SimCLRTask":
        return task_class("SimCLR")(model="resnet18", in_channels=13, size=64)
    if name == "MoCoTask":
        return task_class("MoCo")(
            model="resnet18",
            in_channels=13,
            version=2,
            layers=2,
            hidden_dim=512,
            output_dim=128,
            temperature=0.2,
            memory_bank_size=3072,
            size=64,
        )
    task = task_class("BYOL")(model="resnet18", in_channels=13)
    task.model.augment = byol_augmentation((64, 64))  # its own default resizes to 224
    return task


def method_steps(
    methods: list[str], steps: int, precision: str, device: str
) -> dict[str, dict[str, float]]:
    """Median step ms of each rsmm method and of torchgeo's task of that method."""

    class TGData(LightningDataModule):
        def train_dataloader(self):
            return DataLoader(Images(32 * (steps + 2), "image"), batch_size=32)

    out: dict[str, dict[str, float]] = {}
    for name in methods:
        if name not in METHODS:
            raise ValueError(f"--methods: unknown {name!r}; choose from {', '.join(METHODS)}")
        kw, tg_name = METHODS[name]
        row = {"rsmm_ms": 1e3 * rsmm_step(steps, precision, device, name, **kw)}
        if tg_name is not None:
            tg = torchgeo_task(tg_name)
            row["torchgeo_ms"] = 1e3 * run(tg, TGData(), steps, precision, device)
        out[name] = row
    return out


def main(argv: list[str] | None = None) -> dict[str, float]:
    from lightly.loss import NTXentLoss

    from rsmm.compat import torchgeo_task as task_class
    from rsmm.losses.contrastive import mm_ntxent
    from rsmm.models import build_backbone

    p = argparse.ArgumentParser(prog="rsmm benchmark step", allow_abbrev=False, description=__doc__)
    p.add_argument("--steps", type=step_count, default=8)
    p.add_argument("--precision", default="32-true")
    p.add_argument("--device", default="cpu")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated; '' = none")
    a = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    dev = torch.device(a.device)
    results: dict[str, float] = {}

    # loss alone
    za = torch.randn(512, 128, device=dev, requires_grad=True)
    zb = torch.randn(512, 128, device=dev, requires_grad=True)
    ids = torch.arange(512, device=dev).repeat(2)
    lightly_loss = NTXentLoss(temperature=0.1)

    def ours() -> None:
        z = torch.nn.functional.normalize(torch.cat([za, zb]), dim=1)
        mm_ntxent(z, ids, 0.1).backward()

    def theirs() -> None:
        lightly_loss(za, zb).backward()

    results["loss_rsmm_ms"] = 1e3 * median_seconds(ours, 10)
    results["loss_lightly_ms"] = 1e3 * median_seconds(theirs, 10)

    # bare ResNet-18 step on 64 images
    net = build_backbone("resnet18", 13).to(dev)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x = torch.randn(64, 13, 64, 64, device=dev)
    autocast = torch.autocast(
        dev.type, dtype=torch.bfloat16, enabled=a.precision.startswith("bf16")
    )

    def bare() -> None:
        with autocast:
            loss = net(x).float().square().mean()
        loss.backward()
        opt.step()
        opt.zero_grad()

    results["bare_step_ms"] = 1e3 * median_seconds(bare, max(3, a.steps - 2))

    # torchgeo SimCLRTask on the same images (its own augmentations inside the step)
    class TGData(LightningDataModule):
        def train_dataloader(self):
            return DataLoader(Images(32 * (a.steps + 2), "image"), batch_size=32)

    tg = task_class("SimCLR")(model="resnet18", in_channels=13, size=64)
    results["torchgeo_step_ms"] = 1e3 * run(tg, TGData(), a.steps, a.precision, a.device)

    results["rsmm_step_ms"] = 1e3 * rsmm_step(a.steps, a.precision, a.device, "ntxent")

    results["rsmm_overhead_vs_bare"] = results["rsmm_step_ms"] / results["bare_step_ms"] - 1
    results["torchgeo_overhead_vs_bare"] = results["torchgeo_step_ms"] / results["bare_step_ms"] - 1
    results["torchgeo_over_rsmm"] = results["torchgeo_step_ms"] / results["rsmm_step_ms"]
    print(
        f"pre-training step, {a.precision}, {a.device} ({cpu_name() if a.device == 'cpu' else torch.cuda.get_device_name()})"
    )
    print("| what | ms | vs bare step |")
    print("| --- | --- | --- |")
    print(f"| bare ResNet-18 fwd+bwd+AdamW, 64 images | {results['bare_step_ms']:.0f} | 1.00 |")
    print(
        f"| torchgeo SimCLRTask step | {results['torchgeo_step_ms']:.0f} | {1 + results['torchgeo_overhead_vs_bare']:.2f} |"
    )
    print(
        f"| rsmm PretrainTask step | {results['rsmm_step_ms']:.0f} | {1 + results['rsmm_overhead_vs_bare']:.2f} |"
    )
    print(f"\ntorchgeo / rsmm step time: {results['torchgeo_over_rsmm']:.2f}x")
    print(
        f"mm_ntxent {results['loss_rsmm_ms']:.2f} ms vs lightly NTXentLoss {results['loss_lightly_ms']:.2f} ms "
        f"(N=512, d=128, fwd+bwd): lightly / rsmm = {results['loss_lightly_ms'] / results['loss_rsmm_ms']:.2f}x"
    )

    methods = [m for m in a.methods.split(",") if m]
    if methods:
        rows = method_steps(methods, a.steps, a.precision, a.device)
        print(
            "\n| method | rsmm ms | vs bare step | torchgeo task | torchgeo ms | torchgeo / rsmm |"
        )
        print("| --- | --- | --- | --- | --- | --- |")
        for name, row in rows.items():
            results[f"{name}_rsmm_ms"] = row["rsmm_ms"]
            tg = METHODS[name][1]
            cells = ["-", "-", "-"]
            if "torchgeo_ms" in row:
                results[f"{name}_torchgeo_ms"] = row["torchgeo_ms"]
                results[f"{name}_torchgeo_over_rsmm"] = row["torchgeo_ms"] / row["rsmm_ms"]
                cells = [
                    str(tg),
                    f"{row['torchgeo_ms']:.0f}",
                    f"{results[f'{name}_torchgeo_over_rsmm']:.2f}",
                ]
            print(
                f"| {name} | {row['rsmm_ms']:.0f} | {row['rsmm_ms'] / results['bare_step_ms']:.2f} "
                f"| {' | '.join(cells)} |"
            )
    return results


if __name__ == "__main__":
    main()
