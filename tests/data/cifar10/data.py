#!/usr/bin/env python3
"""Generate a tiny fake CIFAR-10 in torchvision's ``cifar-10-batches-py`` layout.

Run from anywhere: ``python tests/data/cifar10/data.py``. It rewrites
``cifar-10-batches-py/`` beside this file: ``data_batch_1`` .. ``data_batch_5`` and
``test_batch`` (latin-1 pickles of ``{"data": uint8 N x 3072, "labels": [...]}``, the
3072 values channel-major R, G, B planes of 32 x 32) and ``batches.meta``
(``{"label_names": [...]}``), as the real archive holds them.

Each training batch holds :data:`PER_BATCH` images, the test batch :data:`TEST`;
image ``n`` of a file has label ``LABELS[n]`` and every pixel of its R plane equals
``10 * label + n`` (G = R + 1, B = R + 2), so the tests can check order and channels.
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
LABELS = [0, 1, 2, 3]
PER_BATCH = len(LABELS)
TEST = 3


def fake_images(labels: list[int]) -> np.ndarray:
    """``N x 3072`` uint8 rows of flat images (see the module docstring)."""
    rows = []
    for n, label in enumerate(labels):
        r = 10 * label + n
        rows.append(np.concatenate([np.full(1024, r + c, dtype=np.uint8) for c in range(3)]))
    return np.stack(rows)


def write_pickle(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_cifar(
    folder: Path,
    train_files: list[str],
    test_file: str,
    meta: tuple[str, str, list[str]],
    label_key: str,
) -> None:
    """Write one CIFAR folder: training files, a test file, the meta file."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name in train_files:
        write_pickle(folder / name, {"data": fake_images(LABELS), label_key: LABELS})
    write_pickle(folder / test_file, {"data": fake_images(LABELS[:TEST]), label_key: LABELS[:TEST]})
    meta_file, meta_key, names = meta
    write_pickle(folder / meta_file, {meta_key: names})


def main() -> None:
    here = Path(__file__).resolve().parent
    batches = [f"data_batch_{i}" for i in range(1, 6)]
    write_cifar(
        here / "cifar-10-batches-py",
        batches,
        "test_batch",
        ("batches.meta", "label_names", CLASSES),
        "labels",
    )


if __name__ == "__main__":
    main()
