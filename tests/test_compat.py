"""rsmm.compat: TorchGeo's tasks and augmentations on TorchGeo 0.8.1 and 0.10.x alike."""

from __future__ import annotations

import warnings

import pytest
import torch

from rsmm.compat import (
    TASK_NAMES,
    byol_augmentation,
    simclr_augmentations,
    torchgeo_task,
    torchgeo_version,
)


def test_tasks_by_their_new_names_without_deprecated_aliases() -> None:
    version = torchgeo_version()
    assert version is not None and (0, 8, 1) <= version < (0, 11)
    new = version >= (0, 10)
    for name in TASK_NAMES:
        cls = torchgeo_task(name)
        assert cls.__name__ == (name if new else f"{name}Task")
        assert cls.__module__.startswith("torchgeo.tasks." if new else "torchgeo.trainers.")
    with pytest.raises(ValueError, match="unknown TorchGeo task"):
        torchgeo_task("ClassificationTask")


def test_classification_task_builds_without_deprecation_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        task = torchgeo_task("Classification")(
            model="resnet18", in_channels=4, num_classes=3, loss="ce"
        )
    assert task.model.eval()(torch.zeros(1, 4, 32, 32)).shape == (1, 3)


def test_augmentations_come_from_the_installed_torchgeo() -> None:
    x = torch.rand(2, 13, 40, 40)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kornia's own notices
        assert simclr_augmentations(32, torch.ones(13))(x).shape == (2, 13, 32, 32)
        assert byol_augmentation((32, 32))(x).shape == (2, 13, 32, 32)
