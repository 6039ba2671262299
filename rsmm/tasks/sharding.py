"""Sharded data parallelism (FSDP2) for pre-training large backbones.

Under Lightning's :class:`~lightning.pytorch.strategies.ModelParallelStrategy` (or
rsmm's :class:`FSDP2Strategy`, registered as ``--trainer.strategy fsdp2``) every rank
holds a share of each parameter, its gradient and its optimiser state; a module's
parameters are all-gathered just before it runs and freed after it, and gradients are
reduce-scattered. ``torch.distributed.fsdp.fully_shard`` makes such units, children
before parents (:func:`shard_units`):

* each block of a backbone that timm lists in ``feature_info`` (ResNet's ``layer1-4``,
  ViT's ``blocks.N``, ConvNeXt's ``stages.N``, Swin's ``layers.N``; rsmm's
  ``small_alexnet`` / ``tiny_cnn`` have none and are one unit each);
* each modality's backbone (what its blocks leave: stem, final norm);
* each projector and dense projector;
* the objective, when it has trainable parameters of its own.

Frozen parameters (a fixed curvature) are not sharded: they are kept whole on every rank.

The objectives call the backbones and projectors, not the encoder's ``forward``, so
these are the modules that run; every parameter of the task is in one of them (checked:
a parameter left out would be trained on one rank's gradient only). The contrastive
objectives gather the embeddings of all ranks with gradients as under DDP, so the loss
is the one of one process on the global batch.

Objectives with a momentum copy of the encoders (``moco``, ``byol``) are refused: the
copy is updated outside any forward pass, where FSDP2 keeps only shards.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Literal

import torch
from lightning.pytorch.strategies import ModelParallelStrategy, StrategyRegistry
from torch import nn
from torch.distributed import default_pg_timeout

from rsmm.errors import ConfigError

if TYPE_CHECKING:
    from torch.distributed.device_mesh import DeviceMesh

    from rsmm.tasks.base import MultiModalTask

#: the Lightning strategy name of :class:`FSDP2Strategy`
STRATEGY_NAME = "fsdp2"


def block_units(backbone: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of the blocks of a backbone that are FSDP units of their own.

    The blocks are the modules timm lists in the backbone's ``feature_info`` (its
    stages) that hold parameters; a backbone without ``feature_info`` has none.
    """
    info = getattr(backbone, "feature_info", None)
    if not isinstance(info, list):
        return []
    names = [f.get("module") for f in info if isinstance(f, dict) and f.get("module")]
    units = []
    for name in dict.fromkeys(names):
        module = backbone.get_submodule(name)
        if any(True for _ in module.parameters()):
            units.append((name, module))
    return units


def shard_units(task: MultiModalTask) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every FSDP unit of a pre-training task, each module after
    the units it contains (the order ``fully_shard`` must see them in)."""
    encoder = task.encoder
    units: list[tuple[str, nn.Module]] = []
    for m, net in encoder.backbones.items():
        prefix = f"encoder.backbones.{m}"
        units += [(f"{prefix}.{name}", block) for name, block in block_units(net)]
        units.append((prefix, net))
    for group in ("projectors", "dense_projectors"):
        for m, module in getattr(encoder, group).items():
            units.append((f"encoder.{group}.{m}", module))
    method: nn.Module | None = getattr(task, "method", None)  # the objective
    if method is not None and any(p.requires_grad for p in method.parameters()):
        units.append(("method", method))
    return units


def data_parallel_mesh(mesh: DeviceMesh) -> DeviceMesh:
    """The data-parallel dimension of a ModelParallelStrategy's mesh.

    Raises:
        ConfigError: the mesh has a tensor-parallel dimension of more than one rank
            (rsmm shards data-parallel only; those ranks would train on the same data).
    """
    names = mesh.mesh_dim_names or ()
    if "tensor_parallel" in names and mesh["tensor_parallel"].size() > 1:
        raise ConfigError(
            f"trainer.strategy: tensor_parallel_size is {mesh['tensor_parallel'].size()}, but "
            "rsmm shards data-parallel only (FSDP2); use --trainer.strategy fsdp2, or give "
            "ModelParallelStrategy tensor_parallel_size 1 and data_parallel_size = devices x "
            "nodes"
        )
    return mesh["data_parallel"] if "data_parallel" in names else mesh


def shard_task(task: MultiModalTask, mesh: DeviceMesh) -> None:
    """Shard a built pre-training task's parameters over ``mesh`` with ``fully_shard``
    (:func:`shard_units`). A task already sharded is left as it is.

    Raises:
        ConfigError: for an objective with a momentum copy of the encoders, or a mesh
            with tensor parallelism (:func:`data_parallel_mesh`).
    """
    from torch.distributed.fsdp import FSDPModule, fully_shard
    from torch.distributed.tensor import DTensor

    from rsmm.tasks.momentum import MomentumTarget

    dp_mesh = data_parallel_mesh(mesh)
    method: nn.Module | None = getattr(task, "method", None)
    if method is not None and any(isinstance(m, MomentumTarget) for m in method.modules()):
        raise ConfigError(
            f"loss {task.hparams.loss!r} keeps a momentum copy of the encoders, which rsmm "
            "does not shard: use --trainer.strategy ddp for it"
        )
    units = shard_units(task)
    if all(isinstance(module, FSDPModule) for _, module in units):
        return  # Lightning may call configure_model twice
    frozen = {p for p in task.parameters() if not p.requires_grad}
    for _, module in units:
        fully_shard(module, mesh=dp_mesh, ignored_params=frozen)
    left = [n for n, p in task.named_parameters() if p.requires_grad and not isinstance(p, DTensor)]
    if left:  # a module the objective calls that shard_units does not know
        raise RuntimeError(f"trainable parameters outside every FSDP unit: {left}")
    move_unsharded(task, mesh_device(dp_mesh))


def mesh_device(mesh: DeviceMesh) -> torch.device:
    """This rank's device of ``mesh`` (the current one of its accelerator type)."""
    if mesh.device_type == "cpu":
        return torch.device("cpu")
    return torch.device(mesh.device_type, torch.get_device_module(mesh.device_type).current_device())


