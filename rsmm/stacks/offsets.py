"""Radiometric offsets of a modality's files: the products' own, the user's, per file.

Sentinel-2 products declare the offset added to stored values before the x 1e4
reflectance scale applies (``RADIO_ADD_OFFSET`` / ``BOA_ADD_OFFSET``: -1000 since
processing baseline 04.00, none before; :mod:`rsmm.stacks.products`). The user may
override it for every file (``offset``: ``--s2-offset -1000``) or per product or file
(``offsets``: ``{pattern: offset}``, ``--s2-offset 'S2*_MSIL1C_*=0'``); a pattern is a
shell-style glob (``fnmatch``, case-sensitive; ``*`` also crosses ``/``) matched against
each file's names (:attr:`OffsetTarget.names`: a SAFE product's name, its ``.SAFE`` /
``.zip`` file name and path; a loose file's name and path), so a product's exact name
is a pattern too. :func:`resolve_offsets` gives every file its offset: the matching
pattern's, else ``offset``, else the product's own, else 0; it refuses a pattern that
matches nothing, two patterns that give one file different offsets, and L1C and L2A
products mixed in one modality without the user's offset for every product (top-of-
atmosphere and surface reflectance are different quantities).

A modality keeps one offset (the most common); a file whose offset differs has its
values shifted when read. The manifest records those files (``file_offsets``:
``{SAFE product name or file name: offset}``) and :func:`offset_shifts` turns them
into each acquisition's shift at read time.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from rsmm.errors import ConfigError, DatasetFileError
from rsmm.stacks.files import BAND_PLACEHOLDER, split_gdal_name


@dataclass(frozen=True)
class OffsetTarget:
    """One acquisition file of a modality, as offsets see it.

    Attributes:
        key: the item's path (a per-band template, a GDAL dataset name).
        names: what user patterns are matched against.
        level: ``"L1C"`` / ``"L2A"`` for a Sentinel-2 product, else ``None``.
        own: the offset the product declares, else ``None``.
        label: the file or product, for messages.
    """

    key: str
    names: tuple[str, ...]
    level: str | None = None
    own: float | None = None
    label: str = ""


def option_name(key: str) -> str:
    """How the user gives a modality's per-file offsets, for messages."""
    flag = f"--{key}-offset / " if key == "s2" else ""
    return f"{flag}offsets: of {key}"


