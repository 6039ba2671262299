#!/usr/bin/env python3
"""Generate the fake co-registered stack of tests/data/stacks (run from anywhere).

A 1280 m x 960 m scene near Annapolis, Maryland: S2 (13 bands, two overlapping
multi-band tiles, EPSG:32618, 10 m), S1 (VV/VH files, dB, EPSG:3857, NaN strip on the
left), NAIP (EPSG:26985 at 2 m to keep the files small), an S2 SCL cloud layer and
labels (``labels.gpkg`` layers ``fields`` and ``points``, ``labels.tif``). The scene's
ground truth is :func:`truth` (the same call, no files written twice).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from rsmm.stacks.scene import Scene, generate_scene

HERE = Path(__file__).resolve().parent
SCENE = HERE / "scene"
KWARGS = {"extent_m": (1280.0, 960.0), "seed": 0, "naip_gsd": 2.0}


def generate(root: Path = SCENE, **overrides: object) -> Scene:
    """Write the scene (replacing ``root``) and return its ground truth."""
    if root.exists():
        shutil.rmtree(root)
    return generate_scene(root, **{**KWARGS, **overrides})


if __name__ == "__main__":
    scene = generate()
    total = sum(p.stat().st_size for p in SCENE.rglob("*") if p.is_file())
    print(f"wrote {SCENE} ({total / 1e6:.2f} MB)")
