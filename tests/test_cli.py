"""The rsmm command end to end (tiny settings) and the export format."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from rsmm.cli import main
from rsmm.export import load_encoder, read_checkpoint

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "synthetic"
TINY = [
    "--data.num_samples",
    "48",
    "--data.size",
    "8",
    "--data.batch_size",
    "16",
    "--trainer.max_epochs",
    "1",
    "--trainer.enable_progress_bar",
    "false",
    "--trainer.accelerator",
    "cpu",
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pretrain -> finetune (10 % labels) -> test, in a scratch working directory."""
    root = tmp_path_factory.mktemp("cli")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        assert main(["pretrain", "--config", str(CONFIGS / "pretrain.yaml"), *TINY]) == 0
        pre = root / "runs/pretrain/version_0/checkpoints/last.ckpt"
        assert pre.is_file()
        assert (
            main(
                [
                    "finetune",
                    "--config",
                    str(CONFIGS / "finetune.yaml"),
                    *TINY,
                    "--model.pretrained",
                    str(pre),
                    "--data.label_fraction",
                    "0.1",
                ]
            )
            == 0
        )
        ft = root / "runs/finetune/version_0/checkpoints/last.ckpt"
        assert (
            main(
                ["test", "--config", str(CONFIGS / "finetune.yaml"), *TINY, "--ckpt_path", str(ft)]
            )
            == 0
        )
    return root


def test_runs_write_checkpoints_logs_config_and_metrics(runs: Path) -> None:
    ft = runs / "runs/finetune/version_0"
    assert (ft / "config.yaml").is_file()
    assert (ft / "metrics.csv").is_file()
    assert "test/OA" in (ft / "metrics.csv").read_text()
    assert (ft / "confusion.png").is_file() and (ft / "confusion.csv").is_file()
    assert list(ft.glob("events.out.tfevents.*"))
    hp, _ = read_checkpoint(ft / "checkpoints/last.ckpt")
    assert hp["pretrained"].endswith("pretrain/version_0/checkpoints/last.ckpt")
    assert (runs / "runs/test/version_0/confusion.csv").is_file()


def test_export_then_load_encoder_is_bit_exact(runs: Path, tmp_path: Path) -> None:
    ckpt = runs / "runs/pretrain/version_0/checkpoints/last.ckpt"
    out = tmp_path / "enc"
    assert main(["export", str(ckpt), str(out)]) == 0
    meta = json.loads((out / "rsmm-encoders.json").read_text())
    assert set(meta["modalities"]) == {"s1", "s2"}
    s2 = meta["modalities"]["s2"]
    assert s2["in_chans"] == 13 and s2["bands"][0] == "B01" and len(s2["mean"]) == 13
    assert s2["native_gsd"][:2] == [60.0, 10.0] and s2["gsd"] == 10.0
    assert (out / "MODEL_CARD.md").read_text().startswith("# rsmm encoders")

    from rsmm.tasks import PretrainTask

    task = PretrainTask.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True).eval()
    x = torch.randn(3, 13, 8, 8)
    enc = load_encoder(out, "s2")
    with torch.no_grad():
        assert torch.equal(enc(x), task.encoder.backbones["s2"](x))
    # the export can seed a fine-tuning too
    from rsmm.tasks.finetune import load_pretrained_encoder

    sd = load_pretrained_encoder(out, ["s1"])
    assert all(k.startswith("backbones.s1.") for k in sd)


def test_torchgeo_format_loads_in_torchgeo(runs: Path, tmp_path: Path) -> None:
    from rsmm.compat import torchgeo_task

    ClassificationTask = torchgeo_task("Classification")

    ckpt = runs / "runs/pretrain/version_0/checkpoints/last.ckpt"
    out = tmp_path / "tg"
    assert main(["export", str(ckpt), str(out), "--format", "torchgeo"]) == 0
    file = out / "s2.torchgeo.pth"
    obj = torch.load(file, weights_only=True)
    assert obj["hyper_parameters"]["model"] == "tiny_cnn"
    task = ClassificationTask(model="tiny_cnn", weights=str(file), in_channels=13, num_classes=5)
    ref = load_encoder(out, "s2")
    for name, t in ref.state_dict().items():
        assert torch.equal(task.model.state_dict()[name], t), name


