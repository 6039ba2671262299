"""Exact resume: the random state of a run goes into each checkpoint and comes back.

A run draws random numbers from torch's global generator (the device-side augmentation
of :class:`~rsmm.augment.BandAugment`, the model), from Python's and NumPy's global
generators, from CUDA's, and from generators held by modules (a loss seeded with its
own ``torch.Generator``). :class:`RandomStateCheckpoint` writes the state of all of
them into every checkpoint, as tensors and numbers (Lightning reads checkpoints with
``weights_only=True``), and puts it back when a run resumes from one, at
``on_train_start``: after the loaders and their saved positions are restored, before the
first batch is augmented (the augmentation runs in ``on_after_batch_transfer``, before
``on_train_batch_start``).

The training loader's position and shuffling generator are in the loader's
``state_dict`` (:class:`rsmm.datamodules.base.ResumableDataLoader`), which Lightning
saves in the checkpoint. Lightning 2.6 loads it only when it builds the training loader
after the checkpoint is read; a task that asks for ``trainer.estimated_stepping_batches``
(to size a learning-rate schedule) makes Lightning build the loader before, and the saved
position is then silently dropped (the resumed run starts its epoch over, from the first
epoch's permutation). :class:`RandomStateCheckpoint` loads a position left pending that
way at ``on_train_start`` and restarts the loader's iterator from it. The weights,
optimiser, schedulers, momentum encoders and queues are in the task's state. Together, a run killed after a checkpoint and resumed from it ends with the
same tensors as the uninterrupted run on the CPU (``tests/test_resume.py``); on a GPU,
kernels that are not deterministic can still make them differ.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

#: The checkpoint key of the saved random state.
RANDOM_STATE_KEY = "rsmm_random_state"


def _module_generators(module: torch.nn.Module) -> dict[str, torch.Generator]:
    """``{"<module path>.<attribute>": generator}`` for the generators held by the
    submodules of ``module`` (e.g. a seeded sliced-Wasserstein loss)."""
    found = {}
    for name, sub in module.named_modules():
        for attr, value in vars(sub).items():
            if isinstance(value, torch.Generator):
                found[f"{name}.{attr}" if name else attr] = value
    return found


def random_state(generators: dict[str, torch.Generator] | None = None) -> dict[str, Any]:
    """The state of the global generators (torch CPU and CUDA, Python, NumPy) and of
    ``generators``, as tensors, numbers and dicts (loadable with ``weights_only=True``)."""
    version, mt, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # noqa: NPY002
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": {
            "version": version,
            "state": torch.tensor(mt, dtype=torch.int64),
            "gauss": gauss,
        },
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "generators": {k: g.get_state() for k, g in (generators or {}).items()},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_random_state(
    state: dict[str, Any], generators: dict[str, torch.Generator] | None = None
) -> None:
    """Put back a state saved by :func:`random_state` (into ``generators`` too, by name).

    Raises:
        ValueError: ``state`` names a generator that ``generators`` lacks.
    """
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (
            "MT19937",
            npy["keys"].numpy().astype(np.uint32),
            npy["pos"],
            npy["has_gauss"],
            npy["cached_gaussian"],
        )
    )
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    generators = generators or {}
    missing = sorted(set(state["generators"]) - set(generators))
    if missing:
        raise ValueError(f"the saved random state has generators {missing} this model lacks")
    for name, saved in state["generators"].items():
        generators[name].set_state(saved)


def _load_pending_loader_state(trainer: Trainer) -> None:
    """Load the saved training-loader position that Lightning left pending, and restart
    the loader's iterator from it (see the module's docstring).

    Uses two private members of Lightning 2.6's fit loop; when they are absent (another
    Lightning), nothing is done and the test of exact resume tells.
    """
    loop = trainer.fit_loop
    pending = getattr(loop, "_combined_loader_states_to_load", None)
    fetcher = getattr(loop, "_data_fetcher", None)
    loader = getattr(loop, "_combined_loader", None)
    if not pending or fetcher is None or loader is None:
        return
    # not loop._load_combined_loader_states(): it does nothing when the checkpoint was
    # written at the end of an epoch (the loop is then not "restarting")
    loader._load_state_dicts(pending)
    loop._combined_loader_states_to_load = []
    iter(fetcher)  # a new iterator, from the loaded position (as setup_data makes it)
    if at_last_batch(trainer):
        # saved at the end of an epoch: the loaded iterator has no batch left, and
        # Lightning does not start the next epoch's iterator on a resume; this one
        # starts from the loaded shuffling generator, as the next epoch would have
        iter(fetcher)


def at_last_batch(trainer: Trainer) -> bool:
    """Whether the training batch that just ended is the last of its epoch."""
    return bool(trainer.fit_loop.epoch_loop.batch_progress.is_last_batch)


class StepCheckpoint(ModelCheckpoint):
    """``last.ckpt`` every ``every_n_train_steps`` training steps, except after the last
    batch of an epoch.

    A checkpoint written between the last training batch of an epoch and the epoch's
    validation does not resume exactly with Lightning 2.6 and a resumable loader (the
    resumed run repeats the epoch's permutation); the checkpoint written at the end of
    the epoch, after validation, does. Writes no ``epoch=E-step=S.ckpt`` files.

    Args:
        every_n_train_steps: training steps between checkpoints.
        **kwargs: passed to ``ModelCheckpoint`` (default ``save_last=True``,
            ``save_top_k=0``).
    """

    def __init__(self, every_n_train_steps: int, **kwargs: Any) -> None:
        kwargs = {"save_last": True, "save_top_k": 0} | kwargs
        super().__init__(every_n_train_steps=every_n_train_steps, **kwargs)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not at_last_batch(trainer):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)


class RandomStateCheckpoint(Callback):
    """Saves the random state with every checkpoint and restores it on a resume (and
    the training loader's position, when Lightning left it unloaded).

    The state saved is the one at the moment of saving; a run resumed from the
    checkpoint gets it back at ``on_train_start``, so the batches after the checkpoint
    are augmented and trained on with the same random numbers as in the uninterrupted
    run. A checkpoint without a saved state (written before rsmm saved one) resumes
    with the seeded state of the new run, as before.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def on_save_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[RANDOM_STATE_KEY] = random_state(_module_generators(pl_module))

    def on_load_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self._pending = checkpoint.get(RANDOM_STATE_KEY)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        _load_pending_loader_state(trainer)
        if self._pending is not None:
            set_random_state(self._pending, _module_generators(pl_module))
            self._pending = None