def resolve_offsets(
    targets: Sequence[OffsetTarget],
    key: str,
    what: str,
    offset: float | None = None,
    offsets: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """``{target key: offset}`` (module docstring).

    Args:
        targets: the modality's files.
        key: the modality's key (for the option named in messages).
        what: the modality and its folder, for messages.
        offset: the user's offset of every file without a matching pattern.
        offsets: the user's ``{pattern: offset}``.

    Raises:
        ConfigError: naming the option and the pattern that matches no file, or two
            patterns giving one file different offsets.
        DatasetFileError: for L1C and L2A products mixed without the user's offset of
            every product, naming the products of each level.
    """
    patterns = dict(offsets or {})
    matched: dict[str, list[str]] = {
        p: [t.key for t in targets if any(fnmatchcase(n, p) for n in t.names)] for p in patterns
    }
    unmatched = [p for p, keys in matched.items() if not keys]
    if unmatched:
        raise ConfigError(
            f"{option_name(key)}: pattern {unmatched[0]!r} matches no SAFE product or file "
            f"of {what}; a pattern is matched against product names "
            "(S2A_MSIL2A_20170613T101031_N0400_R022_T33UUP_20170613T101032), .SAFE / .zip "
            "and file names and paths, with * and ? wildcards"
        )
    user: dict[str, float] = {}
    by: dict[str, str] = {}
    for pattern, keys in matched.items():
        for k in keys:
            if k in user and user[k] != float(patterns[pattern]):
                label = next(t.label or t.key for t in targets if t.key == k)
                raise ConfigError(
                    f"{option_name(key)}: patterns {by[k]!r} and {pattern!r} give {label} "
                    f"different offsets ({user[k]:g} and {float(patterns[pattern]):g})"
                )
            user[k], by[k] = float(patterns[pattern]), pattern
    if offset is not None:
        for t in targets:
            user.setdefault(t.key, float(offset))
    levels: dict[str, list[str]] = {}
    for t in targets:
        if t.level is not None:
            levels.setdefault(t.level, []).append(t.label or t.key)
    if len(levels) > 1 and any(t.level is not None and t.key not in user for t in targets):
        listed = "; ".join(f"{lv}: {', '.join(paths)}" for lv, paths in sorted(levels.items()))
        raise DatasetFileError(
            f"{what}: L1C (top-of-atmosphere) and L2A (surface reflectance) products are "
            f"mixed ({listed}); give each level its own stack, or the offset of every "
            f"product to mix them knowingly ({option_name(key)} in the stack YAML, e.g. "
            "--s2-offset 'S2*_MSIL1C_*=0,S2*_MSIL2A_*=-1000')"
        )
    return {
        t.key: user[t.key] if t.key in user else (t.own if t.own is not None else 0.0)
        for t in targets
    }


def check_offsets(offsets: Any, key: str) -> dict[str, float]:
    """``offsets`` as ``{pattern: float}``, or a ConfigError naming the modality."""
    if not isinstance(offsets, Mapping):
        raise ConfigError(
            f"{key}: offsets: expected a mapping of product name or file pattern to offset "
            f"(S2*_MSIL1C_*: 0), got {offsets!r}"
        )
    out = {}
    for pattern, value in offsets.items():
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ConfigError(f"{key}: offsets: {pattern!r} needs a number, got {value!r}")
        out[str(pattern)] = float(value)
    return out


def parse_offsets(
    values: Sequence[str], option: str
) -> tuple[float | None, dict[str, float] | None]:
    """``(offset, offsets)`` from an offset option's values (repeated or comma
    separated): a number is the offset of every file, ``PATTERN=OFFSET`` that of the
    products and files ``PATTERN`` matches (:attr:`~rsmm.stacks.spec.ModalitySpec.offsets`).

    Raises:
        ConfigError: naming ``option`` for a value that is neither, or two plain offsets.
    """
    offset, offsets = None, {}
    for item in (i.strip() for v in values for i in str(v).split(",")):
        pattern, _, text = item.rpartition("=")
        try:
            value = float(text)
        except ValueError:
            value = None
        if value is None or (not pattern and "=" in item):
            raise ConfigError(
                f"{option}: expected OFFSET or PATTERN=OFFSET (e.g. -1000, or "
                f"'S2*_MSIL1C_*=0,S2*_MSIL2A_*=-1000'), got {item!r}"
            )
        if pattern:
            offsets[pattern] = value
        elif offset is not None and offset != value:
            raise ConfigError(f"{option}: two offsets for every file, {offset:g} and {value:g}")
        else:
            offset = value
    return offset, offsets or None


def safe_name(path: str) -> str | None:
    """The name of the SAFE product a (band-file, template or GDAL) path lies in, or
    ``None``."""
    return next((part[: -len(".SAFE")] for part in path.split("/") if part.endswith(".SAFE")), None)


def file_key(path: str) -> str:
    """What the manifest's ``file_offsets`` names a file by: its SAFE product's name,
    else its file name (a per-band template's, with ``{band}``)."""
    return safe_name(path) or os.path.basename(split_gdal_name(path)[1]) or path


def _key_matches(key: str, path: str) -> bool:
    """Whether ``file_offsets`` key ``key`` names the file ``path`` (a band file of a
    per-band template key)."""
    name = os.path.basename(split_gdal_name(path)[1]) or path
    if BAND_PLACEHOLDER not in key:
        return key == name
    parts = (re.escape(p) for p in key.split(BAND_PLACEHOLDER))
    return re.fullmatch(r"[A-Za-z0-9]+".join(parts), name) is not None


def offset_shifts(
    entries: Sequence[str | Sequence[str]], offset: float, file_offsets: dict[str, float] | None
) -> list[float] | None:
    """What to add to the values of each acquisition of ``entries`` (a file, or its
    per-band files) to bring it to the modality's ``offset``: ``file offset - offset``
    where ``file_offsets`` (the manifest's, :func:`file_key`) names its product or
    file, else 0; ``None`` without ``file_offsets``."""
    if not file_offsets:
        return None
    out = []
    for entry in entries:
        first = entry if isinstance(entry, str) else entry[0]
        name = safe_name(first)
        if name is not None:
            out.append(float(file_offsets.get(name, offset)) - offset)
            continue
        hit = next((v for k, v in file_offsets.items() if _key_matches(k, first)), offset)
        out.append(float(hit) - offset)
    return out
