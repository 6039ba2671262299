"""The export format: training vs native GSD, the model card's method and metrics, the
run configuration, and overwriting only previous exports, safely."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from lightning.pytorch.loggers import CSVLogger

from rsmm.datasets import SyntheticMultiModal
from rsmm.export import META_FILE, ExportError, export_encoders, training_gsd
from rsmm.sensors import get_sensor
from rsmm.tasks import FinetuneTask, PretrainTask

S2 = ["B02", "B03", "B04", "B08", "B05"]


def save(task: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"hyper_parameters": dict(task.hparams), "state_dict": task.state_dict()}, path)
    return path


def info(**extra: Any) -> dict[str, Any]:
    return {
        "dataset": "MeterML",
        "bands": {"s2": S2, "naip": ["R", "G", "B", "NIR"]},
        "sensors": {"s2": "s2", "naip": "naip"},
        "classes": ["a", "b"],
        **extra,
    }


def pretrain(path: Path, data_info: dict[str, Any]) -> Path:
    task = PretrainTask(
        in_channels={"s2": 5, "naip": 4}, backbone="tiny_cnn", data_info=data_info, temperature=0.2
    )
    return save(task, path)


def test_gsd_is_the_training_gsd_and_native_gsd_is_kept(tmp_path: Path) -> None:
    ckpt = pretrain(tmp_path / "a.ckpt", info(gsd={"s2": 10.0, "naip": 2.0}))
    meta = json.loads((export_encoders(ckpt, tmp_path / "e") / META_FILE).read_text())
    s2, naip = meta["modalities"]["s2"], meta["modalities"]["naip"]
    assert (s2["gsd"], naip["gsd"]) == (10.0, 2.0)
    assert s2["native_gsd"] == [10.0, 10.0, 10.0, 10.0, 20.0]
    assert naip["native_gsd"] == [get_sensor("naip").band(b).gsd for b in "R G B NIR".split()]
    assert (
        "| s2 | tiny_cnn | B02, B03, B04, B08, B05 | 10 m |"
        in (tmp_path / "e" / "MODEL_CARD.md").read_text()
    )


def test_gsd_of_older_checkpoints_from_the_dataset_or_null(tmp_path: Path) -> None:
    # Meter-ML upsamples every S2 band to its 10 m grid; NAIP is 1 m
    meta = json.loads(
        (
            export_encoders(pretrain(tmp_path / "m.ckpt", info()), tmp_path / "m") / META_FILE
        ).read_text()
    )
    assert [meta["modalities"][m]["gsd"] for m in ("s2", "naip")] == [10.0, 1.0]
    # a dataset rsmm cannot tell the pixel size of: null, not a guess
    unknown = pretrain(tmp_path / "u.ckpt", info(dataset="SomeoneElsesDataset"))
    meta = json.loads((export_encoders(unknown, tmp_path / "u") / META_FILE).read_text())
    assert [meta["modalities"][m]["gsd"] for m in ("s2", "naip")] == [None, None]
    assert "| unknown |" in (tmp_path / "u" / "MODEL_CARD.md").read_text()


def test_training_gsd_of_datasets(tmp_path: Path) -> None:
    ds = SyntheticMultiModal(modalities=("s1", "s2", "naip"), num_samples=1, size=8, naip_scale=4)
    x = ds[0]
    gsd = training_gsd(ds)
    # synthetic chips cover 8 px x 10 m; NAIP covers the same ground in more pixels
    assert gsd == {m: 80.0 / x[m].shape[-1] for m in ("s1", "s2", "naip")}
    assert gsd["naip"] == 2.5


def test_training_gsd_of_a_stack_is_chip_metres_over_pixels(tmp_path: Path) -> None:
    from rsmm.datasets import CoRegisteredStack
    from rsmm.stacks.build import build_manifest
    from rsmm.stacks.scene import generate_scene
    from rsmm.stacks.spec import spec_from_dirs

    generate_scene(tmp_path, extent_m=(480.0, 480.0), seed=0, naip_gsd=2.0)
    dirs = {m: tmp_path / m for m in ("s1", "s2", "naip")}
    chips = build_manifest(spec_from_dirs(dirs, chip_size="160m", split=(1.0, 0.0, 0.0)))
    ds = CoRegisteredStack(chips, split=None)
    x = ds[0]
    assert training_gsd(ds) == {m: 160.0 / x[m].shape[-1] for m in dirs}
    assert training_gsd(ds)["naip"] == 2.0  # the stack's target GSD, not NAIP's native 1 m


def run_folder(tmp_path: Path, task: Any) -> Path:
    """A Lightning run folder: version_0/{checkpoints/last.ckpt, metrics.csv, config.yaml}."""
    logger = CSVLogger(tmp_path / "runs", name="")
    logger.log_metrics({"val/OA": 0.5, "val/loss": 2.0, "train/loss": 3.0}, step=0)
    logger.log_metrics({"val/OA": 0.75, "train/loss": 1.0}, step=1)
    logger.log_metrics({"test/OA": 0.625, "test/kappa": 0.25}, step=2)
    logger.save()
    run = Path(logger.log_dir)
    (run / "config.yaml").write_text(
        "seed_everything: 0\nmodel:\n  loss: ce\ndata:\n  init_args: {root: data/x}\n"
    )
    return save(task, run / "checkpoints" / "last.ckpt")


def test_model_card_method_metrics_and_run_config(tmp_path: Path) -> None:
    task = FinetuneTask(
        in_channels={"s2": 5},
        backbone="tiny_cnn",
        num_classes=2,
        freeze_backbone=True,
        data_info=info(),
    )
    ckpt = run_folder(tmp_path, task)
    out = export_encoders(ckpt, tmp_path / "e")
    meta = json.loads((out / META_FILE).read_text())
    card = (out / "MODEL_CARD.md").read_text()
    assert meta["task"] == "FinetuneTask"
    assert "- Method: linear probe (FinetuneTask), loss `ce`, from random init" in card
    # the last logged value of every val/test column, test first; no train columns
    assert meta["metrics"] == {
        "test/OA": 0.625,
        "test/kappa": 0.25,
        "val/OA": 0.75,
        "val/loss": 2.0,
    }
    assert "- test/OA: 0.6250" in card and "- val/OA: 0.7500" in card and "train/loss" not in card
    run_cfg = yaml.safe_load((ckpt.parents[1] / "config.yaml").read_text())
    assert meta["run_config"] == run_cfg and meta["config"]["freeze_backbone"] is True
    # explicit metrics win
    meta2 = export_encoders(ckpt, tmp_path / "e2", metrics={"OA": 0.9}) / "MODEL_CARD.md"
    assert "- OA: 0.9000" in meta2.read_text() and "test/OA" not in meta2.read_text()


def test_only_a_lightning_run_folder_feeds_the_card(tmp_path: Path) -> None:
    task = FinetuneTask(in_channels={"s2": 5}, backbone="tiny_cnn", num_classes=2, data_info=info())
    ckpt = run_folder(tmp_path, task)
    # files merely beside a checkpoint elsewhere are not taken for its run's
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "metrics.csv").write_text("test/OA\n0.99\n")
    (loose / "config.yaml").write_text("unrelated: true\n")
    lone = loose / "model.ckpt"
    lone.write_bytes(ckpt.read_bytes())
    meta = json.loads((export_encoders(lone, tmp_path / "e1") / META_FILE).read_text())
    assert not meta["metrics"] and meta["run_config"] is None
    # a run config that is not valid YAML is left out with a warning, the export goes on
    (ckpt.parents[1] / "config.yaml").write_text("model: [unclosed\n")
    with pytest.warns(UserWarning, match="not valid YAML"):
        out = export_encoders(ckpt, tmp_path / "e2")
    meta = json.loads((out / META_FILE).read_text())
    assert meta["run_config"] is None and meta["metrics"]["test/OA"] == 0.625


def test_model_card_method_of_a_pretraining(tmp_path: Path) -> None:
    out = export_encoders(pretrain(tmp_path / "p.ckpt", info()), tmp_path / "e")
    card = (out / "MODEL_CARD.md").read_text()
    assert (
        "- Method: multimodal pre-training (PretrainTask), loss `ntxent`, temperature 0.2" in card
    )
    meta = json.loads((out / META_FILE).read_text())
    assert meta["task"] == "PretrainTask" and meta["run_config"] is None
    assert meta["metrics"] is None and "## Metrics" not in card


def test_overwrite_replaces_only_previous_exports(tmp_path: Path) -> None:
    ckpt = pretrain(tmp_path / "p.ckpt", info())
    mine = tmp_path / "my_data"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(ExportError, match=r"my_data.*not a previous rsmm export"):
        export_encoders(ckpt, mine, overwrite=True)
    assert (mine / "thesis.tex").read_text() == "years of work"
    file = tmp_path / "a_file"
    file.write_text("x")
    with pytest.raises(ExportError, match="a_file"):
        export_encoders(ckpt, file, overwrite=True)
    # a previous export is replaced, and nothing is left beside it
    out = export_encoders(ckpt, tmp_path / "enc", modalities=["s2"])
    (out / "stale.txt").write_text("from the old export")
    export_encoders(ckpt, out, overwrite=True)
    assert set(json.loads((out / META_FILE).read_text())["modalities"]) == {"s2", "naip"}
    assert not (out / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "enc", "my_data", "p.ckpt"]


def test_failed_swap_keeps_the_previous_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ckpt = pretrain(tmp_path / "p.ckpt", info())
    out = export_encoders(ckpt, tmp_path / "enc", modalities=["s2"])
    before = (out / META_FILE).read_text()
    real_rename = Path.rename

    def rename(self: Path, target: Any) -> Path:
        if self.name.startswith(".enc.") and ".old-" not in self.name:
            raise OSError("disk full")  # moving the new export in fails
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(OSError, match="disk full"):
        export_encoders(ckpt, out, overwrite=True)
    assert (out / META_FILE).read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enc", "p.ckpt"]
