"""BigEarthNet's real patches end to end through the CLI: ``rsmm manifest build`` (S1 + S2,
multi-label chips from the per-patch label JSON files) -> ``rsmm pretrain`` -> ``rsmm
linear-probe`` with multi-label metrics.

The six real co-registered Sentinel-1 / Sentinel-2 patches come from the wheel of
``bigearthnet-common`` (a test dependency; code licence Apache-2.0), unpacked by
``tests/bigearthnet_examples.py``; the BigEarthNet data are licensed under
CDLA-Permissive-1.0. Training runs a tiny encoder for a few steps on the CPU.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from bigearthnet_examples import arrange_v1
from rasterio.crs import CRS

from rsmm.cli import main
from rsmm.datasets import CoRegisteredStack
from rsmm.export import read_checkpoint
from rsmm.manifests import load_manifest
from rsmm.stacks import read_manifest

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "stacks"
#: Chips the six 1.2 km patches give at 600 m: each chip lives in its own UTM zone
#: (zones 29, 33 and 35) on its patch's pixel grid, so each patch holds 2 x 2 (one CRS
#: for the whole stack reprojected the patches and kept 9).
EXPECTED_CHIPS = 24
TINY = [
    "--data.init_args.modalities", "[s1, s2]", "--data.init_args.batch_size", "4",
    "--data.init_args.num_workers", "0", "--model.backbone", "tiny_cnn",
    "--trainer.max_steps", "2", "--trainer.max_epochs", "1", "--trainer.precision", "32-true",
    "--trainer.enable_progress_bar", "false", "--trainer.accelerator", "cpu",
]  # fmt: skip


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """The examples unpacked and indexed by ``rsmm manifest build``: (work folder,
    BigEarthNet root, what the build printed)."""
    work = tmp_path_factory.mktemp("ben_stack")
    root = arrange_v1(work / "bigearthnet", lists=False)
    args = [
        "manifest", "build",
        "--s1", str(root / "BigEarthNet-S1-v1.0"), "--s2", str(root / "BigEarthNet-v1.0"),
        "--label-files", "--out", str(work / "chips.parquet"),
    ]  # fmt: skip
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(args) == 0
    return work, root, printed.getvalue()


def test_build_gives_every_chip_its_patch_labels(built: tuple[Path, Path, str]) -> None:
    work, _, printed = built
    m = read_manifest(work / "chips.parquet")
    reported = re.search(r"^(\d+) chips of 600 m", printed, re.M)
    assert reported is not None, printed
    assert int(reported.group(1)) == len(m.chips)
    assert len(m.chips) == EXPECTED_CHIPS
    assert m.meta["multilabel"] is True
    clc43 = load_manifest("bigearthnet").extra["files"]["classes_43"]
    assert m.classes == clc43
    for files, labels, label in zip(m.chips["files_s2"], m.chips["labels"], m.chips["label"]):
        (template,) = json.loads(files)  # each chip lies inside one patch
        folder = Path(template).parent
        stored = json.loads((folder / f"{folder.name}_labels_metadata.json").read_text())
        names = [m.classes[i] for i in json.loads(labels)]
        assert sorted(names) == sorted(stored["labels"]), folder.name
        assert label == min(json.loads(labels))
    assert "chips holding each class" in printed


def test_chip_pixels_are_the_files_pixels(built: tuple[Path, Path, str]) -> None:
    work, _, _ = built
    m = read_manifest(work / "chips.parquet")
    ds = CoRegisteredStack(work / "chips.parquet", modalities=["s2", "s1"])
    b02 = m.meta["modalities"]["s2"]["bands"].index("B02")
    assert len(ds) == EXPECTED_CHIPS
    for i in range(len(ds)):
        row = ds.chips.iloc[i]
        (template,) = json.loads(row["files_s2"])
        chip = ds.read_raw(i)["s2"][0][b02]
        assert chip.shape == (60, 60)
        with rasterio.open(template.replace("{band}", "B02")) as src:
            # the chip is on the patch's own pixel grid, in its CRS: the file's pixels
            assert src.crs == CRS.from_user_input(row["crs"])
            bounds = (row["xmin"], row["ymin"], row["xmax"], row["ymax"])
            win = rasterio.windows.from_bounds(*bounds, src.transform)
            np.testing.assert_array_equal(chip, src.read(1, window=win).astype(np.float32))
        assert ds[i]["label"].dtype.is_floating_point
        assert np.flatnonzero(ds[i]["label"].numpy()).tolist() == json.loads(row["labels"])


def test_pretrain_and_multilabel_linear_probe(
    built: tuple[Path, Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    work, _, _ = built
    monkeypatch.chdir(work)
    data = ["--data.init_args.root", "chips.parquet", *TINY]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        assert main(["pretrain", "--config", str(CONFIGS / "pretrain.yaml"), *data]) == 0
        pre = work / "runs/pretrain/version_0/checkpoints/last.ckpt"
        assert pre.is_file()
        probe = ["--config", str(CONFIGS / "finetune.yaml"), *data, "--model.pretrained", str(pre)]
        assert main(["linear-probe", *probe]) == 0
    run = work / "runs/linear-probe/version_0"
    hp, _ = read_checkpoint(run / "checkpoints/last.ckpt")
    assert hp["multilabel"] is True and hp["freeze_backbone"] is True
    assert hp["num_classes"] == 43
    with (run / "metrics.csv").open() as fh:
        tested = [r for r in csv.DictReader(fh) if r.get("test/mAP_micro")]
    assert tested
    for name in ("mAP_micro", "mAP_macro", "F1_micro", "F1_macro"):
        assert 0 <= float(tested[-1][f"test/{name}"]) <= 1
