"""``rsmm pretrain`` under torchrun (2 CPU processes, gloo), streaming shards: the ranks'
samples are disjoint and cover the epoch less the dropped remainder, and the loss is the
single-process loss of the batches the ranks received, concatenated. The same under
FSDP2 (``--trainer.strategy fsdp2``), with its checkpoints exported and resumed."""

from __future__ import annotations

import json
import os
import re
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


#: what a rank prints when it aborts in gloo's teardown at interpreter exit
TEARDOWN_ABORT = "terminate called without an active exception"


def torchrun(tmp: Path, config: Path, saved: list[str], *args: str) -> None:
    """``rsmm pretrain --config config`` as ``WORLD`` processes under torchrun, in ``tmp``.

    A rank may abort in gloo's teardown at interpreter exit, after training and after its
    results are saved (SIGABRT, :data:`TEARDOWN_ABORT`; see ``tests/test_ddp.py``): the
    saved results (the files ``saved`` in ``tmp``, and the last checkpoint) are then judged
    like any others. Any other failure fails the test with the processes' stderr."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]))
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           str(WORLD), "-m", "rsmm.cli", "pretrain", "--config", str(config),
           "--checkpoint_every_n_steps", "0", *args]  # fmt: skip
    done = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True, timeout=540)
    if done.returncode == 0:
        return
    finished = all((tmp / name).is_file() for name in saved) and any(
        (tmp / "runs").glob("version_*/checkpoints/last.ckpt")
    )
    assert TEARDOWN_ABORT in done.stderr and finished, done.stderr[-3000:]


#: NT-Xent pre-training with lr 0 (the weights stay, so every step's loss can be checked)
MODEL = {
    "projector_bn": False,
    "projection_dim": 8,
    "hidden_dim": 16,
    "loss": "ntxent",
    "temperature": 0.5,
    "lr": 0.0,
    "weight_decay": 0.0,
}


def trainer_config(tmp: Path, strategy: str, callback: str) -> dict:
    """The trainer section: one epoch on ``WORLD`` CPU processes, steps recorded by
    ``callback`` (a class of this module) into ``tmp``."""
    return {
        "accelerator": "cpu",
        "devices": WORLD,
        "strategy": strategy,
        "max_epochs": 1,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": str(tmp / "runs"),
        "callbacks": [{"class_path": f"test_multinode.{callback}", "init_args": {"out": str(tmp)}}],
    }


def config(tmp: Path, shards: Path) -> Path:
    """Tiny pre-training: lr 0 keeps the weights, so every step's loss can be checked."""
    cfg = {
        "model": {**MODEL, "backbone": "tiny_cnn", "backbone_kwargs": {"batch_norm": False}},
        "data": {
            "class_path": "rsmm.datamodules.streaming.ShardDataModule",
            "init_args": {"root": str(shards), "batch_size": 3, "views": 2, "augment": "eval"},
        },
        "trainer": trainer_config(tmp, "ddp", "RecordSteps"),
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
    args = [
        "shard",
        str(manifest),
        "--out",
        str(shards),
        "--split",
        "train",
        "--chunk-bytes",
        "20kB",
    ]
    assert manifest_main(args) == 0
    torchrun(tmp_path, config(tmp_path, shards), [f"rank{r}.json" for r in range(WORLD)])
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


class RecordSharded(Callback):
    """Test-only: each rank writes, in a folder named after the run's version, the local
    share of every parameter when training starts, the FSDP units, and the batch (as
    the task received it) and loss of each training step."""

    def __init__(self, out: str) -> None:
        self.out = out

    def folder(self, trainer) -> Path:
        path = Path(self.out, Path(trainer.log_dir).name)
        path.mkdir(exist_ok=True)
        return path

    def on_train_start(self, trainer, pl_module) -> None:
        from torch.distributed.fsdp import FSDPModule
        from torch.distributed.tensor import DTensor

        shares = {
            name: [p.to_local().numel() if isinstance(p, DTensor) else -1, p.numel(), len(p)]
            for name, p in pl_module.named_parameters()
        }
        units = [n for n, m in pl_module.named_modules() if isinstance(m, FSDPModule)]
        record = {"shares": shares, "units": units}
        (self.folder(trainer) / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = {"batch": batch, "loss": outputs["loss"].detach()}
        torch.save(
            step, self.folder(trainer) / f"rank{trainer.global_rank}-step{trainer.global_step}.pt"
        )


#: a ViT small enough for CPU: two blocks (FSDP units of their own), LayerNorm only, so
#: that the sharded run computes exactly what one process computes
VIT = {"img_size": 8, "patch_size": 4, "embed_dim": 16, "depth": 2, "num_heads": 2}


def fsdp_config(tmp: Path) -> Path:
    """Two steps per epoch of NT-Xent on 8 synthetic samples (2 per rank and step); lr 0
    keeps the weights, so every step's loss can be checked from the checkpoint."""
    cfg = {
        "model": {**MODEL, "backbone": "vit_tiny_patch16_224", "backbone_kwargs": VIT},
        "data": {
            "class_path": "rsmm.datamodules.SyntheticDataModule",
            "init_args": {
                "num_samples": {"train": 8, "val": 8, "test": 8},
                "size": 8,
                "batch_size": 2,
                "views": 2,
                "augment": "eval",
                "seed": 3,
            },
        },
        "trainer": {**trainer_config(tmp, "fsdp2", "RecordSharded"), "limit_val_batches": 0},
    }
    path = tmp / "fsdp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def torchrun_pretrain(tmp: Path, *args: str) -> None:
    torchrun(tmp, fsdp_config(tmp), [], *args)


def concatenated(steps: list[dict]) -> dict:
    """The ranks' batches of one step as one batch (rank 0's rows first)."""
    return {
        m: [torch.cat([s["batch"][m][v] for s in steps]) for v in range(2)] for m in ("s1", "s2")
    }


def check_losses(task: PretrainTask, folder: Path, steps: range) -> None:
    """Each step's ranks' shares of the all-gathered NT-Xent add up to the loss of one
    process on the concatenated batch."""
    for step in steps:
        ranks = [torch.load(folder / f"rank{r}-step{step + 1}.pt") for r in range(WORLD)]
        with torch.no_grad():
            loss, _ = task.shared_step(concatenated(ranks))
        got = sum(float(r["loss"]) for r in ranks) / WORLD
        assert got == pytest.approx(loss.item(), rel=1e-5)


def test_fsdp2_pretraining_from_the_cli(tmp_path: Path) -> None:
    """``rsmm pretrain --trainer.strategy fsdp2`` under torchrun (gloo, CPU): every
    parameter sharded over the ranks, NT-Xent gathered across them, single-file
    checkpoints that ``rsmm export`` reads and that resume the run; a resumed run saving
    distributed checkpoints writes a folder that ``rsmm export`` refuses in one line."""
    from rsmm.cli.export import main as export_main
    from rsmm.errors import ExportError
    from rsmm.export import load_encoder

    torchrun_pretrain(tmp_path)
    first = tmp_path / "version_0"
    records = [json.loads((first / f"rank{r}.json").read_text()) for r in range(WORLD)]
    for name, (local, full, rows) in records[0]["shares"].items():
        other = records[1]["shares"][name][0]
        assert local >= 0 and local + other == full, name  # sharded, nothing duplicated
        if rows >= WORLD:  # shards split the first dimension
            assert 0 < local < full and 0 < other < full, name
    units = set(records[0]["units"])
    assert {"encoder.backbones.s1.blocks.0", "encoder.backbones.s2.blocks.1",
            "encoder.backbones.s1", "encoder.projectors.s2"} <= units  # fmt: skip

    # the checkpoint is one file gathered on rank 0; lr 0: its weights are the run's
    ckpt = tmp_path / "runs" / "version_0" / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    task = PretrainTask.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True).eval()
    check_losses(task, first, range(2))
    assert export_main([str(ckpt), str(tmp_path / "export")]) == 0
    s2 = load_encoder(tmp_path / "export", "s2")
    for key, value in s2.state_dict().items():
        assert torch.equal(value, task.encoder.backbones["s2"].state_dict()[key]), key

    # resume for a second epoch, now saving a distributed checkpoint (a folder)
    torchrun_pretrain(
        tmp_path, "--ckpt_path", str(ckpt), "--trainer.max_epochs", "2",
        "--trainer.strategy", "rsmm.tasks.sharding.FSDP2Strategy",
        "--trainer.strategy.save_distributed_checkpoint", "true",
    )  # fmt: skip
    second = tmp_path / "version_1"
    assert sorted(p.name for p in second.glob("rank0-step*.pt")) == [
        "rank0-step3.pt",
        "rank0-step4.pt",
    ]  # resumed at step 2: the second epoch only
    check_losses(task, second, range(2, 4))
    folder = tmp_path / "runs" / "version_1" / "checkpoints" / "last.ckpt"
    assert folder.is_dir() and (folder / "meta.pt").is_file()
    assert {p.name for p in folder.iterdir()} == {
        ".metadata", "meta.pt", *(f"__{r}_0.distcp" for r in range(WORLD))
    }  # fmt: skip
    with pytest.raises(ExportError, match=re.escape(f"checkpoint {folder} is a distributed")):
        export_main([str(folder), str(tmp_path / "export2")])
    # the error's advice: Lightning merges the shards into a file that rsmm exports
    merge = [sys.executable, "-m", "lightning.fabric.utilities.consolidate_checkpoint", str(folder)]
    subprocess.run(merge, check=True, capture_output=True, timeout=300)
    assert export_main([f"{folder}.consolidated", str(tmp_path / "export2")]) == 0
    s2_again = load_encoder(tmp_path / "export2", "s2")
    for key, value in s2_again.state_dict().items():
        assert torch.equal(value, s2.state_dict()[key]), key
