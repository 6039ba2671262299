#!/usr/bin/env python3
"""Generate a tiny fake CIFAR-100 in torchvision's ``cifar-100-python`` layout.

Run from anywhere: ``python tests/data/cifar100/data.py``. It rewrites
``cifar-100-python/`` beside this file: ``train`` and ``test`` (latin-1 pickles of
``{"data": uint8 N x 3072, "fine_labels": [...], "coarse_labels": [...]}``) and ``meta``
(``{"fine_label_names": [...], "coarse_label_names": [...]}``), with the images of the
CIFAR-10 generator (``tests/data/cifar10/data.py``): 4 train, 3 test images.
"""

from __future__ import annotations

import importlib.util
import json
import pickle
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
MANIFEST = HERE.parents[2] / "rsmm" / "data_manifests" / "cifar100.json"


def _cifar10_generator():  # the sibling generator, without making tests/data a package
    spec = importlib.util.spec_from_file_location(
        "cifar10_data", HERE.parent / "cifar10" / "data.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    gen = _cifar10_generator()
    classes = json.loads(MANIFEST.read_text())["classes"]
    folder = HERE / "cifar-100-python"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for name, labels in (("train", gen.LABELS), ("test", gen.LABELS[: gen.TEST])):
        entry = {
            "data": gen.fake_images(labels),
            "fine_labels": labels,
            "coarse_labels": [0] * len(labels),
        }
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f, protocol=2)
    with open(folder / "meta", "wb") as f:
        pickle.dump(
            {"fine_label_names": classes, "coarse_label_names": ["aquatic_mammals"]}, f, protocol=2
        )


if __name__ == "__main__":
    main()
