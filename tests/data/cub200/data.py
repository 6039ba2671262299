#!/usr/bin/env python3
"""Generate a tiny fake CUB-200-2011 in the official archive's layout.

Run from anywhere: ``python tests/data/cub200/data.py``. It rewrites ``CUB_200_2011/``
beside this file: ``classes.txt`` (all 200 species of the manifest, ``<id> <NNN>.<name>``),
``images.txt``, ``image_class_labels.txt``, ``train_test_split.txt`` and
``images/<NNN>.<name>/<name>_<n>.jpg``: :data:`IMAGES` lists (class id 1-based, is
train, width, height, mode) per image. Sizes differ and one image is grayscale, as in
the real dataset. Each JPEG is one flat colour (value ``20 * class id``) so that the
resized pixels are known.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
MANIFEST = HERE.parents[2] / "rsmm" / "data_manifests" / "cub200.json"
#: (class id, 1 = train / 0 = test, width, height, PIL mode) per image id 1, 2, ...
IMAGES = [
    (1, 1, 40, 30, "RGB"),
    (2, 1, 24, 36, "RGB"),
    (3, 1, 32, 32, "L"),
    (4, 1, 50, 20, "RGB"),
    (1, 0, 30, 30, "RGB"),
    (4, 0, 28, 44, "RGB"),
]


def main() -> None:
    classes = json.loads(MANIFEST.read_text())["classes"]
    base = HERE / "CUB_200_2011"
    shutil.rmtree(base, ignore_errors=True)
    (base / "images").mkdir(parents=True)
    folders = [f"{i:03d}.{name}" for i, name in enumerate(classes, 1)]
    (base / "classes.txt").write_text("".join(f"{i} {f}\n" for i, f in enumerate(folders, 1)))
    lines: dict[str, list[str]] = {"images": [], "labels": [], "split": []}
    for image_id, (cls, train, w, h, mode) in enumerate(IMAGES, 1):
        folder = folders[cls - 1]
        rel = f"{folder}/{classes[cls - 1]}_{image_id:04d}.jpg"
        (base / "images" / folder).mkdir(exist_ok=True)
        Image.new(mode, (w, h), 20 * cls if mode == "L" else (20 * cls,) * 3).save(
            base / "images" / rel
        )
        lines["images"].append(f"{image_id} {rel}")
        lines["labels"].append(f"{image_id} {cls}")
        lines["split"].append(f"{image_id} {train}")
    for name, key in (
        ("images.txt", "images"),
        ("image_class_labels.txt", "labels"),
        ("train_test_split.txt", "split"),
    ):
        (base / name).write_text("\n".join(lines[key]) + "\n")


if __name__ == "__main__":
    main()
