"""Loading an exported encoder back as a plain timm backbone (no unpickling)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import nn

from rsmm.checkpoints import META_FILE, check_bands, read_export, state_dict_problems
from rsmm.errors import ConfigError, ExportError
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
        ExportError: for a missing or corrupt export (``rsmm-encoders.json`` that is
            not JSON, not an object, or has a missing or mistyped field; a missing or
            unreadable weights file), a modality it has no encoder for, a band list that
            differs from the export's, or weights that do not fit the recorded
            architecture. The message names the file and the field.
    """
    if Path(out_dir).is_file() or "_Weights." in str(out_dir):  # TorchGeo's weights
        return encoder_from_weights(out_dir, bands)
    meta, tensors = read_export(out_dir, [modality])
    e = meta["modalities"][modality]
    source = f"{Path(out_dir) / META_FILE}: modalities.{modality}"
    check_bands(out_dir, modality, e.get("bands"), bands)
    kwargs = dict(e.get("backbone_kwargs") or {})
    try:
        net = build_backbone(e["architecture"], e["in_chans"], **kwargs)
    except ConfigError as err:  # an architecture timm does not know
        raise ExportError(f"{source}.architecture: {err}") from err
    except TypeError as err:  # an argument the architecture does not take
        raise ExportError(f"{source}.backbone_kwargs: {err} (given {kwargs})") from err
    problems = state_dict_problems(net.state_dict(), tensors[modality])
    if problems:
        raise ExportError(
            f"{Path(out_dir) / e['file']} does not fit a {e['architecture']!r} backbone with "
            f"{e['in_chans']} bands (as {source} records): {'; '.join(problems)}"
        )
    net.load_state_dict(tensors[modality], strict=True)
    return net.eval()
