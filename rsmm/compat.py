"""The one place that knows how TorchGeo's API differs between the versions rsmm supports.

rsmm works with TorchGeo 0.8.1 and with 0.10.x. Between them the Lightning tasks moved
from ``torchgeo.trainers`` to ``torchgeo.tasks`` and lost their ``Task`` suffix
(``ClassificationTask`` became ``Classification``, ``SimCLRTask`` ``SimCLR``, ``MoCoTask``
``MoCo``, ``BYOLTask`` ``BYOL``); the old names stay in 0.10 only as deprecated aliases,
and the submodules ``torchgeo.trainers.simclr`` and ``torchgeo.trainers.byol`` are gone.
Everything rsmm (and its tests and benchmarks) takes from those modules goes through
this module, by its new name, so no other file needs to know which TorchGeo is installed.

Two other changes need no shim but are worth knowing: TorchGeo 0.10's datasets verify
MD5 checksums by default (rsmm's adapters always pass ``checksum`` explicitly, default
``False``), and its ``extract_backbone`` loads with ``weights_only=True`` (rsmm's
``--format torchgeo`` export holds only tensors, strings and ints, so it loads there).

Nothing here imports TorchGeo at module import time: this module sits at the bottom of
the package (with :mod:`rsmm.errors`) and TorchGeo is imported on first use.
"""

from __future__ import annotations

import importlib
import importlib.util
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from types import ModuleType
from typing import Any

#: TorchGeo's tasks rsmm uses, by their TorchGeo >= 0.10 names
TASK_NAMES = ("Classification", "SimCLR", "MoCo", "BYOL")


def torchgeo_version() -> tuple[int, ...] | None:
    """TorchGeo's installed version as a tuple of its numeric parts, or ``None``.

    Read from the package metadata, so TorchGeo is not imported.
    """
    try:
        text = version("torchgeo")
    except PackageNotFoundError:
        return None
    parts: list[int] = []
    for piece in text.split("+")[0].split("."):
        digits = "".join(c for c in piece if c.isdigit()) if piece[:1].isdigit() else ""
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


@cache
def tasks_module() -> ModuleType:
    """The package holding TorchGeo's Lightning tasks: ``torchgeo.tasks`` or ``.trainers``."""
    if importlib.util.find_spec("torchgeo.tasks") is not None:
        return importlib.import_module("torchgeo.tasks")
    return importlib.import_module("torchgeo.trainers")


def _tasks_submodule(name: str) -> ModuleType:
    return importlib.import_module(f"{tasks_module().__name__}.{name}")


def torchgeo_task(name: str) -> type:
    """TorchGeo's task class ``name``, given by its new name (one of :data:`TASK_NAMES`).

    Returns ``torchgeo.tasks.<name>`` on TorchGeo >= 0.10 and
    ``torchgeo.trainers.<name>Task`` before, never a deprecated alias.

    Raises:
        ValueError: if ``name`` is not one of :data:`TASK_NAMES` (a programming error).
    """
    if name not in TASK_NAMES:
        raise ValueError(f"unknown TorchGeo task {name!r}; choose from {', '.join(TASK_NAMES)}")
    module = tasks_module()
    if module.__name__ == "torchgeo.tasks":
        return getattr(module, name)
    return getattr(module, f"{name}Task")


def simclr_augmentations(size: int, weights: Any) -> Any:
    """TorchGeo's SimCLR augmentation pipeline (``<tasks>.simclr.simclr_augmentations``).

    Args:
        size: output size of the random resized crop.
        weights: per-band weights of TorchGeo's multispectral random grayscale.
    """
    return _tasks_submodule("simclr").simclr_augmentations(size, weights)


def byol_augmentation(image_size: tuple[int, int]) -> Any:
    """TorchGeo's BYOL augmentation module (``<tasks>.byol.SimCLRAugmentation``)."""
    return _tasks_submodule("byol").SimCLRAugmentation(image_size)
