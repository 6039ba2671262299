"""Writing an export: the encoders of a checkpoint to ``<modality>.safetensors``, their
metadata to ``rsmm-encoders.json`` and a model card, atomically.

The export is written to a temporary directory beside the target and renamed into
place (:func:`rsmm.atomic.atomic_dir`), so a failure, ``Ctrl-C`` or full disk never
leaves a half-written export, and the temporary directory of a killed export is removed
by the next one; ``overwrite`` only ever replaces a previous export.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save

import rsmm
from rsmm.atomic import atomic_dir
from rsmm.checkpoints import META_FILE, CheckpointRecord, load_checkpoint
from rsmm.errors import ExportError
from rsmm.export.card import method_description, model_card
from rsmm.export.run import jsonable, last_logged_metrics, read_run_config, run_directory
from rsmm.models.backbones import build_backbone
from rsmm.models.timm_folder import write_timm_folder
from rsmm.sensors import get_sensor

FORMATS = ("safetensors", "torchgeo")


def _native_gsd(sensor: str, bands: Sequence[str] | None) -> list[float | None] | None:
    """The sensor's native GSD of each band (``None`` for a sensor rsmm does not know)."""
    if not bands:
        return None
    try:
        s = get_sensor(sensor)
        return [s.band(b).gsd for b in bands]
    except KeyError:
        return None


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


def _write_encoder(
    record: CheckpointRecord,
    state_dict: Mapping[str, torch.Tensor],
    modality: str,
    tmp: Path,
    format: str,
) -> dict[str, Any]:
    """Write one encoder's weights into ``tmp``; returns its ``rsmm-encoders.json`` entry."""
    m, info = modality, record.data_info
    prefix = f"encoder.backbones.{m}."
    tensors = {
        k[len(prefix) :]: v.contiguous() for k, v in state_dict.items() if k.startswith(prefix)
    }
    arch = record.architectures[m]
    kwargs = dict(record.hparams.get("backbone_kwargs") or {})
    net = build_backbone(arch, record.in_channels[m], **kwargs)
    net.load_state_dict(tensors, strict=True)
    # serialised in memory and written by Python: a full disk is an OSError naming it
    data = save(tensors, metadata={"architecture": arch, "modality": m})
    (tmp / f"{m}.safetensors").write_bytes(data)
    sensor = info.get("sensors", {}).get(m, m)
    entry = {
        "file": f"{m}.safetensors",
        "architecture": arch,
        "backbone_kwargs": kwargs,
        "in_chans": record.in_channels[m],
        "sensor": sensor,
        "bands": record.bands[m],
        "units": info.get("units", {}).get(m),
        "mean": info.get("mean", {}).get(m),
        "std": info.get("std", {}).get(m),
        "gsd": record.gsd[m],
        "native_gsd": _native_gsd(sensor, record.bands[m]),
        "embedding_size": int(net.num_features),
    }
    if format == "torchgeo":
        torch.save(
            {
                "hyper_parameters": {"model": arch, "in_channels": record.in_channels[m]},
                "state_dict": {f"model.{k}": v for k, v in tensors.items()},
            },
            tmp / f"{m}.torchgeo.pth",
        )
        entry["torchgeo_file"] = f"{m}.torchgeo.pth"
    # the same weights as a folder timm loads without rsmm ("local-dir:<folder>")
    entry["timm_folder"] = write_timm_folder(
        tmp / m, tensors, entry, m, rsmm_version=rsmm.__version__
    ).name
    return entry


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

    Raises:
        ExportError: for an unknown format, an existing target that is not a previous
            export, an unreadable checkpoint or a modality it has no encoder for.
        DiskFullError: the disk or quota ran out (a previous export is unchanged).
    """
    if format not in FORMATS:
        raise ExportError(f"format: unknown {format!r}; use {' or '.join(FORMATS)}")
    out_dir = Path(out_dir)
    _check_target(out_dir, overwrite)
    ckpt = load_checkpoint(checkpoint)
    record = CheckpointRecord.from_checkpoint(checkpoint, ckpt)
    mods = list(modalities or record.modalities)
    unknown = [m for m in mods if m not in record.in_channels]
    if unknown:
        raise ExportError(
            f"checkpoint {checkpoint} has no encoder for {unknown} (has {record.modalities})"
        )
    run = run_directory(checkpoint)
    if metrics is None and run is not None and (run / "metrics.csv").is_file():
        metrics = last_logged_metrics(run / "metrics.csv") or None
    meta: dict[str, Any] = {
        "rsmm_version": rsmm.__version__,
        "task": record.task_class,
        "method": method_description(record.hparams, record.task_class),
        "checkpoint": str(checkpoint),
        "dataset": record.data_info.get("dataset"),
        "classes": record.data_info.get("classes"),
        "metrics": metrics,
        "modalities": {},
        "config": jsonable(record.hparams),
        "run_config": read_run_config(run),
    }
    with atomic_dir(out_dir) as tmp:
        for m in mods:
            meta["modalities"][m] = _write_encoder(record, ckpt["state_dict"], m, tmp, format)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
        (tmp / "MODEL_CARD.md").write_text(model_card(meta, metrics))
    return out_dir
