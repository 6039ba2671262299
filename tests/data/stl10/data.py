#!/usr/bin/env python3
"""Generate a tiny fake STL-10 in torchvision's ``stl10_binary`` layout.

Run from anywhere: ``python tests/data/stl10/data.py``. It rewrites ``stl10_binary/``
beside this file: ``{train,test,unlabeled}_X.bin`` (raw uint8, N x 3 x 96 x 96 stored
column-major per plane, as the real files: torchvision transposes each plane) and
``{train,test}_y.bin`` (uint8 labels 1..10), plus ``class_names.txt``.

Image ``n`` of a file with label ``k`` (0-based) has R = ``10 * k + n`` everywhere,
G = R + 1, B = R + 2; unlabelled images have R = 200 + n. Pixel (row 0, column 1) of
the R plane is 255, which tells the tests whether rows and columns were swapped.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
TRAIN = [0, 1, 2]
TEST = [3, 4]
UNLABELED = 2


def images(values: list[int]) -> np.ndarray:
    """``N x 3 x 96 x 96`` (rows, columns) uint8 images (see the module docstring)."""
    out = np.zeros((len(values), 3, 96, 96), dtype=np.uint8)
    for n, v in enumerate(values):
        for c in range(3):
            out[n, c] = v + c
        out[n, 0, 0, 1] = 255
    return out


def main() -> None:
    folder = Path(__file__).resolve().parent / "stl10_binary"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for name, labels in (("train", TRAIN), ("test", TEST)):
        x = images([10 * k + n for n, k in enumerate(labels)])
        x.transpose(0, 1, 3, 2).tofile(folder / f"{name}_X.bin")  # stored column-major
        (np.array(labels, dtype=np.uint8) + 1).tofile(folder / f"{name}_y.bin")
    images([200 + n for n in range(UNLABELED)]).transpose(0, 1, 3, 2).tofile(
        folder / "unlabeled_X.bin"
    )
    (folder / "class_names.txt").write_text("\n".join(CLASSES) + "\n")


if __name__ == "__main__":
    main()
