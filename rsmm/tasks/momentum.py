"""Momentum (EMA) target networks and MoCo's queue of keys, as checkpointed state.

Everything a momentum method carries from one step to the next lives in parameters and
registered buffers, so that a Lightning checkpoint holds it and a resumed run continues
bit-exactly: the target network's weights (parameters without gradients, left out of
the optimiser), and the queue with its write pointer (buffers ``queue`` and
``queue_ptr``; lightly's ``MemoryBankModule`` names its buffers ``bank``/``bank_ptr`` and
updates them inside the loss call, which is why rsmm has its own).

The momentum follows lightly's ``cosine_schedule`` from ``momentum`` to ``momentum_end``
over the run's optimiser steps.
"""

from __future__ import annotations

import copy

import torch
from lightly.models.utils import deactivate_requires_grad, update_momentum
from lightly.utils.scheduler import cosine_schedule
from torch import Tensor, nn

from rsmm.errors import ConfigError


def momentum_at(step: int, total_steps: int, start: float, end: float) -> float:
    """EMA momentum at optimiser step ``step`` of ``total_steps``: lightly's cosine
    schedule from ``start`` (step 0) to ``end`` (last step)."""
    return cosine_schedule(min(step, max(total_steps - 1, 0)), total_steps, start, end)


class MomentumTarget(nn.Module):
    """An exponential-moving-average copy of an online network (MoCo, BYOL).

    The copy starts equal to the online network; its parameters never require
    gradients. After :meth:`update` with momentum ``m`` every parameter is
    ``m * target + (1 - m) * online`` (buffers such as batch-norm statistics are the
    target's own, as in MoCo's and BYOL's reference code).

    Args:
        online: the network to follow.
    """

    def __init__(self, online: nn.Module) -> None:
        super().__init__()
        self.net = copy.deepcopy(online)
        deactivate_requires_grad(self.net)
        self._last_step = -1

    @torch.no_grad()
    def update(self, online: nn.Module, momentum: float) -> None:
        """Move the target towards ``online``: ``target = m target + (1 - m) online``."""
        if not 0.0 <= momentum <= 1.0:
            raise ConfigError(f"momentum must be in [0, 1], got {momentum}")
        update_momentum(online, self.net, momentum)

    def update_once(self, online: nn.Module, momentum: float, step: int) -> bool:
        """:meth:`update` once per optimiser step ``step`` (with gradient accumulation
        ``training_step`` runs several times per step); returns whether it updated."""
        if step == self._last_step:
            return False
        self.update(online, momentum)
        self._last_step = step
        return True


class KeyQueue(nn.Module):
    """A first-in-first-out queue of ``size`` keys of dimension ``dim`` (MoCo's
    dictionary), in the buffers ``queue`` (``size x dim``) and ``queue_ptr`` (the next
    row to overwrite).

    The queue starts with random unit vectors, as in MoCo.

    Args:
        size: number of keys kept (3,072 in the thesis, 65,536 in MoCo).
        dim: key dimension.
    """

    queue: Tensor
    queue_ptr: Tensor

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        if size < 1:
            raise ConfigError(f"queue_size must be >= 1, got {size}")
        if dim < 1:
            raise ConfigError(f"the queue's key dimension must be >= 1, got {dim}")
        self.register_buffer("queue", nn.functional.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    @property
    def size(self) -> int:
        return self.queue.shape[0]

    @torch.no_grad()
    def enqueue(self, keys: Tensor) -> None:
        """Write ``keys`` (``n x dim``) over the oldest entries, wrapping around; when
        ``n > size`` only the last ``size`` keys are kept."""
        if keys.ndim != 2 or keys.shape[1] != self.queue.shape[1]:
            raise ConfigError(
                f"keys must be n x {self.queue.shape[1]}, got shape {tuple(keys.shape)}"
            )
        keys = keys.detach().to(self.queue.dtype)
        n, size = keys.shape[0], self.size
        ptr = int(self.queue_ptr)
        if n >= size:
            # the last `size` keys, placed where a key-by-key write would leave them
            keys, ptr = keys[n - size :], (ptr + n - size) % size
            n = size
        rows = (ptr + torch.arange(n, device=self.queue.device)) % size
        self.queue[rows] = keys
        self.queue_ptr[0] = (ptr + n) % size
