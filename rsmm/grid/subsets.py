"""Trained with X, tested with Y: the modality subsets a grid tabulates.

With ``tested_with`` in a grid spec every downstream run is tested with each subset of
the modalities it was trained with (``model.subset_metrics``: the task logs
``test/<metric>@<subset>``, e.g. ``test/OA@s1+s2``, see
:class:`~rsmm.tasks.metrics.SubsetMetrics`), and the table has one column per tested
subset and metric. A subset is named as the task names it (``s1+s2``: its modalities
joined by ``+``); the grid writes every subset in one modality order (the order in which
the grid's runs first name them) so that ``s2+s1`` and ``s1+s2`` are one column.

The modalities a run is trained with are its downstream config's
``data.init_args.modalities``, or the last of the grid's, the row's
(``downstream_overrides``) and the protocol's overrides that sets
``data.init_args.modalities`` (or ``data.modalities``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import yaml

from rsmm.errors import GridError

#: ``tested_with: all``: every non-empty subset of the modalities of the grid's runs
ALL = "all"
_MODALITY_KEYS = ("data.init_args.modalities", "data.modalities")


def subset_names(modalities: Sequence[str]) -> list[str]:
    """Every non-empty subset of ``modalities``, smallest first, in their order, named
    as the fine-tuning task names them in its metrics (``["s1", "s2", "s1+s2"]``)."""
    return [
        "+".join(subset)
        for k in range(1, len(modalities) + 1)
        for subset in combinations(modalities, k)
    ]


def _modality_list(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):  # a command-line style value: "[s1, s2]"
        value = yaml.safe_load(value)
    if (
        not isinstance(value, (list, tuple))
        or not value
        or not all(isinstance(m, str) and m for m in value)
    ):
        raise GridError(f"{where}: modalities must be a non-empty list of names, got {value!r}")
    return tuple(value)


def trained_modalities(
    config: Path, layers: Iterable[Mapping[str, Any]], where: str
) -> tuple[str, ...]:
    """The modalities a downstream run is trained with: its config's, unless one of the
    override ``layers`` (lowest priority first) sets them.

    Raises:
        GridError: when neither the config nor an override names them.
    """
    found: Any = None
    for layer in layers:
        for key in _MODALITY_KEYS:
            if key in layer:
                found = layer[key]
    if found is None:
        data = (yaml.safe_load(config.read_text()) or {}).get("data") or {}
        if isinstance(data, Mapping):
            found = (data.get("init_args") or {}).get("modalities") or data.get("modalities")
    if found is None:
        raise GridError(
            f"{where}: tested_with needs the modalities each run is trained with, but "
            f"{config} sets no data.init_args.modalities (nor do the overrides)"
        )
    return _modality_list(found, f"{where}: {config}")


def modality_order(trained: Iterable[Sequence[str]]) -> tuple[str, ...]:
    """Every modality of the runs, in the order they are first named."""
    return tuple(dict.fromkeys(m for mods in trained for m in mods))


def canonical_subset(subset: str | Sequence[str], order: Sequence[str], where: str) -> str:
    """``subset`` (``"s2+s1"`` or ``[s2, s1]``) with its modalities in ``order``.

    Raises:
        GridError: for a modality not in ``order`` or a repeated one.
    """
    mods = subset.split("+") if isinstance(subset, str) else list(subset)
    unknown = [m for m in mods if m not in order]
    if unknown or not mods or len(set(mods)) != len(mods):
        raise GridError(
            f"{where}: tested_with: {subset!r} is not a subset of the modalities the runs "
            f"are trained with ({', '.join(order)})"
        )
    return "+".join(sorted(mods, key=order.index))


def tested_subsets(value: Any, order: Sequence[str], where: str) -> tuple[str, ...]:
    """The columns of ``tested_with``: ``all`` (every subset of ``order``) or a list of
    subsets (``[s1, s1+s2]``, a subset also as a list ``[s1, s2]``), in the given order."""
    if value == ALL:
        return tuple(subset_names(order))
    if not isinstance(value, list) or not value:
        raise GridError(
            f"{where}: tested_with must be `all` or a non-empty list of modality subsets "
            f"such as [s1, s1+s2], got {value!r}"
        )
    out = [canonical_subset(s, order, where) for s in value]
    if len(set(out)) != len(out):
        raise GridError(f"{where}: tested_with names a subset twice: {value!r}")
    return tuple(out)


def split_metric(name: str) -> tuple[str, str | None]:
    """``"OA@s1+s2"`` -> ``("OA", "s1+s2")``; ``"OA"`` -> ``("OA", None)``."""
    metric, at, subset = name.partition("@")
    return metric, (subset if at else None)


def canonical_metrics(metrics: Mapping[str, float], order: Sequence[str]) -> dict[str, float]:
    """Logged metrics with every ``<metric>@<subset>`` written in ``order`` (a subset
    with a modality outside ``order`` is kept as logged)."""
    out = {}
    for name, value in metrics.items():
        metric, subset = split_metric(name)
        mods = [] if subset is None else subset.split("+")
        if mods and all(m in order for m in mods):
            name = f"{metric}@{'+'.join(sorted(mods, key=order.index))}"
        out[name] = value
    return out


def within(subset: str, modalities: Iterable[str]) -> bool:
    """Whether every modality of ``subset`` (``s1+s2``) is one of ``modalities``."""
    return set(subset.split("+")) <= set(modalities)
