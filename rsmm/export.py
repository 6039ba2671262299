"""Export pre-trained encoders for use anywhere (timm, TorchGeo), and load them back.

An export directory holds, per modality, ``<modality>.safetensors`` (the timm backbone's
state dict, no classifier) and one ``rsmm-encoders.json``: architecture, ``in_chans``,
band names in order, per-band mean/std, the GSD the encoder was trained at (``gsd``)
and the sensor's native GSD per band (``native_gsd``), embedding size, rsmm version,
the task's hyper-parameters (``config``) and the run's resolved ``config.yaml``
(``run_config``); plus a short ``MODEL_CARD.md``. With ``format="torchgeo"`` it also
writes ``<modality>.torchgeo.pth``, a weights-only file that
``torchgeo.trainers.ClassificationTask(model=<arch>, weights=<file>, in_channels=<C>)``
loads through torchgeo's ``extract_backbone``.

Exports are written to a temporary directory beside the target and renamed into
place, so a failure never leaves a half-written export; ``overwrite`` only ever
replaces a previous export.
"""

from __future__ import annotations

import inspect
import json
import math
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import nn

import rsmm
from rsmm.errors import ExportError
from rsmm.models.backbones import build_backbone, encoder_from_weights
from rsmm.models.multimodal import per_modality
from rsmm.models.timm_folder import write_timm_folder
from rsmm.sensors import get_sensor

META_FILE = "rsmm-encoders.json"

#: Pixel size (m) of the arrays the benchmark datasets give the encoders, by manifest
#: name: every band is resampled to one grid (see each manifest's description; Meter-ML's
#: 20/60 m Sentinel-2 bands are upsampled to its 72 x 72 10 m grid). RESISC-45 mixes
#: 0.2-30 m images, so its GSD is unknown (None).
DATASET_GSD: dict[str, dict[str, float | None]] = {
    "meterml": {"s1": 10.0, "s2": 10.0, "naip": 1.0},
    "sen12ms": {"s1": 10.0, "s2": 10.0},
    "dfc2020": {"s1": 10.0, "s2": 10.0},
    "eurosat": {"s2": 10.0},
    "resisc45": {"rgb": None},
}


def _load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        ckpt["hyper_parameters"] = dict(ckpt["hyper_parameters"])
        if not isinstance(ckpt.get("state_dict"), Mapping):
            raise KeyError("state_dict")
    except Exception as err:
        raise ExportError(
            f"cannot read checkpoint {path} (corrupt or not an rsmm checkpoint): {err}"
        ) from err
    if not ckpt["hyper_parameters"].get("in_channels"):
        raise ExportError(f"{path} is not an rsmm task checkpoint (no in_channels)")
    return ckpt


