"""The ``rsmm`` command.

``rsmm pretrain|finetune|linear-probe|test --config X.yaml [--data.label_fraction 0.1 ...]``
build a LightningCLI (jsonargparse) for the right task without running it, then call
the Trainer themselves; ``rsmm export`` writes encoder weights; ``rsmm manifest stats``
recomputes band statistics; ``rsmm quickstart`` runs the whole workflow on generated
data; ``rsmm benchmark`` prints the side-by-side benchmarks.

Errors a user can cause (missing file, bad option value, wrong checkpoint) print one
line ``rsmm: error: ...`` and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DESCRIPTION = """\
rsmm: multimodal pre-training for co-registered remote-sensing imagery.

Pre-train one encoder per modality (Sentinel-1 SAR, Sentinel-2 multispectral, NAIP
aerial) with multimodal contrastive losses, fine-tune on a labelled fraction, and
export the encoders.

commands:
  pretrain      multimodal self-supervised pre-training (PretrainTask)
  finetune      fine-tune encoders + a head on labels (FinetuneTask)
  linear-probe  train only a linear head on frozen encoders
  test          evaluate a checkpoint on the test split (metrics, confusion matrix)
  export        encoders of a checkpoint -> <modality>.safetensors + rsmm-encoders.json
  manifest      dataset manifests: `rsmm manifest stats` recomputes band statistics
  quickstart    the whole workflow on a generated co-registered S1/S2 scene
  benchmark     side-by-side performance tables against peers

`rsmm <command> --help` explains each command's options."""

TRAIN_COMMANDS = ("pretrain", "finetune", "linear-probe", "test")
USER_ERRORS: tuple[type[BaseException], ...] = (
    argparse.ArgumentError,  # jsonargparse's unknown / invalid option (exit_on_error=False)
    FileNotFoundError,
    NotADirectoryError,
    ValueError,
    KeyError,
    IsADirectoryError,
    PermissionError,
)


def _task_class(command: str) -> type:
    from rsmm.tasks import FinetuneTask, PretrainTask

    return PretrainTask if command == "pretrain" else FinetuneTask


def _pop_option(args: list[str], name: str) -> str | None:
    """Remove ``--name value`` / ``--name=value`` from ``args`` and return the value."""
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            value = args[i + 1]
            del args[i : i + 2]
            return value
        if a.startswith(name + "="):
            del args[i]
            return a.split("=", 1)[1]
    return None


def _check_configs(args: Sequence[str]) -> None:
    for i, a in enumerate(args):
        path = (
            args[i + 1]
            if a == "--config" and i + 1 < len(args)
            else (a.split("=", 1)[1] if a.startswith("--config=") else None)
        )
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"config file not found: {path}")


def build_cli(command: str, args: list[str], run_dir: str | None = None) -> Any:
    """The LightningCLI of a training command, instantiated but not run."""
    import warnings

    from lightning.pytorch.cli import LightningCLI

    from rsmm.datamodules.base import MultiModalDataModule

    # rsmm parses its own argv and hands the rest over, which is what args= is for
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
    task = _task_class(command)
    root = run_dir or f"runs/{command}"
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    csv = CSVLogger(root, name="")
    trainer_defaults = {
        "default_root_dir": root,
        "logger": [csv, TensorBoardLogger(root, name="", version=csv.version)],
        "callbacks": [ModelCheckpoint(save_last=True)],
    }
    return LightningCLI(
        model_class=task,
        datamodule_class=MultiModalDataModule,
        subclass_mode_data=True,
        run=False,
        args=args,
        seed_everything_default=0,
        trainer_defaults=trainer_defaults,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={
            "prog": f"rsmm {command}",
            "description": _help(command),
            # raise instead of printing the whole usage block: main() prints one line
            "exit_on_error": False,
        },
    )


def _help(command: str) -> str:
    return {
        "pretrain": "Multimodal contrastive pre-training. Give a config with `model:` (PretrainTask: "
        "backbone per modality, loss ntxent|supcon, temperature) and `data:` (a datamodule "
        "class_path such as rsmm.datamodules.MeterMLDataModule with root, modalities, views=2 "
        "and an augmentation preset). Checkpoints and logs go to trainer.default_root_dir.",
        "finetune": "Fine-tune on labels. `model.pretrained` names a pre-training checkpoint or "
        "export directory; `data.label_fraction` takes a stratified, seeded fraction of the "
        "labelled training split (e.g. 0.01, 0.1); `model.modalities` any subset of the "
        "pre-trained modalities; `model.alpha` mixes SupCon with the classification loss.",
        "linear-probe": "Like finetune with frozen encoders (model.freeze_backbone=true).",
        "test": "Evaluate `--ckpt_path` on the test split: OA, AA, kappa, per-class accuracy, "
        "confusion matrix (PNG + CSV in the run directory).",
    }[command]


def run_training(command: str, args: list[str]) -> dict[str, float]:
    """Run one of the training commands; returns the final logged metrics."""
    args = list(args)
    ckpt = _pop_option(args, "--ckpt_path")
    _check_configs(args)
    if command == "linear-probe":
        args += ["--model.freeze_backbone", "true"]
    if command == "test" and ckpt is None:
        raise ValueError("rsmm test needs --ckpt_path <checkpoint>")
    if ckpt is not None and not Path(ckpt).is_file():
        raise FileNotFoundError(f"checkpoint not found: {ckpt}")
    cli = build_cli(command, args)
    trainer, model, dm = cli.trainer, cli.model, cli.datamodule
    if command == "test":
        trainer.test(model, datamodule=dm, ckpt_path=ckpt, weights_only=True)
    else:
        trainer.fit(model, datamodule=dm, ckpt_path=ckpt, weights_only=True)
        if command != "pretrain" and dm.test_split is not None:
            trainer.test(
                model,
                datamodule=dm,
                ckpt_path="last" if trainer.checkpoint_callback else None,
                weights_only=True,
            )
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    print(f"run directory: {trainer.log_dir}")
    if trainer.checkpoint_callback is not None and trainer.checkpoint_callback.last_model_path:
        print(f"checkpoint: {trainer.checkpoint_callback.last_model_path}")
    return metrics


