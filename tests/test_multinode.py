"""``rsmm pretrain`` under torchrun (2 CPU processes, gloo), streaming shards: the ranks'
samples are disjoint and cover the epoch less the dropped remainder, and the loss is the
single-process loss of the batches the ranks received, concatenated."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from lightning import Callback
from torch.utils.data import default_collate

from rsmm.cli.manifest import main as manifest_main
from rsmm.datamodules.streaming import ShardDataModule
from rsmm.datasets.shards import ShardDataset
from rsmm.stacks import build_manifest, spec_from_dirs, write_manifest
from rsmm.tasks import PretrainTask

REPO = Path(__file__).resolve().parents[1]
SCENE = REPO / "tests" / "data" / "stacks" / "scene"
WORLD = 2


class RecordSteps(Callback):
    """Test-only: each rank writes the sample ids and the loss of its training steps."""

    def __init__(self, out: str) -> None:
        self.out = out
        self.steps: list[dict] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.steps.append({"ids": list(batch["meta"]["id"]), "loss": float(outputs["loss"])})

    def on_train_end(self, trainer, pl_module) -> None:
        Path(self.out, f"rank{trainer.global_rank}.json").write_text(json.dumps(self.steps))


def config(tmp: Path, shards: Path) -> Path:
    """Tiny pre-training: lr 0 keeps the weights, so every step's loss can be checked."""
    cfg = {
        "model": {
            "backbone": "tiny_cnn",
            "backbone_kwargs": {"batch_norm": False},
            "projector_bn": False,
            "projection_dim": 8,
            "hidden_dim": 16,
            "loss": "ntxent",
            "temperature": 0.5,
            "lr": 0.0,
            "weight_decay": 0.0,
        },
        "data": {
            "class_path": "rsmm.datamodules.streaming.ShardDataModule",
            "init_args": {"root": str(shards), "batch_size": 3, "views": 2, "augment": "eval"},
        },
        "trainer": {
            "accelerator": "cpu",
            "devices": WORLD,
            "strategy": "ddp",
            "max_epochs": 1,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "default_root_dir": str(tmp / "runs"),
            "callbacks": [
                {"class_path": "test_multinode.RecordSteps", "init_args": {"out": str(tmp)}}
            ],
        },
    }
    path = tmp / "pretrain.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_two_process_pretraining_on_shards(tmp_path: Path) -> None:
    spec = spec_from_dirs(
        {"s2": SCENE / "s2", "s1": SCENE / "s1"}, chip_size="160m", split=(1, 0, 0)
    )
    manifest = write_manifest(build_manifest(spec), tmp_path / "chips.parquet")
    shards = tmp_path / "shards"
    args = ["shard", str(manifest), "--out", str(shards), "--split", "train", "--chunk-bytes", "20kB"]
    assert manifest_main(args) == 0
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]))
    env["OMP_NUM_THREADS"] = "1"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        "--nproc_per_node", str(WORLD), "-m", "rsmm.cli", "pretrain",
        "--config", str(config(tmp_path, shards)), "--checkpoint_every_n_steps", "0",
    ]  # fmt: skip
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=540)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]

    # disjoint ranks covering the epoch less the remainder LitData drops (drop_last) so
    # that every rank gets the same number of full batches (one chip per 20 kB chunk)
    train = ShardDataset(shards, "train")
    every = {train[i]["meta"]["id"]: i for i in range(len(train))}
    seen = [[i for step in steps for i in step["ids"]] for steps in ranks]
    assert len(seen[0]) == len(seen[1]) and len(ranks[0]) == len(ranks[1]) > 1
    assert not set(seen[0]) & set(seen[1])
    per_step = WORLD * 3
    assert len(set(seen[0]) | set(seen[1])) == len(every) // per_step * per_step
    assert set(seen[0]) | set(seen[1]) <= set(every)

    # NT-Xent under DDP: each rank holds its anchors' share; their mean is the loss of
    # one process on the concatenated batch (the weights are the checkpoint's: lr 0)
    ckpt = next((tmp_path / "runs").rglob("last.ckpt"))
    task = PretrainTask.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True).eval()
    dm = ShardDataModule(str(shards), batch_size=3, views=2, augment="eval")
    dm.setup("fit")
    for step in range(len(ranks[0])):
        ids = ranks[0][step]["ids"] + ranks[1][step]["ids"]
        batch = default_collate([train[every[i]] for i in ids])
        with torch.no_grad():
            loss, _ = task.shared_step(dm.apply_augment(batch, train=True))
        got = sum(r[step]["loss"] for r in ranks) / WORLD
        assert got == pytest.approx(loss.item(), rel=1e-5)


class FirstLoss(Callback):
    """Test-only: each rank writes the loss of its first training step."""

    def __init__(self, out: str) -> None:
        self.out = out

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx == 0:
            path = Path(self.out, f"loss{trainer.global_rank}.txt")
            path.write_text(repr(float(outputs["loss"])))


class ShardedPretrain(PretrainTask):
    """Pre-training with FSDP2: the encoders' parameters sharded over the ranks.

    Every module the objective calls is its own FSDP unit (the objective calls the
    backbones and projectors, not the encoder's ``forward``)."""

    def configure_model(self) -> None:
        from torch.distributed.fsdp import fully_shard

        mesh = self.device_mesh["data_parallel"]
        for group in (self.encoder.backbones, self.encoder.projectors):
            for module in group.values():
                fully_shard(module, mesh=mesh)
        fully_shard(self.encoder, mesh=mesh)


def fsdp_run(out: str, devices: int) -> None:
    """One step of multimodal NT-Xent on 8 synthetic samples: under FSDP2 (2 ranks of 4)
    or in one process (devices=1); the weights start from the same seed."""
    from lightning import Trainer
    from lightning.pytorch.strategies import ModelParallelStrategy

    from rsmm.datamodules import SyntheticDataModule

    torch.manual_seed(0)
    dm = SyntheticDataModule(
        num_samples={"train": 8, "val": 8, "test": 8},
        size=8,
        batch_size=8 // devices,
        views=2,
        augment="eval",
        seed=3,
    )
    task_class = ShardedPretrain if devices > 1 else PretrainTask
    task = task_class(
        in_channels={"s1": 2, "s2": 13},
        backbone="tiny_cnn",
        backbone_kwargs={"batch_norm": False},
        projector_bn=False,
        projection_dim=8,
        hidden_dim=16,
        temperature=0.5,
    )
    strategy = ModelParallelStrategy(data_parallel_size=devices, tensor_parallel_size=1)
    Trainer(
        accelerator="cpu",
        devices=devices,
        strategy=strategy if devices > 1 else "auto",
        max_steps=1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[FirstLoss(out)],
    ).fit(task, dm)


def test_fsdp2_pretraining_equals_one_process(tmp_path: Path) -> None:
    """ModelParallelStrategy + fully_shard runs on CPU with gloo; the ranks' shares of
    the all-gathered NT-Xent add up to the loss of one process on the whole batch."""
    script = tmp_path / "fsdp.py"
    script.write_text(f"from test_multinode import fsdp_run\nfsdp_run({str(tmp_path)!r}, 2)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]))
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           str(WORLD), str(script)]  # fmt: skip
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=540)
    assert done.returncode == 0, done.stderr[-3000:]
    shares = [float((tmp_path / f"loss{r}.txt").read_text()) for r in range(WORLD)]
    single = tmp_path / "single"
    single.mkdir()
    fsdp_run(str(single), 1)
    assert sum(shares) / WORLD == pytest.approx(float((single / "loss0.txt").read_text()), rel=1e-5)
