"""FSDP2 sharding of the pre-training task (:mod:`rsmm.tasks.sharding`) in one process
(a one-rank gloo group): which modules become units, that every parameter is sharded,
that the sharded task computes the unsharded task's loss and gradients, and what is
refused. The two-rank run through the CLI is in ``tests/test_multinode.py``."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import timm
import torch
import torch.distributed as dist
from lightning import Trainer
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule
from torch.distributed.tensor import DTensor

from rsmm.errors import ConfigError
from rsmm.models.backbones import build_backbone
from rsmm.tasks import FinetuneTask, PretrainTask
from rsmm.tasks.sharding import FSDP2Strategy, block_units, data_parallel_mesh, shard_units

#: a ViT small enough for CPU tests: two blocks, LayerNorm only (no batch statistics)
VIT = {"img_size": 8, "patch_size": 4, "embed_dim": 16, "depth": 2, "num_heads": 2}


@pytest.fixture
def mesh(tmp_path: Path):
    """The 2-D mesh ModelParallelStrategy makes, on a one-rank gloo group."""
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        yield init_device_mesh("cpu", (1, 1), mesh_dim_names=("data_parallel", "tensor_parallel"))
    finally:
        dist.destroy_process_group()


def task(loss: str = "ntxent", **kwargs) -> PretrainTask:
    torch.manual_seed(0)
    return PretrainTask(
        in_channels={"s1": 2, "s2": 3},
        backbone="vit_tiny_patch16_224",
        backbone_kwargs=VIT,
        projector_bn=False,
        projection_dim=8,
        hidden_dim=16,
        loss=loss,
        **kwargs,
    )


def batch() -> dict:
    g = torch.Generator().manual_seed(1)
    return {m: [torch.randn(4, c, 8, 8, generator=g) for _ in range(2)] for m, c in (("s1", 2), ("s2", 3))}


def test_block_units_are_timm_stages() -> None:
    resnet = build_backbone("resnet18", 3)
    assert [n for n, _ in block_units(resnet)] == ["layer1", "layer2", "layer3", "layer4"]
    vit = build_backbone("vit_tiny_patch16_224", 3, **VIT)
    assert [n for n, _ in block_units(vit)] == ["blocks.0", "blocks.1"]
    assert block_units(timm.create_model("tiny_cnn", in_chans=3, num_classes=0)) == []


@pytest.mark.parametrize("loss", ["ntxent", "hyp_ntxent"])
def test_sharded_task_equals_unsharded(mesh, loss: str) -> None:
    sharded, plain = task(loss), task(loss)
    sharded._device_mesh = mesh
    sharded.configure_model()
    names = [n for n, _ in shard_units(sharded)]
    assert names[:3] == ["encoder.backbones.s1.blocks.0", "encoder.backbones.s1.blocks.1",
                         "encoder.backbones.s1"]  # fmt: skip
    assert "method" not in names  # the curvature of hyp_ntxent is a frozen parameter
    units = [m for _, m in shard_units(sharded)]
    assert all(isinstance(m, FSDPModule) for m in units)
    trained = [p for p in sharded.parameters() if p.requires_grad]
    assert trained and all(isinstance(p, DTensor) for p in trained)
    # frozen parameters stay whole on every rank
    assert not any(isinstance(p, DTensor) for p in sharded.parameters() if not p.requires_grad)
    sharded.configure_model()  # idempotent: Lightning may call it twice
    assert all(isinstance(p, DTensor) for p in trained)

    losses = []
    for t in (sharded, plain):
        loss_value, _ = t.shared_step(batch())
        loss_value.backward()
        losses.append(loss_value.item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
    for (name, p), q in zip(sharded.named_parameters(), plain.parameters(), strict=True):
        if p.requires_grad:
            assert torch.allclose(p.grad.full_tensor(), q.grad, atol=1e-6), name


def test_momentum_objectives_are_refused(mesh) -> None:
    t = task("byol")
    t._device_mesh = mesh
    with pytest.raises(ConfigError, match=r"byol.*momentum.*--trainer.strategy ddp"):
        t.configure_model()


def test_no_mesh_no_sharding_and_finetune_refuses(mesh) -> None:
    t = task()
    before = copy.deepcopy(t.state_dict())
    t.configure_model()  # any strategy but ModelParallelStrategy: nothing happens
    assert not any(isinstance(p, DTensor) for p in t.parameters())
    assert all(torch.equal(before[k], v) for k, v in t.state_dict().items())
    ft = FinetuneTask(in_channels={"s2": 3}, num_classes=2, backbone="tiny_cnn")
    ft.configure_model()
    ft._device_mesh = mesh
    with pytest.raises(ConfigError, match=r"FinetuneTask does not shard.*ddp"):
        ft.configure_model()


class TwoRankMesh:
    """Test-only stand-in for a mesh with a tensor-parallel dimension of 2 ranks."""

    mesh_dim_names = ("data_parallel", "tensor_parallel")

    def __getitem__(self, name: str):
        return type("Dim", (), {"size": lambda self: 2})()


def test_tensor_parallel_mesh_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"tensor_parallel_size is 2.*fsdp2"):
        data_parallel_mesh(TwoRankMesh())


def test_fsdp2_strategy_name() -> None:
    trainer = Trainer(accelerator="cpu", devices=2, strategy="fsdp2", logger=False)
    strategy = trainer.strategy
    assert type(strategy) is FSDP2Strategy
    assert strategy._tensor_parallel_size == 1
    assert strategy._save_distributed_checkpoint is False


def test_resuming_from_a_distributed_checkpoint_folder_says_how_to_merge_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """``--ckpt_path`` a folder of shards: one line naming it and Lightning's merge tool
    (was "checkpoint not found"), and no run folder."""
    from rsmm.cli import main

    folder = tmp_path / "last.ckpt"
    folder.mkdir()
    (folder / "meta.pt").touch()
    monkeypatch.chdir(tmp_path)
    config = Path(__file__).parents[1] / "configs" / "synthetic" / "pretrain.yaml"
    assert main(["pretrain", "--config", str(config), "--ckpt_path", str(folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"checkpoint {folder} is a distributed checkpoint" in err[0]
    assert f"consolidate_checkpoint {folder}" in err[0]
    assert not (tmp_path / "runs").exists()