def _cmd_export(argv: Sequence[str]) -> int:
    from rsmm.export import export_encoders

    p = argparse.ArgumentParser(
        prog="rsmm export",
        description="Write the encoders of a checkpoint as <modality>.safetensors plus "
        "rsmm-encoders.json (architecture, bands, per-band mean/std, GSD) and a model card. "
        "Load them with rsmm.export.load_encoder(dir, modality).",
    )
    p.add_argument("checkpoint", help="an rsmm pretrain/finetune .ckpt")
    p.add_argument("out_dir", help="export directory (must not exist unless --overwrite)")
    p.add_argument("--modalities", nargs="+", help="encoders to export (default: all)")
    p.add_argument(
        "--format",
        choices=("safetensors", "torchgeo"),
        default="safetensors",
        help="torchgeo also writes <modality>.torchgeo.pth for torchgeo's ClassificationTask",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing export directory")
    a = p.parse_args(argv)
    out = export_encoders(a.checkpoint, a.out_dir, a.modalities, a.format, a.overwrite)
    print(f"exported encoders to {out}")
    return 0


DATASETS = {
    "meterml": "MeterML",
    "dfc2020": "DFC2020",
    "sen12ms": "SEN12MS",
    "eurosat": "EuroSAT",
    "resisc45": "RESISC45",
}


def _cmd_manifest(argv: Sequence[str]) -> int:
    import json

    import rsmm.datasets as ds
    from rsmm.manifests import compute_band_stats, load_manifest

    p = argparse.ArgumentParser(prog="rsmm manifest", description="Dataset manifests.")
    sub = p.add_subparsers(dest="action", required=True)
    s = sub.add_parser("stats", help="recompute per-band mean/std of a dataset from its root")
    s.add_argument("dataset", choices=sorted(DATASETS))
    s.add_argument("root", help="dataset root directory")
    s.add_argument("--split", default="train")
    s.add_argument("--max-samples", type=int, default=None, help="use at most this many samples")
    s.add_argument("--out", help="write an updated manifest JSON here (default: print the stats)")
    a = p.parse_args(argv)
    cls = getattr(ds, DATASETS[a.dataset])
    dataset = cls(a.root, split=a.split)
    n = len(dataset) if a.max_samples is None else min(a.max_samples, len(dataset))
    stats = compute_band_stats((dataset[i] for i in range(n)), dataset.bands)
    if a.out:
        man = load_manifest(a.dataset).to_dict()
        for m, bs in stats.items():
            man["modalities"][m]["stats"] = {b: list(v) for b, v in bs.items()}
            man["modalities"][m]["stats_source"] = (
                f"rsmm manifest stats on {n} samples of split {a.split!r} of {a.root}"
            )
        Path(a.out).write_text(json.dumps(man, indent=2))
        print(f"wrote {a.out}")
    else:
        print(
            json.dumps(
                {m: {b: list(v) for b, v in bs.items()} for m, bs in stats.items()}, indent=2
            )
        )
    return 0


def _cmd_quickstart(argv: Sequence[str]) -> int:
    from rsmm.quickstart import main as quickstart

    return quickstart(argv)


def _cmd_benchmark(argv: Sequence[str]) -> int:
    import importlib.util

    p = argparse.ArgumentParser(
        prog="rsmm benchmark", description="Side-by-side benchmarks (ratios against peers)."
    )
    p.add_argument("name", choices=("augment", "step", "loss", "sinkhorn", "loaders"))
    p.add_argument("rest", nargs=argparse.REMAINDER)
    a = p.parse_args(argv)
    script = Path(__file__).resolve().parents[1] / "benchmarks" / f"{a.name}.py"
    if not script.is_file():
        raise FileNotFoundError(
            f"benchmark script not found: {script} (benchmarks ship with the source tree)"
        )
    spec = importlib.util.spec_from_file_location(f"rsmm_bench_{a.name}", script)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    module.main(a.rest)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rsmm`` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {
        "export": _cmd_export,
        "manifest": _cmd_manifest,
        "quickstart": _cmd_quickstart,
        "benchmark": _cmd_benchmark,
    }
    if not argv or argv[0] in ("-h", "--help"):
        print(DESCRIPTION)
        return 0
    if argv[0] in ("-V", "--version"):
        import rsmm

        print(f"rsmm {rsmm.__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    try:
        if command in TRAIN_COMMANDS:
            run_training(command, rest)
            return 0
        if command in commands:
            return commands[command](rest)
        print(f"rsmm: error: unknown command {command!r}; see `rsmm --help`", file=sys.stderr)
        return 2
    except USER_ERRORS as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        hint = f" (see `rsmm {command} --help`)" if isinstance(err, argparse.ArgumentError) else ""
        line = " ".join(str(msg).split())  # jsonargparse's messages span lines
        print(f"rsmm: error: {line}{hint}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
