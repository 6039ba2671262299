"""Loading an exported encoder back as a plain timm backbone (no unpickling)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import nn

from rsmm.checkpoints import check_bands, read_export
from rsmm.errors import ExportError
from rsmm.models.backbones import build_backbone, encoder_from_weights


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
