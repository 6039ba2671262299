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
import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rsmm.errors import ConfigError, RsmmError

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
  manifest      `rsmm manifest build` indexes chips of your own S1/S2/NAIP GeoTIFF folders;
                `rsmm manifest stats` recomputes band statistics
  quickstart    the whole workflow on a generated co-registered S1/S2/NAIP GeoTIFF scene
  benchmark     side-by-side performance tables against peers
  grid          a results grid (pre-training x protocols x seeds) -> one mean ± std table

`rsmm <command> --help` explains each command's options. Errors a user can cause are one
line; set RSMM_DEBUG=1 to see the full traceback instead."""

TRAIN_COMMANDS = ("pretrain", "finetune", "linear-probe", "test")
# one line for these; anything else is a bug and shows its traceback
USER_ERRORS: tuple[type[BaseException], ...] = (
    RsmmError,
    argparse.ArgumentError,  # jsonargparse's unknown / invalid option (exit_on_error=False)
    OSError,  # a path the user gave: missing, a directory, not writable, disk full
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
    """The LightningCLI of a training command, instantiated but not run.

    Runs go to ``trainer.default_root_dir`` (default ``runs/<command>``), one
    ``version_N`` folder each with CSV and TensorBoard logs, checkpoints and the resolved
    ``config.yaml``. The loggers are made after parsing (so an overridden root is
    honoured) and are left out of the saved config, which therefore runs again as it is
    (``rsmm <command> --config <run>/config.yaml``) into a new version folder.
    """
    import warnings

    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.cli import LightningCLI
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    from rsmm.datamodules.base import MultiModalDataModule

    class RunCLI(LightningCLI):
        def instantiate_trainer(self, **kwargs: Any) -> Any:
            trainer = self._get(self.config_init, "trainer", default={})
            if trainer.get("logger") is None:  # not chosen by the user
                root = trainer.get("default_root_dir") or default_root
                csv = CSVLogger(root, name="")
                kwargs["logger"] = [csv, TensorBoardLogger(root, name="", version=csv.version)]
            return super().instantiate_trainer(**kwargs)

    # rsmm parses its own argv and hands the rest over, which is what args= is for
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
    task = _task_class(command)
    default_root = run_dir or f"runs/{command}"
    trainer_defaults = {
        "default_root_dir": default_root,
        "callbacks": [ModelCheckpoint(save_last=True)],
    }
    return RunCLI(
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


def _check_checkpoint(path: str) -> None:
    """A readable rsmm checkpoint, or one line naming the file."""
    from rsmm.export import read_checkpoint

    if not Path(path).is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    read_checkpoint(path)  # ExportError (a ValueError) naming the file when unreadable


def _is_state_dict_mismatch(err: BaseException) -> bool:
    return isinstance(err, RuntimeError) and "Error(s) in loading state_dict" in str(err)


def _discard_failed_run(log_dir: str | None, existed: bool) -> None:
    """Remove the run folder a failed command created, unless it holds a checkpoint."""
    import shutil

    if log_dir is None or existed or not Path(log_dir).is_dir():
        return
    if not any(Path(log_dir).rglob("*.ckpt")):
        shutil.rmtree(log_dir, ignore_errors=True)


def _run_trainer(command: str, trainer: Any, model: Any, dm: Any, ckpt: str | None) -> None:
    """Fit (then test, when fine-tuning on data with a test split) or test."""
    if command == "test":
        trainer.test(model, datamodule=dm, ckpt_path=ckpt, weights_only=True)
        return
    trainer.fit(model, datamodule=dm, ckpt_path=ckpt, weights_only=True)
    if command != "pretrain" and dm.has_test_split():
        trainer.test(
            model,
            datamodule=dm,
            ckpt_path="last" if trainer.checkpoint_callback else None,
            weights_only=True,
        )


def run_training(command: str, args: list[str]) -> dict[str, float]:
    """Run one of the training commands; returns the final logged metrics."""
    args = list(args)
    ckpt = _pop_option(args, "--ckpt_path")
    _check_configs(args)
    asks_help = any(a in ("-h", "--help") for a in args)
    if command == "linear-probe":
        args += ["--model.freeze_backbone", "true"]
    if command == "test" and ckpt is None and not asks_help:
        raise ConfigError("rsmm test needs --ckpt_path <checkpoint>")
    if ckpt is not None:
        _check_checkpoint(ckpt)
    from rsmm.tasks.finetune import weights_from_checkpoint

    # with a checkpoint every weight comes from it: tasks built while parsing or in
    # setup() do not read their pre-training file
    restore = weights_from_checkpoint() if ckpt is not None else contextlib.nullcontext()
    with restore:
        cli = build_cli(command, args)
        trainer, model, dm = cli.trainer, cli.model, cli.datamodule
        log_dir = trainer.log_dir
        existed = log_dir is not None and Path(log_dir).exists()
        try:
            _run_trainer(command, trainer, model, dm, ckpt)
        except USER_ERRORS:
            _discard_failed_run(log_dir, existed)
            raise
        except RuntimeError as err:
            if not _is_state_dict_mismatch(err):
                raise  # a crash, not a user error: keep its logs for debugging
            _discard_failed_run(log_dir, existed)
            detail = " ".join(str(err).split())
            raise ConfigError(
                f"checkpoint {ckpt} does not fit this model (another task, backbone or "
                f"modality set?): {detail[:300]}"
            ) from None
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


def _add_build_parser(sub: Any) -> None:
    b = sub.add_parser(
        "build",
        help="chip index (GeoParquet) of your own co-registered S1/S2/NAIP GeoTIFF folders",
        description="Index chips over the overlap of your modality folders (any CRS, "
        "resolution and tiling), with labels, spatial splits and train band statistics. "
        "Example: rsmm manifest build --s1 s1/ --s2 s2/ --naip naip/ --chip-size 600m "
        "--labels fields.gpkg --label-column crop --out chips.parquet --map chips.png",
    )
    b.add_argument("--spec", help="stack YAML (see rsmm.stacks.spec); flags override it")
    for m, what in (("s1", "Sentinel-1"), ("s2", "Sentinel-2"), ("naip", "NAIP")):
        b.add_argument(f"--{m}", metavar="DIR", help=f"folder of {what} GeoTIFFs")
        b.add_argument(
            f"--{m}-bands",
            metavar="B1,B2",
            help=f"{what} band names in file order, - for a band not to read "
            "(e.g. --s1-bands VV,VH,- for a VV, VH, angle export; write "
            "--s1-bands=-,VV,VH when the list starts with -)",
        )
    b.add_argument(
        "--optional",
        action="append",
        metavar="MODALITY",
        help="a modality that need not cover every chip (e.g. naip; repeatable or comma "
        "separated): chips cover the other modalities' overlap, and a 'modalities' column "
        "says which cover each chip",
    )
    b.add_argument("--s1-units", choices=("db", "linear"), help="Sentinel-1 values (default db)")
    b.add_argument("--naip-gsd", type=float, help="NAIP target GSD in m (default: the files')")
    b.add_argument(
        "--chip-size",
        help="chip side: 600m, or 60px of Sentinel-2 (default 600m); a whole number of "
        "pixels of every modality",
    )
    b.add_argument("--stride", help="distance between chips (default: the chip size)")
    b.add_argument("--crs", help="common CRS, e.g. EPSG:32631 (default: the S2 files' CRS)")
    b.add_argument("--max-days", type=float, help="S1/S2 acquisitions at most N days apart")
    b.add_argument(
        "--labels", metavar="FILE", help="points/polygons (GeoPackage, GeoJSON, Shapefile)"
    )
    b.add_argument("--label-column", help="class column of --labels")
    b.add_argument("--label-layer", help="layer of a multi-layer --labels file")
    b.add_argument("--label-raster", metavar="FILE", help="GeoTIFF of class ids")
    b.add_argument("--classes", help="class names in id order, comma separated")
    b.add_argument("--split", help="train,val,test fractions (default 0.7,0.15,0.15)")
    b.add_argument("--block-size", help="side of the spatial split blocks (default 4 chips)")
    b.add_argument("--seed", type=int, help="seed of the block split (default 0)")
    b.add_argument("--max-nodata", type=float, help="drop chips missing more (default 0.1)")
    b.add_argument("--cloud-layer", metavar="DIR", help="folder of S2 SCL / QA60 / mask GeoTIFFs")
    b.add_argument("--cloud-kind", choices=("scl", "qa60", "mask"), help="default scl")
    b.add_argument("--max-cloud", type=float, help="drop chips more cloudy than this")
    b.add_argument("--out", required=True, help="output chip index (.parquet)")
    b.add_argument("--map", help="also write a PNG map of the chips coloured by split")
    b.add_argument("--overwrite", action="store_true", help="replace existing --out / --map")


def _spec_from_args(a: argparse.Namespace) -> Any:
    from dataclasses import replace

    from rsmm.stacks.spec import (
        CloudSpec,
        LabelSpec,
        ModalitySpec,
        StackSpec,
        check_optional,
        load_spec,
        parse_fractions,
        parse_length,
    )

    spec = load_spec(a.spec) if a.spec else None
    mods = dict(spec.modalities) if spec else {}
    for m in ("s1", "s2", "naip"):
        bands = getattr(a, f"{m}_bands")
        kw: dict[str, Any] = {}
        if bands:
            kw["bands"] = tuple(x.strip() for x in bands.split(","))
        if m == "s1" and a.s1_units:
            kw["units"] = a.s1_units
        if m == "naip" and a.naip_gsd:
            kw["gsd"] = a.naip_gsd
        if getattr(a, m):
            mods[m] = ModalitySpec(key=m, root=getattr(a, m), **kw)
        elif m in mods and kw:
            mods[m] = replace(mods[m], **kw)
    if not mods:
        raise ConfigError("give the modality folders (--s1/--s2/--naip) or --spec stack.yaml")
    for m in check_optional(a.optional or (), mods, "--optional"):
        mods[m] = replace(mods[m], required=False)
    fields: dict[str, Any] = {"modalities": mods}
    if a.chip_size:
        fields["chip_size"] = parse_length(a.chip_size, "--chip-size")
    if a.stride:
        fields["stride"] = parse_length(a.stride, "--stride")
    if a.block_size:
        fields["block_size"] = parse_length(a.block_size, "--block-size")
    if a.split:
        fields["split"] = parse_fractions(a.split)
    for name in ("crs", "max_days", "seed", "max_nodata", "max_cloud"):
        if getattr(a, name) is not None:
            fields[name] = getattr(a, name)
    classes = tuple(c.strip() for c in a.classes.split(",")) if a.classes else None
    if a.labels and a.label_raster:
        raise ConfigError("give either --labels or --label-raster, not both")
    if a.labels:
        fields["labels"] = LabelSpec(a.labels, a.label_column, a.label_layer, classes)
    elif a.label_raster:
        fields["labels"] = LabelSpec(a.label_raster, classes=classes)
    if a.cloud_layer:
        fields["cloud"] = CloudSpec(a.cloud_layer, a.cloud_kind or "scl")
    return replace(spec, **fields) if spec is not None else StackSpec(**fields)


def _cmd_manifest_build(a: argparse.Namespace) -> int:
    from rsmm.stacks import build_manifest, write_manifest
    from rsmm.stacks.manifest import check_output_path, render_figure

    outputs = {"--out": a.out, "--map": a.map}
    for option, path in outputs.items():
        if path is None:
            continue
        check_output_path(path, option)
        if Path(path).exists() and not a.overwrite:
            raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    spec = _spec_from_args(a)
    manifest = build_manifest(spec)
    # both outputs are rendered before either is moved into place
    figure = None
    if a.map:
        figure = render_figure(manifest.plot_map(manifest.extra.get("footprints")), a.map)
    try:
        write_manifest(manifest, a.out)
        if figure is not None:
            os.replace(figure, a.map)
    finally:
        if figure is not None:
            figure.unlink(missing_ok=True)
    print(manifest.summary())
    print(f"wrote {a.out}")
    if figure is not None:
        print(f"wrote {a.map}")
    return 0


def _cmd_manifest(argv: Sequence[str]) -> int:
    import json

    p = argparse.ArgumentParser(prog="rsmm manifest", description="Dataset manifests.")
    sub = p.add_subparsers(dest="action", required=True)
    s = sub.add_parser("stats", help="recompute per-band mean/std of a dataset from its root")
    s.add_argument("dataset", choices=sorted(DATASETS))
    s.add_argument("root", help="dataset root directory")
    s.add_argument("--split", default="train")
    s.add_argument("--max-samples", type=int, default=None, help="use at most this many samples")
    s.add_argument("--out", help="write an updated manifest JSON here (default: print the stats)")
    _add_build_parser(sub)
    a = p.parse_args(argv)
    if a.action == "build":
        return _cmd_manifest_build(a)

    import rsmm.datasets as ds
    from rsmm.manifests import compute_band_stats, load_manifest

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
    p.add_argument("name", choices=("augment", "step", "loss", "sinkhorn", "loaders", "stacks"))
    p.add_argument("rest", nargs=argparse.REMAINDER)
    a = p.parse_args(argv)
    script = Path(__file__).resolve().parents[1] / "benchmarks" / f"{a.name}.py"
    if not script.is_file():
        raise FileNotFoundError(
            f"benchmark script not found: {script} (benchmarks ship with the source tree)"
        )
    # as ``python benchmarks/<name>.py`` would: the script's folder first on sys.path
    if str(script.parent) not in sys.path:
        sys.path.insert(0, str(script.parent))
    spec = importlib.util.spec_from_file_location(f"rsmm_bench_{a.name}", script)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    module.main(a.rest)
    return 0


def _cmd_grid(argv: Sequence[str]) -> int:
    from rsmm.grid import main as grid

    return grid(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rsmm`` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {
        "export": _cmd_export,
        "manifest": _cmd_manifest,
        "quickstart": _cmd_quickstart,
        "benchmark": _cmd_benchmark,
        "grid": _cmd_grid,
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
        if os.environ.get("RSMM_DEBUG"):  # the full traceback, for bug reports
            raise
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        hint = f" (see `rsmm {command} --help`)" if isinstance(err, argparse.ArgumentError) else ""
        line = " ".join(str(msg).split())  # jsonargparse's messages span lines
        print(f"rsmm: error: {line}{hint}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
