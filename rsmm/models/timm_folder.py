"""An exported encoder as a folder that timm loads without rsmm.

timm (>= 1.0.16) builds a model from a local folder holding ``config.json`` and
``model.safetensors``::

    model = timm.create_model("local-dir:encoders/s2", pretrained=True)

and the same folder pushed to the Hugging Face Hub (``huggingface_hub.upload_folder``)
loads as ``timm.create_model("hf-hub:<user>/<repo>", pretrained=True)``. The weights
file alone also loads into the architecture: ``timm.create_model(arch, in_chans=C,
num_classes=0, checkpoint_path="encoders/s2/model.safetensors")``.

``config.json`` follows timm's layout: ``architecture``, ``num_classes`` (0: the model
returns pooled features), ``num_features``, ``model_args`` (``in_chans`` and the
backbone's extra arguments) and ``pretrained_cfg`` with the per-band ``mean`` / ``std``
and ``input_size``. What timm has no field for (band names, units, sensor, GSD) sits at
the top level: timm rejects unknown keys inside ``pretrained_cfg``. ``first_conv`` is
left out on purpose: timm before 1.0.31 would treat the first convolution as an RGB one
and re-initialise it for any other band count.

rsmm's own architectures (``small_alexnet``, ``tiny_cnn``) are registered with timm when
``rsmm.models`` is imported: load those folders after ``import rsmm.models``
(``config.json`` says so under ``requires``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import Tensor

from rsmm.errors import ExportError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"

#: architectures that only exist in timm once rsmm.models is imported
RSMM_ARCHITECTURES = ("small_alexnet", "tiny_cnn")

#: the spatial size written to ``input_size`` when the training chip size is not known
#: (timm's default; the encoders are fully convolutional, ``fixed_input_size`` is false)
DEFAULT_IMAGE_SIZE = 224


def timm_config(
    entry: Mapping[str, Any],
    modality: str,
    image_size: int | Sequence[int] | None = None,
    rsmm_version: str | None = None,
) -> dict[str, Any]:
    """The ``config.json`` of an exported encoder.

    Args:
        entry: the encoder's entry of ``rsmm-encoders.json`` (``architecture``,
            ``in_chans``, ``backbone_kwargs``, ``embedding_size``, ``bands``, ``units``,
            ``sensor``, ``mean``, ``std``, ``gsd``, ``native_gsd``).
        modality: the encoder's modality.
        image_size: the training chip size in pixels, when known.
        rsmm_version: the rsmm version that wrote it.
    """
    c = int(entry["in_chans"])
    size = image_size if image_size is not None else DEFAULT_IMAGE_SIZE
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    arch = str(entry["architecture"])
    config: dict[str, Any] = {
        "architecture": arch,
        "num_classes": 0,
        "num_features": int(entry["embedding_size"]),
        "model_args": {"in_chans": c, **dict(entry.get("backbone_kwargs") or {})},
        "pretrained_cfg": {
            "input_size": [c, h, w],
            "fixed_input_size": False,
            "interpolation": "bilinear",
            "crop_pct": 1.0,
            "crop_mode": "center",
            "mean": list(entry.get("mean") or [0.0] * c),
            "std": list(entry.get("std") or [1.0] * c),
            "num_classes": 0,
        },
        # what timm has no field for; inputs are the bands below, in this order, as
        # stored (units), at gsd metres per pixel, then normalised with mean / std
        "modality": modality,
        "sensor": entry.get("sensor"),
        "bands": entry.get("bands"),
        "units": entry.get("units"),
        "gsd": entry.get("gsd"),
        "native_gsd": entry.get("native_gsd"),
        "image_size_known": image_size is not None,
        "library": "rsmm",
        "rsmm_version": rsmm_version,
    }
    if arch in RSMM_ARCHITECTURES:
        config["requires"] = f"import rsmm.models before timm.create_model: it registers {arch}"
    return config


def _model_card(config: Mapping[str, Any], folder: str) -> str:
    arch, bands = config["architecture"], config.get("bands")
    first = "import rsmm.models  # registers " + arch + "\n" if config.get("requires") else ""
    return (
        "---\nlibrary_name: timm\ntags: [rsmm, remote-sensing, image-feature-extraction]\n---\n\n"
        f"# rsmm {config['modality']} encoder ({arch})\n\n"
        f"Sensor {config.get('sensor')}, bands {', '.join(bands) if bands else 'unknown'} "
        f"({config.get('units')}), {config.get('gsd')} m per pixel; normalise each band "
        "with `pretrained_cfg.mean` / `std` of `config.json`. Returns pooled features "
        f"({config['num_features']}).\n\n"
        f"```python\nimport timm\n{first}"
        f'model = timm.create_model("local-dir:{folder}", pretrained=True)\n```\n'
    )


def write_timm_folder(
    folder: str | Path,
    tensors: Mapping[str, Tensor],
    entry: Mapping[str, Any],
    modality: str,
    image_size: int | Sequence[int] | None = None,
    rsmm_version: str | None = None,
) -> Path:
    """Write ``folder`` with ``config.json``, ``model.safetensors`` and a ``README.md``
    model card (what the Hugging Face Hub shows).

    Args:
        folder: the folder to create.
        tensors: the backbone's state dict (timm names, no classifier).
        entry: the encoder's entry of ``rsmm-encoders.json`` (see :func:`timm_config`).
        modality: the encoder's modality.
        image_size: the training chip size in pixels, when known.
        rsmm_version: the rsmm version that wrote it.

    Returns:
        ``folder``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = timm_config(entry, modality, image_size, rsmm_version)
    save_file(
        {k: v.contiguous() for k, v in tensors.items()},
        str(folder / WEIGHTS_FILE),
        metadata={"format": "pt"},
    )
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    (folder / "README.md").write_text(_model_card(config, folder.name))
    return folder


def read_timm_folder(folder: str | Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """``(config, state_dict)`` of a folder written by :func:`write_timm_folder`.

    Raises:
        ExportError: for a missing or unreadable ``config.json`` / ``model.safetensors``.
    """
    folder = Path(folder)
    try:
        config = json.loads((folder / CONFIG_FILE).read_text())
        tensors = load_file(str(folder / WEIGHTS_FILE))
    except Exception as err:  # missing files, invalid JSON, corrupt safetensors
        raise ExportError(f"{folder} is not a readable timm model folder: {err}") from err
    if not isinstance(config, dict) or "architecture" not in config:
        raise ExportError(f"{folder / CONFIG_FILE} has no 'architecture'")
    return config, tensors
