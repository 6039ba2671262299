"""Whether weights fit a model: the same tensors with the same shapes, and the same bands
in the same order (a first convolution's weights follow the band order, so weights
trained on other bands load without error and compute nonsense)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from torch import Tensor

from rsmm.errors import CheckpointError, ExportError


def band_mismatch(
    source: str | Path, modality: str, trained: Sequence[str] | None, wanted: Sequence[str] | None
) -> str | None:
    """The message for an encoder trained on bands ``trained`` that would read bands
    ``wanted``, or ``None`` when they are the same (or either list is unknown)."""
    if not trained or not wanted or list(trained) == list(wanted):
        return None
    how = "the same bands in another order" if sorted(trained) == sorted(wanted) else "other bands"
    return (
        f"{source}: the {modality} encoder was trained on bands {list(trained)} but this "
        f"model reads {list(wanted)} ({how}); select the bands in the encoder's order"
    )


def check_bands(
    source: str | Path, modality: str, trained: Sequence[str] | None, wanted: Sequence[str] | None
) -> None:
    """Raise when an encoder trained on bands ``trained`` would read bands ``wanted``.

    Either list unknown (``None``) passes: there is nothing to compare.

    Raises:
        ExportError: naming ``source`` and both band lists (a different order of the same
            bands included).
    """
    message = band_mismatch(source, modality, trained, wanted)
    if message is not None:
        raise ExportError(message)


def state_dict_problems(
    own: Mapping[str, Tensor], theirs: Mapping[str, Tensor], prefix: str = ""
) -> list[str]:
    """What keeps ``theirs`` from loading strictly into a model whose state dict is
    ``own``, for the keys under ``prefix``: missing and unexpected tensors, shape
    mismatches (each counted, with up to three examples named without ``prefix``).
    An empty list when it fits."""
    ours = {k for k in own if k.startswith(prefix)}
    other = {k for k in theirs if k.startswith(prefix)}
    missing, unexpected = sorted(ours - other), sorted(other - ours)
    shapes = [
        f"{k[len(prefix) :]} {tuple(theirs[k].shape)} vs {tuple(own[k].shape)}"
        for k in sorted(ours & other)
        if theirs[k].shape != own[k].shape
    ]
    problems = [
        f"{len(keys)} {what} (e.g. {', '.join(k[len(prefix) :] for k in keys[:3])})"
        for what, keys in (("missing tensors", missing), ("unexpected tensors", unexpected))
        if keys
    ]
    if shapes:
        problems.append(f"{len(shapes)} shape mismatches (e.g. {'; '.join(shapes[:2])})")
    return problems


def check_state_dict(
    source: str | Path | None, own: Mapping[str, Tensor], theirs: Mapping[str, Tensor]
) -> None:
    """Raise unless the state dict ``theirs`` of checkpoint ``source`` loads strictly
    into a model whose state dict is ``own``.

    Raises:
        CheckpointError: naming ``source`` and what does not fit.
    """
    problems = state_dict_problems(own, theirs)
    if problems:
        raise CheckpointError(
            f"checkpoint {source or ''} does not fit this model (another task, backbone or "
            f"modality set?): {', '.join(problems)}"
        )
