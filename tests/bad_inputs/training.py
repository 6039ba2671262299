"""Bad configs, options and checkpoints of ``rsmm pretrain|finetune|linear-probe|test``."""

from __future__ import annotations

from pathlib import Path

from bad_inputs.core import Cli, Shared, case

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
PRETRAIN = str(CONFIGS / "synthetic" / "pretrain.yaml")
FINETUNE = str(CONFIGS / "synthetic" / "finetune.yaml")
# a run that goes through would still be short (and then fail the "nothing written" check)
TINY = ["--data.num_samples", "16", "--data.size", "8", "--data.batch_size", "8"]
TINY += ["--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false"]
TINY += ["--trainer.accelerator", "cpu"]


def pretrain(*args: str) -> list[str]:
    return ["pretrain", "--config", PRETRAIN, *TINY, *args]


def finetune(*args: str, command: str = "finetune") -> list[str]:
    return [command, "--config", FINETUNE, *TINY, *args]


# --- config files ---------------------------------------------------------------------


@case("train-missing-config")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(["pretrain", "--config", str(tmp / "pretrain.yaml")], ("pretrain.yaml",))


@case("train-config-is-a-folder")
def _(tmp: Path, shared: Shared) -> Cli:
    (tmp / "configs").mkdir()
    return Cli(["pretrain", "--config", str(tmp / "configs")], ("configs",))


@case("train-config-bad-yaml")
def _(tmp: Path, shared: Shared) -> Cli:
    (tmp / "bad.yaml").write_text("model:\n  backbone: [tiny_cnn\n  loss: ntxent\n")
    return Cli(["pretrain", "--config", str(tmp / "bad.yaml")], ("bad.yaml",))


@case("train-config-tab-indented")
def _(tmp: Path, shared: Shared) -> Cli:
    (tmp / "tabs.yaml").write_text("model:\n\tbackbone: tiny_cnn\n")
    return Cli(["pretrain", "--config", str(tmp / "tabs.yaml")], ("tabs.yaml",))


@case("train-config-a-list")
def _(tmp: Path, shared: Shared) -> Cli:
    (tmp / "list.yaml").write_text("- model\n- data\n")
    return Cli(["pretrain", "--config", str(tmp / "list.yaml")], ("list.yaml",))


@case("train-config-unknown-key")
def _(tmp: Path, shared: Shared) -> Cli:
    (tmp / "c.yaml").write_text(open(PRETRAIN).read() + "optimiser: adam\n")
    return Cli(["pretrain", "--config", str(tmp / "c.yaml"), *TINY], ("optimiser",))


@case("train-config-without-data")
def _(tmp: Path, shared: Shared) -> Cli:
    (tmp / "c.yaml").write_text("model:\n  backbone: tiny_cnn\n")
    return Cli(["pretrain", "--config", str(tmp / "c.yaml")], ("data",))


# --- options --------------------------------------------------------------------------


@case("train-unknown-option")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(pretrain("--model.tempreature", "0.5"), ("tempreature",))


@case("train-option-prefix")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(pretrain("--trainer.max_epoch", "2"), ("max_epoch",))


@case("train-bad-type")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(pretrain("--model.temperature", "warm"), ("temperature",))


@case("train-unknown-accelerator")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(pretrain("--trainer.accelerator", "nosuch"), ("trainer", "nosuch"))


@case("train-unknown-loss")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(pretrain("--model.loss", "ntxnet"), ("ntxnet",))


@case("train-unknown-backbone")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(pretrain("--model.backbone", "resnet9000"), ("resnet9000",))


@case("train-unknown-augment-preset")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(pretrain("--data.augment", "mm_pretrian"), ("mm_pretrian",))


@case("train-unknown-modality")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(pretrain("--data.modalities", "[s1, s3]"), ("s3",))


@case("train-unknown-datamodule")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(pretrain("--data", "rsmm.datamodules.NoSuchDataModule"), ("NoSuchDataModule",))


@case("finetune-unknown-loss")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(finetune("--model.loss", "focall"), ("focall",))


@case("finetune-label-fraction-zero")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(finetune("--data.label_fraction", "0"), ("label_fraction",))


@case("finetune-label-fraction-above-one")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(finetune("--data.label_fraction", "1.5"), ("label_fraction",))


@case("finetune-label-fraction-negative")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(finetune("--data.label_fraction=-0.1"), ("label_fraction",))


@case("finetune-label-fraction-text")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(finetune("--data.label_fraction", "ten percent"), ("label_fraction",))


@case("linear-probe-batch-size-zero")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(finetune("--data.batch_size", "0", command="linear-probe"), ("batch_size",))


# --- data and checkpoints -------------------------------------------------------------


@case("train-missing-data-root")
def _(tmp: Path, shared: Shared) -> Cli:
    config = str(CONFIGS / "stacks" / "pretrain.yaml")
    args = ["--data.init_args.root", str(tmp / "chips.parquet"), "--trainer.accelerator", "cpu"]
    return Cli(["pretrain", "--config", config, *args], ("chips.parquet",))


@case("train-missing-benchmark-root")
def _(tmp: Path, shared: Shared) -> Cli:
    config = str(CONFIGS / "eurosat" / "finetune_ms.yaml")
    args = ["--data.init_args.root", str(tmp / "eurosat"), "--trainer.accelerator", "cpu"]
    args += ["--trainer.precision", "32-true", "--model.pretrained", "null"]
    return Cli(["finetune", "--config", config, *args], ("eurosat",))


@case("train-ckpt-path-missing")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(pretrain("--ckpt_path", str(tmp / "last.ckpt")), ("last.ckpt",))


@case("train-ckpt-path-garbage")
def _(tmp: Path, shared: Shared) -> Cli:
    (tmp / "last.ckpt").write_bytes(b"\x89PNG\r\n" + b"\x00" * 100)
    return Cli(pretrain("--ckpt_path", str(tmp / "last.ckpt")), ("last.ckpt",))


@case("pretrain-resume-from-finetune-checkpoint")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(pretrain("--ckpt_path", str(shared.finetune_ckpt)), (str(shared.finetune_ckpt),))


@case("finetune-resume-from-pretrain-checkpoint")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(finetune("--ckpt_path", str(shared.pretrain_ckpt)), (str(shared.pretrain_ckpt),))


@case("finetune-pretrained-missing")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(finetune("--model.pretrained", str(tmp / "enc.ckpt")), ("enc.ckpt",))


@case("finetune-pretrained-wrong-modalities")
def _(tmp: Path, shared: Shared) -> Cli:
    # the pre-training had s2 and naip; the synthetic data are s1 and s2
    return Cli(finetune("--model.pretrained", str(shared.pretrain_ckpt)), ("s1",))


@case("test-without-ckpt-path")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(finetune(command="test"), ("--ckpt_path",))
