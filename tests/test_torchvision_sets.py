"""CIFAR-10 / CIFAR-100 / STL-10 (through torchvision) and CUB-200-2011 on tiny fake
copies in the real layouts (``tests/data/<name>/data.py`` writes them)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from rsmm.datamodules.torchvision_sets import (
    CIFAR10DataModule,
    CUB200DataModule,
    STL10DataModule,
)
from rsmm.datasets.cub200 import CUB200
from rsmm.datasets.torchvision_sets import CIFAR10, CIFAR100, STL10
from rsmm.errors import ConfigError, DatasetFileError, DatasetNotFoundError
from rsmm.hyperbolic.hierarchy import LabelTree
from rsmm.manifests import load_manifest

DATA = Path(__file__).resolve().parent / "data"


def test_cifar10_reads_torchvision_pickles_in_order_and_channels() -> None:
    ds = CIFAR10(DATA / "cifar10")
    assert len(ds) == 20  # five batches of four
    assert ds.targets().tolist() == [0, 1, 2, 3] * 5
    s = ds[5]  # second image of data_batch_2: label 1, R = 10 * 1 + 1
    assert s["rgb"].dtype == torch.float32 and s["rgb"].shape == (3, 32, 32)
    assert s["rgb"][:, 7, 9].tolist() == [11.0, 12.0, 13.0]
    assert s["label"].dtype == torch.int64 and int(s["label"]) == 1
    assert s["meta"]["id"] == "train_5"
    test = CIFAR10(DATA / "cifar10", split="test", bands=["B", "R"])
    assert test.targets().tolist() == [0, 1, 2]
    assert test[2]["rgb"][:, 0, 0].tolist() == [24.0, 22.0]  # label 2, n = 2: R 22, B 24
    assert test.classes[1] == "automobile" and test.gsd == {"rgb": None}


def test_cifar100_reads_fine_labels_and_its_superclass_hierarchy() -> None:
    ds = CIFAR100(DATA / "cifar100")
    assert len(ds) == 4 and ds.targets().tolist() == [0, 1, 2, 3]
    assert ds.classes[:3] == ["apple", "aquarium_fish", "baby"]
    tree = LabelTree.from_yaml("cifar100", classes=ds.classes)
    assert tree.group("aquarium_fish") == "fish" and tree.group("baby") == "people"
    assert sum(1 for n in tree.graph.successors(tree.root)) == 20
    d = tree.distance_matrix()
    assert d.shape == (100, 100)
    i, j, k = (ds.classes.index(c) for c in ("maple_tree", "oak_tree", "rocket"))
    assert d[i, j] == 2 and d[i, k] == 4


def test_cifar10_and_cub_hierarchies_cover_their_classes() -> None:
    c10 = LabelTree.from_yaml("cifar10", classes=load_manifest("cifar10").classes)
    assert c10.group("truck") == "vehicle" and c10.group("frog") == "animal"
    cub = load_manifest("cub200").classes
    assert (
        len(cub) == 200 and cub[0] == "Black_footed_Albatross" and cub[-1] == "Common_Yellowthroat"
    )
    tree = LabelTree.from_yaml("cub200", classes=cub)
    assert (
        tree.group("Laysan_Albatross") == "albatross"
        and tree.group("Cape_May_Warbler") == "warbler"
    )
    assert tree.distance_matrix()[0, 1] == 2


def test_stl10_splits_layout_and_unlabelled_images() -> None:
    train = STL10(DATA / "stl10")
    assert len(train) == 3 and train.targets().tolist() == [0, 1, 2]
    x = train[1]["rgb"]
    assert x.shape == (3, 96, 96) and x[:, 5, 5].tolist() == [11.0, 12.0, 13.0]
    assert x[0, 0, 1] == 255 and x[0, 1, 0] == 11  # rows and columns as stored
    assert STL10(DATA / "stl10", split="test").targets().tolist() == [3, 4]
    both = STL10(DATA / "stl10", split="train+unlabeled")
    assert both.targets().tolist() == [0, 1, 2, -1, -1]
    assert int(both[4]["label"]) == -1 and both[4]["rgb"][0, 3, 3] == 201
    with pytest.raises(ConfigError, match="split must be one of"):
        STL10(DATA / "stl10", split="val")


def test_cub200_index_files_sizes_and_grayscale() -> None:
    ds = CUB200(DATA / "cub200", image_size=16)
    assert len(ds) == 4 and ds.targets().tolist() == [0, 1, 2, 3]
    assert ds.ids[0] == "Black_footed_Albatross_0001"
    for i in range(4):
        assert ds[i]["rgb"].shape == (3, 16, 16)
    gray = ds[2]["rgb"]  # an "L" JPEG of value 60 becomes three equal planes
    assert torch.allclose(gray, torch.full_like(gray, 60.0), atol=2)
    test = CUB200(DATA / "cub200", split="test", image_size=8)
    assert test.targets().tolist() == [0, 3] and test[1]["rgb"].mean() == pytest.approx(80, abs=2)


def test_missing_data_is_a_dataset_not_found_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="cifar-10-batches-py"):
        CIFAR10(tmp_path)
    with pytest.raises(DatasetNotFoundError, match="not a directory"):
        CIFAR100(tmp_path / "nowhere")
    shutil.copytree(DATA / "cifar10" / "cifar-10-batches-py", tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetNotFoundError, match="data_batch_3"):
        CIFAR10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "batches.meta").unlink()
    shutil.copy(
        DATA / "cifar10" / "cifar-10-batches-py" / "data_batch_2",
        tmp_path / "cifar-10-batches-py" / "data_batch_3",
    )
    with pytest.raises(DatasetNotFoundError, match=r"batches\.meta"):
        CIFAR10(tmp_path)
    shutil.copytree(DATA / "stl10" / "stl10_binary", tmp_path / "stl10_binary")
    (tmp_path / "stl10_binary" / "unlabeled_X.bin").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"unlabeled_X\.bin"):
        STL10(tmp_path, split="test")
    shutil.copytree(DATA / "cub200" / "CUB_200_2011", tmp_path / "CUB_200_2011")
    (tmp_path / "CUB_200_2011" / "train_test_split.txt").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"train_test_split\.txt"):
        CUB200(tmp_path)


def test_checksums_wrong_classes_and_bad_lines_are_dataset_file_errors(tmp_path: Path) -> None:
    shutil.copytree(DATA / "cifar10" / "cifar-10-batches-py", tmp_path / "cifar-10-batches-py")
    assert len(CIFAR10(tmp_path)) == 20
    with pytest.raises(DatasetFileError, match="MD5"):
        CIFAR10(tmp_path, checksum=True)  # the fake files are not the published ones
    shutil.copy(
        DATA / "cifar100" / "cifar-100-python" / "meta",
        tmp_path / "cifar-10-batches-py" / "batches.meta",
    )
    with pytest.raises((DatasetFileError, DatasetNotFoundError)):
        CIFAR10(tmp_path)  # a meta file without CIFAR-10's key
    cub = tmp_path / "CUB_200_2011"
    shutil.copytree(DATA / "cub200" / "CUB_200_2011", cub)
    (cub / "image_class_labels.txt").write_text("1 1\nx 2\n")
    with pytest.raises(DatasetFileError, match="line 2"):
        CUB200(tmp_path)
    shutil.copy(DATA / "cub200" / "CUB_200_2011" / "image_class_labels.txt", cub)
    lines = (cub / "classes.txt").read_text().splitlines()
    (cub / "classes.txt").write_text(
        "\n".join([lines[1].replace("2 ", "1 "), lines[0].replace("1 ", "2 "), *lines[2:]])
    )
    with pytest.raises(DatasetFileError, match="not the cub200 classes"):
        CUB200(tmp_path)


def test_datamodules_hold_out_validation_and_batch_rgb() -> None:
    dm = CIFAR10DataModule(str(DATA / "cifar10"), batch_size=4, holdout_fraction=0.25)
    dm.setup("fit")
    assert len(dm.datasets["train"]) == 16 and len(dm.datasets["val"]) == 4
    train_idx = set(dm.datasets["train"].indices)
    assert not train_idx & set(dm.datasets["val"].indices)
    assert np.bincount(
        dm.datasets["val"].dataset.targets()[list(dm.datasets["val"].indices)]
    ).tolist() == [1, 1, 1, 1]
    batch = next(iter(dm.train_dataloader()))
    assert batch["rgb"].shape == (4, 3, 32, 32) and dm.num_classes == 10
    assert dm.sensors == {"rgb": "rgb"} and dm.stats["rgb"][0][0] == pytest.approx(0.4914 * 255)
    none = CIFAR10DataModule(str(DATA / "cifar10"), batch_size=4)
    none.setup("fit")
    assert len(none.datasets["train"]) == 20 and none.val_dataloader() == []
    none.setup("test")
    assert len(none.datasets["test"]) == 3
    stl = STL10DataModule(str(DATA / "stl10"), train_split="train+unlabeled", batch_size=2)
    stl.setup("fit")
    assert len(stl.datasets["train"]) == 5
    cub = CUB200DataModule(str(DATA / "cub200"), image_size=24, batch_size=2)
    cub.setup("fit")
    assert next(iter(cub.train_dataloader()))["rgb"].shape == (2, 3, 24, 24)
    with pytest.raises(ConfigError, match="holdout_fraction"):
        CIFAR10DataModule(str(DATA / "cifar10"), holdout_fraction=1.0)
    with pytest.raises(ConfigError, match="train_split"):
        STL10DataModule(str(DATA / "stl10"), train_split="test")


CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FAST = [
    "--trainer.fast_dev_run",
    "true",
    "--trainer.precision",
    "32",
    "--trainer.accelerator",
    "cpu",
    "--trainer.enable_progress_bar",
    "false",
    "--data.init_args.num_workers",
    "0",
]


@pytest.mark.parametrize(
    ("command", "config", "data", "extra"),
    [
        (
            "pretrain",
            "chapter3/pretrain_cifar10_ot_sample.yaml",
            "cifar10",
            ["--data.init_args.batch_size", "4"],
        ),
        (
            "finetune",
            "hyperbolic/finetune_cifar10_horospherical_smart.yaml",
            "cifar10",
            ["--data.init_args.batch_size", "4", "--model.head_dim", "3"],
        ),
        (
            "finetune",
            "hyperbolic/finetune_cub200_busemann_uniform.yaml",
            "cub200",
            [
                "--data.init_args.batch_size",
                "2",
                "--data.init_args.image_size",
                "32",
                "--model.head_dim",
                "2",
            ],
        ),
    ],
    ids=["ot_cifar10", "horospherical_cifar10", "busemann_cub200"],
)
def test_thesis_configs_run_on_the_fake_copies(
    command: str,
    config: str,
    data: str,
    extra: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One step of an OT pre-training and of hyperbolic-head trainings (fast_dev_run)."""
    from rsmm.cli import main

    monkeypatch.chdir(tmp_path)
    args = [command, "--config", str(CONFIGS / config), "--data.init_args.root", str(DATA / data)]
    assert main([*args, *extra, *FAST]) == 0
    assert (tmp_path / f"runs/{command}/checkpoints/last.ckpt").is_file()


def test_sphere_probe_reads_the_table_3_4_pretraining(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Table 3.4's S^2 column: the linear probe on the projector's 3-d output loads the
    projector an SSW-SSL pre-training config writes."""
    from rsmm.cli import main

    monkeypatch.chdir(tmp_path)
    data = ["--data.init_args.root", str(DATA / "cifar10"), "--data.init_args.batch_size", "4"]
    pre = CONFIGS / "chapter3/pretrain_cifar10_s2_ssw_ssl_l3.yaml"
    assert main(["pretrain", "--config", str(pre), *data, *FAST]) == 0
    ckpt = tmp_path / "runs/pretrain/checkpoints/last.ckpt"
    probe = CONFIGS / "chapter3/linear_probe_cifar10_s2_sphere.yaml"
    assert (
        main(
            ["linear-probe", "--config", str(probe), *data, *FAST, "--model.pretrained", str(ckpt)]
        )
        == 0
    )