def read_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(hyper_parameters, state_dict)`` of an rsmm Lightning checkpoint (weights only)."""
    ckpt = _load_checkpoint(path)
    return ckpt["hyper_parameters"], ckpt["state_dict"]


# -- what the encoders were trained on ---------------------------------------------------


def _gsd_for(
    manifest_name: str | None,
    modalities: Sequence[str],
    chip_meta: Mapping[str, Any] | None = None,
    naip_scale: float | None = None,
) -> dict[str, float | None]:
    if chip_meta is not None:  # a co-registered stack: chip metres / chip pixels
        size_m = float(chip_meta["chip_size_m"])
        mods = chip_meta["modalities"]
        return {m: size_m / int(mods[m]["chip_pixels"]) for m in modalities}
    if manifest_name == "synthetic":  # S1/S2 pixels are 10 m, NAIP naip_scale times finer
        scale = float(naip_scale) if naip_scale else None
        return {m: 10.0 if m != "naip" else (10.0 / scale if scale else None) for m in modalities}
    table = DATASET_GSD.get(manifest_name or "", {})
    return {m: table.get(m) for m in modalities}


def training_gsd(dataset: Any) -> dict[str, float | None]:
    """Pixel size in metres of each modality's arrays as a dataset gives them.

    This is the GSD an encoder trained on the dataset expects, which can differ from the
    sensor's native GSD (resampled bands, a stack's target GSD). ``None`` where it is
    not known (e.g. RESISC-45's mixed resolutions).

    Args:
        dataset: an rsmm :class:`~rsmm.datasets.base.MultiModalDataset`.
    """
    chips = getattr(dataset, "chip_manifest", None)
    return _gsd_for(
        getattr(dataset, "manifest_name", None),
        list(dataset.modalities),
        chips.meta if chips is not None else None,
        getattr(dataset, "naip_scale", None),
    )


def _recorded_gsd(
    info: Mapping[str, Any], datamodule_hp: Mapping[str, Any], modalities: Sequence[str]
) -> dict[str, float | None]:
    """Training GSD from a checkpoint: recorded in ``data_info`` by current rsmm, else
    derived from the dataset class for checkpoints written before it was recorded."""
    if "gsd" in info:
        recorded = dict(info["gsd"] or {})
        return {m: recorded.get(m) for m in modalities}
    import rsmm.datasets

    cls = getattr(rsmm.datasets, str(info.get("dataset")), None)
    name = getattr(cls, "manifest_name", None) if isinstance(cls, type) else None
    return _gsd_for(name, modalities, naip_scale=datamodule_hp.get("naip_scale"))


def _native_gsd(sensor: str, bands: Sequence[str] | None) -> list[float | None] | None:
    if not bands:
        return None
    try:
        s = get_sensor(sensor)
        return [s.band(b).gsd for b in bands]
    except KeyError:
        return None


def task_class_name(hp: Mapping[str, Any]) -> str | None:
    """The rsmm task class whose ``__init__`` arguments are a checkpoint's hyper-parameters."""
    from rsmm.tasks import FinetuneTask, PretrainTask

    if hp.get("_class_path"):
        return str(hp["_class_path"]).rsplit(".", 1)[-1]
    keys = {k for k in hp if not k.startswith("_")}
    fits = [
        cls.__name__
        for cls in (PretrainTask, FinetuneTask)
        if keys <= set(inspect.signature(cls.__init__).parameters)
    ]
    return fits[0] if len(fits) == 1 else None


def method_description(hp: Mapping[str, Any], task: str | None) -> str:
    """One line naming the training method of a checkpoint (task, protocol, loss)."""
    loss = hp.get("loss", "?")
    if task == "PretrainTask":
        text = f"multimodal pre-training (PretrainTask), loss `{loss}`"
        if "temperature" in hp:
            text += f", temperature {hp['temperature']}"
        return text
    if task == "FinetuneTask":
        protocol = "linear probe" if hp.get("freeze_backbone") else "fine-tuning"
        text = f"{protocol} (FinetuneTask), loss `{loss}`"
        if hp.get("alpha"):
            text += f" mixed with multimodal SupCon (alpha {hp['alpha']})"
        start = f"from `{hp['pretrained']}`" if hp.get("pretrained") else "from random init"
        return f"{text}, {start}"
    return f"unknown rsmm task, loss `{loss}`"


# -- the run folder of a checkpoint --------------------------------------------------------


def run_directory(checkpoint: str | Path) -> Path | None:
    """The run folder of a checkpoint in Lightning's ``<run>/version_N/checkpoints/x.ckpt``
    layout when it holds ``metrics.csv`` or ``config.yaml``; ``None`` for a checkpoint
    anywhere else (files that merely sit beside it are not taken for its run's)."""
    ckpt = Path(checkpoint).resolve()
    if ckpt.parent.name != "checkpoints" or not ckpt.parent.parent.name.startswith("version_"):
        return None
    run = ckpt.parent.parent
    if (run / "metrics.csv").is_file() or (run / "config.yaml").is_file():
        return run
    return None


def last_logged_metrics(path: str | Path) -> dict[str, float]:
    """Last logged finite value of every ``test/*`` then ``val/*`` column of a CSVLogger
    file."""
    from rsmm.report import last_logged

    last = {k: v for k, v in last_logged(path, ("val/", "test/")).items() if math.isfinite(v)}
    return {k: last[k] for k in sorted(last, key=lambda k: (not k.startswith("test/"), k))}


def _read_run_config(run: Path | None) -> Any:
    path = None if run is None else run / "config.yaml"
    if path is None or not path.is_file():
        return None
    try:
        return _jsonable(yaml.safe_load(path.read_text()))
    except yaml.YAMLError as err:  # the weights are still worth exporting
        warnings.warn(
            f"run configuration {path} not recorded: it is not valid YAML ({err})", stacklevel=2
        )
        return None


def _jsonable(obj: Any) -> Any:
    try:
        json.dumps(obj)
        return obj
    except TypeError:
        if isinstance(obj, dict):
            return {str(k): _jsonable(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [_jsonable(v) for v in obj]
        return repr(obj)


# -- export ---------------------------------------------------------------------------------


def _check_target(out_dir: Path, overwrite: bool) -> None:
    if not out_dir.exists() and not out_dir.is_symlink():
        return
    if not overwrite:
        raise ExportError(f"export directory {out_dir} exists; pass overwrite=True (--overwrite)")
    if out_dir.is_symlink() or not out_dir.is_dir() or not (out_dir / META_FILE).is_file():
        raise ExportError(
            f"{out_dir} exists and is not a previous rsmm export (no {META_FILE}); "
            "overwrite only replaces exports: remove it yourself or choose another directory"
        )


def _swap_in(tmp: Path, out_dir: Path) -> None:
    """Rename ``tmp`` to ``out_dir``; a previous export is moved aside first, put back
    if the rename fails, and deleted once the new export is in place."""
    if not out_dir.exists():
        tmp.rename(out_dir)
        return
    old = out_dir.parent / f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}"
    out_dir.rename(old)
    try:
        tmp.rename(out_dir)
    except BaseException:
        old.rename(out_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)


def export_encoders(
    checkpoint: str | Path,
    out_dir: str | Path,
    modalities: Sequence[str] | None = None,
    format: str = "safetensors",
    overwrite: bool = False,
    metrics: dict[str, float] | None = None,
) -> Path:
    """Write the encoders of an rsmm checkpoint to ``out_dir``.

    Args:
        checkpoint: a ``.ckpt`` of :class:`~rsmm.tasks.PretrainTask` or
            :class:`~rsmm.tasks.FinetuneTask`.
        out_dir: the export directory (must not exist unless ``overwrite``).
        modalities: encoders to export (default: all).
        format: ``"safetensors"`` or ``"torchgeo"`` (both files).
        overwrite: replace ``out_dir`` if it is a previous export (holds
            ``rsmm-encoders.json``); any other existing path is an error.
        metrics: metrics for the model card (default: the last ``val/*`` and
            ``test/*`` values of the run's ``metrics.csv`` when there is one).

    Returns:
        The export directory.
    """
    if format not in ("safetensors", "torchgeo"):
        raise ExportError(f"format: unknown {format!r}; use safetensors or torchgeo")
    out_dir = Path(out_dir)
    _check_target(out_dir, overwrite)
    ckpt = _load_checkpoint(checkpoint)
    hp, sd = ckpt["hyper_parameters"], ckpt["state_dict"]
    in_ch: dict[str, int] = dict(hp["in_channels"])
    mods = list(modalities or in_ch)
    unknown = [m for m in mods if m not in in_ch]
    if unknown:
        raise ExportError(
            f"checkpoint {checkpoint} has no encoder for {unknown} (has {list(in_ch)})"
        )
    info = hp.get("data_info") or {}
    archs = per_modality(hp.get("backbone", "resnet18"), list(in_ch), "backbone")
    gsd = _recorded_gsd(info, dict(ckpt.get("datamodule_hyper_parameters") or {}), mods)
    run = run_directory(checkpoint)
    if metrics is None and run is not None and (run / "metrics.csv").is_file():
        metrics = last_logged_metrics(run / "metrics.csv") or None
    task = task_class_name(hp)
    meta: dict[str, Any] = {
        "rsmm_version": rsmm.__version__,
        "task": task,
        "method": method_description(hp, task),
        "checkpoint": str(checkpoint),
        "dataset": info.get("dataset"),
        "classes": info.get("classes"),
        "metrics": metrics,
        "modalities": {},
        "config": _jsonable(hp),
        "run_config": _read_run_config(run),
    }
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for m in mods:
            prefix = f"encoder.backbones.{m}."
            tensors = {
                k[len(prefix) :]: v.contiguous() for k, v in sd.items() if k.startswith(prefix)
            }
            arch = archs[m]
            net = build_backbone(arch, in_ch[m], **dict(hp.get("backbone_kwargs") or {}))
            net.load_state_dict(tensors, strict=True)
            save_file(
                tensors,
                str(tmp / f"{m}.safetensors"),
                metadata={"architecture": arch, "modality": m},
            )
            bands = info.get("bands", {}).get(m)
            sensor = info.get("sensors", {}).get(m, m)
            meta["modalities"][m] = {
                "file": f"{m}.safetensors",
                "architecture": arch,
                "backbone_kwargs": dict(hp.get("backbone_kwargs") or {}),
                "in_chans": in_ch[m],
                "sensor": sensor,
                "bands": bands,
                "units": info.get("units", {}).get(m),
                "mean": info.get("mean", {}).get(m),
                "std": info.get("std", {}).get(m),
                "gsd": gsd[m],
                "native_gsd": _native_gsd(sensor, bands),
                "embedding_size": int(net.num_features),
            }
            meta["modalities"][m]["timm_folder"] = write_timm_folder(
                tmp / m, tensors, meta["modalities"][m], m, rsmm_version=rsmm.__version__
            ).name
            if format == "torchgeo":
                torch.save(
                    {
                        "hyper_parameters": {"model": arch, "in_channels": in_ch[m]},
                        "state_dict": {f"model.{k}": v for k, v in tensors.items()},
                    },
                    tmp / f"{m}.torchgeo.pth",
                )
                meta["modalities"][m]["torchgeo_file"] = f"{m}.torchgeo.pth"
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
        (tmp / "MODEL_CARD.md").write_text(model_card(meta, metrics))
        _swap_in(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _fmt_gsd(value: float | None) -> str:
    return "unknown" if value is None else f"{value:g} m"


def model_card(meta: dict[str, Any], metrics: dict[str, float] | None = None) -> str:
    """A short Markdown model card: data, bands, method, metrics, how to load."""
    lines = [
        "# rsmm encoders",
        "",
        f"Exported by rsmm {meta['rsmm_version']} from `{meta['checkpoint']}`.",
        "",
        f"- Data: {meta.get('dataset') or 'unknown'}"
        + (f" ({len(meta['classes'])} classes)" if meta.get("classes") else ""),
        f"- Method: {meta.get('method') or 'unknown'}",
        "",
        "| modality | architecture | bands | GSD | embedding | file |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for m, e in meta["modalities"].items():
        bands = ", ".join(e["bands"]) if e.get("bands") else f"{e['in_chans']} bands"
        lines.append(
            f"| {m} | {e['architecture']} | {bands} | {_fmt_gsd(e.get('gsd'))} | "
            f"{e['embedding_size']} | `{e['file']}` |"
        )
    if metrics:
        lines += ["", "## Metrics", ""] + [f"- {k}: {v:.4f}" for k, v in metrics.items()]
    lines += [
        "",
        "## Loading",
        "",
        "```python",
        "from rsmm.export import load_encoder",
        f"encoder = load_encoder('<this directory>', '{next(iter(meta['modalities']))}')",
        "```",
        "",
        "Inputs must be normalised per band with the `mean` / `std` of `rsmm-encoders.json`,",
        "in its band order, at the `gsd` it records (the pixel size the encoder was trained at).",
    ]
    return "\n".join(lines) + "\n"


# -- reading an export ------------------------------------------------------------------------


def read_export(
    out_dir: str | Path, modalities: Sequence[str] | None = None
) -> tuple[dict[str, Any], dict[str, dict[str, torch.Tensor]]]:
    """``(metadata, {modality: state_dict})`` of an export directory."""
    out_dir = Path(out_dir)
    meta_path = out_dir / META_FILE
    if not meta_path.is_file():
        raise ExportError(f"{out_dir} is not an rsmm export directory (no {META_FILE})")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as err:
        raise ExportError(f"corrupt {meta_path}: {err}") from err
    mods = list(modalities or meta["modalities"])
    missing = [m for m in mods if m not in meta["modalities"]]
    if missing:
        raise ExportError(
            f"export {out_dir} has no encoder for {missing} (has {list(meta['modalities'])}): "
            "it was pre-trained on a different modality set"
        )
    tensors = {}
    for m in mods:
        path = out_dir / meta["modalities"][m]["file"]
        try:
            tensors[m] = load_file(str(path))
        except Exception as err:
            raise ExportError(f"cannot read {path}: {err}") from err
    return meta, tensors


def check_bands(
    source: str | Path, modality: str, trained: Sequence[str] | None, wanted: Sequence[str] | None
) -> None:
    """Raise when an encoder trained on bands ``trained`` would read bands ``wanted``.

    Either list unknown (``None``) passes: there is nothing to compare.

    Raises:
        ExportError: naming ``source`` and both band lists (a different order of the same
            bands included: the first convolution's weights follow the band order).
    """
    if not trained or not wanted or list(trained) == list(wanted):
        return
    how = "the same bands in another order" if sorted(trained) == sorted(wanted) else "other bands"
    raise ExportError(
        f"{source}: the {modality} encoder was trained on bands {list(trained)} but this "
        f"model reads {list(wanted)} ({how}); select the bands in the encoder's order"
    )


def load_encoder(
    out_dir: str | Path, modality: str, bands: Sequence[str] | None = None
) -> nn.Module:
    """Rebuild a plain timm backbone from an export directory (no unpickling).

    The module returns pooled features; ``forward_features`` gives feature maps.

    Args:
        out_dir: an export directory.
        modality: the encoder to load.
        bands: the band names the caller will feed, in order; checked against the
            export's (``None`` skips the check).

    Raises:
        ExportError: for a missing or corrupt export, a band list that differs from the
            export's, or weights that do not fit the recorded architecture.
    """
    if Path(out_dir).is_file() or "_Weights." in str(out_dir):  # TorchGeo's weights
        return encoder_from_weights(out_dir, bands)
    meta, tensors = read_export(out_dir, [modality])
    e = meta["modalities"][modality]
    check_bands(out_dir, modality, e.get("bands"), bands)
    net = build_backbone(
        e["architecture"], int(e["in_chans"]), **dict(e.get("backbone_kwargs") or {})
    )
    try:
        net.load_state_dict(tensors[modality], strict=True)
    except RuntimeError as err:
        raise ExportError(
            f"{Path(out_dir) / e['file']} does not fit a {e['architecture']!r} backbone with "
            f"{e['in_chans']} bands: {' '.join(str(err).split())[:300]}"
        ) from err
    return net.eval()
