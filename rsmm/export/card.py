"""The model card of an export: data, bands, method, metrics, and how to load it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def method_description(hp: Mapping[str, Any], task: str | None) -> str:
    """One line naming the training method of a checkpoint (task, protocol, loss).

    Args:
        hp: the checkpoint's hyper-parameters.
        task: its task class name (``"PretrainTask"``, ``"FinetuneTask"``), ``None``
            when not known (see :class:`~rsmm.checkpoints.CheckpointRecord`).
    """
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


def _fmt_gsd(value: float | None) -> str:
    return "unknown" if value is None else f"{value:g} m"


def model_card(meta: dict[str, Any], metrics: dict[str, float] | None = None) -> str:
    """A short Markdown model card: data, bands, method, metrics, how to load.

    Args:
        meta: the export's ``rsmm-encoders.json`` content.
        metrics: metrics to list (none: no metrics section).
    """
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
