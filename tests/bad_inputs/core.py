"""The parts every bad-input case shares: what a case returns, and the case registry.

A case is a function ``build(tmp, shared) -> Cli | Api`` registered with :func:`case`:
it creates the bad input under ``tmp`` (a fresh folder, also the working directory) and
says how to run it and which file or option the one-line error must name.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rsmm.errors import RsmmError


@dataclass(frozen=True)
class Shared:
    """Inputs built once per test module (outside each case's folder; never modified)."""

    pretrain_ckpt: Path  # a PretrainTask checkpoint (s2: 5 bands, naip: 4 bands)
    finetune_ckpt: Path  # a FinetuneTask checkpoint (s1, s2 of the synthetic data)
    export_dir: Path  # the export of ``pretrain_ckpt``


@dataclass(frozen=True)
class Cli:
    """``rsmm.cli.main(argv)`` must fail with one ``rsmm: error:`` line naming ``mentions``."""

    argv: list[str]
    mentions: tuple[str, ...]
    absent: tuple[Path, ...] = ()  # paths that must not exist afterwards (besides no change)


@dataclass(frozen=True)
class Api:
    """``call()`` must raise ``error`` (an RsmmError) with a one-line message naming ``mentions``."""

    call: Callable[[], Any]
    error: type[RsmmError]
    mentions: tuple[str, ...]
    absent: tuple[Path, ...] = ()


Builder = Callable[[Path, Shared], Cli | Api]

#: Every registered case, as a ``pytest.param`` (id = the case's name).
CASES: list[Any] = []


def case(name: str, xfail: str | None = None) -> Callable[[Builder], Builder]:
    """Register a case; ``xfail`` gives the reason it fails until another branch is merged."""

    def register(build: Builder) -> Builder:
        marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
        CASES.append(pytest.param(build, id=name, marks=marks))
        return build

    return register


class Explode:
    """Unpickling this runs ``os.system(touch marker)``: a file that must never load."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        import os

        return (os.system, (f"touch '{self.marker}'",))


def malicious_pickle(path: Path, marker: Path, torch_zip: bool = True) -> Path:
    """A checkpoint-looking file whose unpickling would create ``marker``."""
    payload = {"state_dict": {}, "hyper_parameters": Explode(marker)}
    if torch_zip:
        import torch

        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    return path
