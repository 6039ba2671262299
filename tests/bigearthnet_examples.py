"""The six real BigEarthNet v1 example patches of ``bigearthnet-common``, in the v1 layout.

``bigearthnet-common`` (a test dependency; code licence Apache-2.0) ships
``BigEarthNet-S1-Example.tar.bz2`` and ``BigEarthNet-S2-Example.tar.bz2`` in its wheel:
six real co-registered Sentinel-1 / Sentinel-2 patches with their label JSON files
(BigEarthNet data licence CDLA-Permissive-1.0). :func:`arrange_v1` unpacks them into
the layout :class:`rsmm.datasets.BigEarthNet` reads (the one TorchGeo downloads) and
writes its own split files for these six patches (the wheel's lists name the full
dataset), plus the official seasonal-snow and cloud/shadow lists the wheel also ships.
"""

from __future__ import annotations

import bz2
import json
import tarfile
from importlib import resources
from pathlib import Path

#: ``{split: [S2 patch names]}`` of the arranged root; one train patch is on the
#: official seasonal-snow list.
SPLITS = {
    "train": [
        "S2A_MSIL2A_20170613T101031_87_48",
        "S2A_MSIL2A_20170617T113321_36_85",
        "S2A_MSIL2A_20170617T113321_4_55",
        "S2B_MSIL2A_20180204T94161_57_38",
    ],
    "val": ["S2B_MSIL2A_20170924T93020_69_24"],
    "test": ["S2A_MSIL2A_20171221T112501_56_35"],
}
SNOW = "S2B_MSIL2A_20180204T94161_57_38"
LISTS = {
    "patches_with_seasonal_snow.csv": "patches_with_seasonal_snow.csv.bz2",
    "patches_with_cloud_and_shadow.csv": "patches_with_cloud_and_shadow.csv.bz2",
}


def _package() -> Path:
    return Path(str(resources.files("bigearthnet_common")))


def arrange_v1(root: Path, lists: bool = True) -> Path:
    """Unpack the examples into ``root`` as a BigEarthNet v1 root and return ``root``."""
    pkg = _package()
    root.mkdir(parents=True, exist_ok=True)
    for archive, folder, target in (
        ("BigEarthNet-S2-Example.tar.bz2", "BigEarthNet-S2-Example", "BigEarthNet-v1.0"),
        ("BigEarthNet-S1-Example.tar.bz2", "BigEarthNet-S1-Example", "BigEarthNet-S1-v1.0"),
    ):
        with tarfile.open(pkg / archive) as tar:
            tar.extractall(root, filter="data")
        (root / folder).rename(root / target)
    s1_of = {}
    for d in (root / "BigEarthNet-S1-v1.0").iterdir():
        meta = json.loads((d / f"{d.name}_labels_metadata.json").read_text())
        s1_of[meta["corresponding_s2_patch"]] = d.name
    for split, names in SPLITS.items():
        lines = "".join(f"{s2},{s1_of[s2]}\n" for s2 in names)
        (root / f"bigearthnet-{split}.csv").write_text(lines)
    if lists:
        for name, packaged in LISTS.items():
            (root / name).write_bytes(bz2.decompress((pkg / packaged).read_bytes()))
    return root


def s2_labels(root: Path, s2: str) -> list[str]:
    """The 43-class labels of a patch, from its Sentinel-2 JSON file."""
    path = root / "BigEarthNet-v1.0" / s2 / f"{s2}_labels_metadata.json"
    return list(json.loads(path.read_text())["labels"])