def move_unsharded(module: nn.Module, device: torch.device) -> None:
    """Move the parameters and buffers FSDP2 does not manage (frozen parameters, the
    buffers of modules outside every unit) to ``device``; ModelParallelStrategy moves
    nothing itself."""
    from torch.distributed.tensor import DTensor

    for sub in module.modules():
        for p in sub.parameters(recurse=False):
            if not isinstance(p, DTensor) and p.device != device:
                p.data = p.data.to(device)
        for name, b in sub.named_buffers(recurse=False):
            if b.device != device:
                sub._buffers[name] = b.to(device)


class FSDP2Strategy(ModelParallelStrategy):
    """Lightning's ModelParallelStrategy set up for rsmm's data-parallel sharding.

    Every rank is in the one data-parallel dimension (``data_parallel_size`` =
    devices x nodes, ``tensor_parallel_size`` = 1), and checkpoints are single
    files gathered on rank 0 (``save_distributed_checkpoint=False``), which
    ``rsmm export``, ``--ckpt_path`` and ``--model.pretrained`` read like any other.
    ``save_distributed_checkpoint=True`` writes a folder of per-rank shards instead
    (for models too large for one host's memory; ``rsmm export`` refuses it).

    Args:
        save_distributed_checkpoint: one folder of per-rank shards per checkpoint.
        data_parallel_size: ranks that shard the parameters (default: all).
        tensor_parallel_size: must stay 1 (rsmm applies no tensor parallelism).
        process_group_backend: ``nccl`` on GPUs, ``gloo`` on CPUs by default.
        timeout: of the collective operations.
    """

    def __init__(
        self,
        save_distributed_checkpoint: bool = False,
        data_parallel_size: Literal["auto"] | int = "auto",
        tensor_parallel_size: int = 1,
        process_group_backend: str | None = None,
        timeout: timedelta | None = default_pg_timeout,
    ) -> None:
        super().__init__(
            data_parallel_size=data_parallel_size,
            tensor_parallel_size=tensor_parallel_size,
            save_distributed_checkpoint=save_distributed_checkpoint,
            process_group_backend=process_group_backend,
            timeout=timeout,
        )

    def setup_environment(self) -> None:
        if self._data_parallel_size == "auto":
            self._data_parallel_size = self.num_nodes * self.num_processes
        super().setup_environment()


def register_strategy() -> None:
    """Make ``--trainer.strategy fsdp2`` name :class:`FSDP2Strategy` (once)."""
    if STRATEGY_NAME not in StrategyRegistry:
        StrategyRegistry.register(
            STRATEGY_NAME,
            FSDP2Strategy,
            description="rsmm: FSDP2 (fully_shard) over every rank, single-file checkpoints",
        )


register_strategy()