def test_user_errors_one_line_nonzero(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    ckpt = runs / "runs/pretrain/version_0/checkpoints/last.ckpt"
    assert main(["pretrain", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err
    # unknown option: one line naming it, exit 2
    code = main(
        ["pretrain", "--config", str(CONFIGS / "pretrain.yaml"), "--model.no_such_option", "1"]
    )
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--model.no_such_option" in err and "rsmm pretrain --help" in err
    # export directory exists
    (tmp_path / "exists").mkdir()
    assert main(["export", str(ckpt), str(tmp_path / "exists")]) == 2
    assert "exists" in capsys.readouterr().err
    assert not list((tmp_path / "exists").iterdir())
    # corrupt checkpoint: nothing written
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["export", str(bad), str(tmp_path / "out")]) == 2
    assert "cannot read checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    # a checkpoint from a different modality set
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        code = main(
            [
                "finetune",
                "--config",
                str(CONFIGS / "finetune.yaml"),
                *TINY,
                "--data.modalities",
                "[s2, naip]",
                "--model.pretrained",
                str(ckpt),
            ]
        )
    assert code == 2
    assert "different modality set" in capsys.readouterr().err
    assert main(["test", "--config", str(CONFIGS / "finetune.yaml")]) == 2
    assert "--ckpt_path" in capsys.readouterr().err
    assert not list(tmp_path.rglob("version_*"))  # the failed run left no run folder behind


def test_testing_a_finetuned_checkpoint_does_not_need_the_pretraining_file(
    runs: Path, tmp_path: Path
) -> None:
    import shutil

    moved = tmp_path / "pre.ckpt"
    shutil.copy(runs / "runs/pretrain/version_0/checkpoints/last.ckpt", moved)
    finetune = str(CONFIGS / "finetune.yaml")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        assert (
            main(["finetune", "--config", finetune, *TINY, "--model.pretrained", str(moved)]) == 0
        )
        moved.unlink()  # the pre-training file is gone
        ft = tmp_path / "runs/finetune/version_0/checkpoints/last.ckpt"
        args = ["test", "--config", finetune, *TINY, "--ckpt_path", str(ft)]
        args += ["--model.pretrained", str(moved)]  # as the fine-tuning's config says
        assert main(args) == 0
    assert (tmp_path / "runs/test/version_0/metrics.csv").is_file()


def test_rsmm_debug_shows_the_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    args = ["export", str(tmp_path / "none.ckpt"), str(tmp_path / "out")]
    assert main(args) == 2 and "checkpoint not found" in capsys.readouterr().err
    monkeypatch.setenv("RSMM_DEBUG", "1")
    with pytest.raises(ValueError, match="checkpoint not found"):
        main(args)


def test_test_command_errors_are_one_line_and_leave_no_run(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    pre = runs / "runs/pretrain/version_0/checkpoints/last.ckpt"
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    finetune = str(CONFIGS / "finetune.yaml")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        # a corrupt checkpoint
        assert main(["test", "--config", finetune, *TINY, "--ckpt_path", str(bad)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "cannot read checkpoint" in err and "bad.ckpt" in err
        # a checkpoint of another task (pre-training) given to the fine-tuning test
        assert main(["test", "--config", finetune, *TINY, "--ckpt_path", str(pre)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "does not fit this model" in err
        # a corrupt pre-trained checkpoint, found while fitting
        code = main(["finetune", "--config", finetune, *TINY, "--model.pretrained", str(bad)])
        assert code == 2 and "bad.ckpt" in capsys.readouterr().err
    assert not list(tmp_path.rglob("version_*"))
    # help does not need a checkpoint
    with pytest.raises(SystemExit) as exc:
        main(["test", "--help"])
    assert exc.value.code == 0 and "--ckpt_path" in capsys.readouterr().out


def test_saved_config_runs_again_and_the_root_dir_is_honoured(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    saved = runs / "runs/pretrain/version_0/config.yaml"
    text = saved.read_text()
    assert "Unable to serialize" not in text
    root = tmp_path / "elsewhere"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        assert (
            main(["pretrain", "--config", str(saved), "--trainer.default_root_dir", str(root)]) == 0
        )
    run = root / "version_0"
    assert (run / "checkpoints/last.ckpt").is_file() and (run / "metrics.csv").is_file()
    assert list(run.glob("events.out.tfevents.*"))  # CSV and TensorBoard share the folder
    assert not (tmp_path / "runs").exists()


def test_help_and_unknown_command(capsys: pytest.CaptureFixture) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    for cmd in (
        "pretrain",
        "finetune",
        "linear-probe",
        "test",
        "export",
        "manifest",
        "quickstart",
        "benchmark",
    ):
        assert cmd in out
    assert main(["fly"]) == 2


def test_quickstart_fast(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["quickstart", "--fast", "--out", str(tmp_path / "qs")]) == 0
    out = capsys.readouterr().out
    # what the numbers depend on besides the seed is printed above the table
    assert re.search(rf"seed 0, {torch.get_num_threads()} torch threads, torch ", out)
    for init in ("random init", "rsmm pre-trained"):
        for protocol in ("fine-tuned", "linear probe"):
            assert re.search(rf"\| {init} \| {protocol} \| [0-9.]+ \| [0-9.]+ \| -?[0-9.]+ \|", out)
    assert (tmp_path / "qs" / "encoders" / "rsmm-encoders.json").is_file()
    card = (tmp_path / "qs" / "encoders" / "MODEL_CARD.md").read_text()
    assert "## Metrics" in card and "rsmm pre-trained, fine-tuned (10% labels), test OA" in card
    report = tmp_path / "qs" / "report.png"
    assert f"report:     {report}" in out and report.read_bytes()[:4] == b"\x89PNG"


def test_manifest_stats(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = Path(__file__).parent / "data" / "dfc2020"
    out = tmp_path / "dfc.json"
    assert (
        main(["manifest", "stats", "dfc2020", str(root), "--split", "val", "--out", str(out)]) == 0
    )
    man = json.loads(out.read_text())
    stats = man["modalities"]["s2"]["stats"]
    assert set(stats) == set(man["modalities"]["s2"]["bands"])
    from rsmm.datasets import DFC2020

    ds = DFC2020(str(root), split="val")
    x = torch.stack([ds[i]["s2"] for i in range(len(ds))]).double()
    assert stats["B04"][0] == pytest.approx(float(x[:, 3].mean()), rel=1e-9)
