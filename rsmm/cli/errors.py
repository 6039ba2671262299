"""What the ``rsmm`` command reports in one line, and what it shows as a traceback.

A user error (:class:`rsmm.errors.RsmmError`, an invalid option found by argparse or
jsonargparse, an :class:`OSError` about a path the user gave) is printed as one line
``rsmm: error: ...`` with exit status 2. Anything else is a bug and reaches the terminal
with its traceback.

An interruption (``Ctrl-C`` = ``SIGINT``, ``SIGTERM`` from ``kill``, SLURM or Kubernetes)
is one line ``rsmm: <command> interrupted by SIGINT ...`` with the shell's status for
the signal (130, 143): :func:`reported_interruptions`. Outputs are written atomically
(:mod:`rsmm.atomic`), so an interrupted command leaves each one as it was or complete.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rsmm.errors import RsmmError

# one line for these; anything else is a bug and shows its traceback
USER_ERRORS: tuple[type[BaseException], ...] = (
    RsmmError,
    argparse.ArgumentError,  # jsonargparse's unknown / invalid option (exit_on_error=False)
    OSError,  # a path the user gave: missing, a directory, not writable, disk full
)


def wrapped_user_error(err: BaseException) -> BaseException | None:
    """The user error that ``err`` was explicitly raised from (``raise ... from``), if any.

    jsonargparse instantiates a ``class_path`` given for a ``Union`` type (the
    datamodule) inside a ``try`` and re-raises any failure as a ``ValueError``
    ``from`` it: a :class:`~rsmm.errors.ConfigError` raised by the datamodule's
    ``__init__`` then arrives as that ``ValueError``. Only explicit causes are followed,
    so an error raised while another was being handled is not mistaken for it.
    """
    seen: set[int] = set()
    cause = err.__cause__
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, USER_ERRORS):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__
    return None


def debugging() -> bool:
    """``RSMM_DEBUG`` is set: user errors show their traceback too (for bug reports)."""
    return bool(os.environ.get("RSMM_DEBUG"))


_UNION = re.compile(
    r'Parser key "(?P<key>[^"]+)":\s+Does not validate against any of the Union subtypes'
    r".*?Errors:\s*\n\s*- (?P<first>.*?)(?:\n\s*- |\n\s*Given value|\Z)",
    re.S,
)
_KEY = re.compile(r'^Parser key "(?P<key>[^"]+)":\s*(?P<detail>.*)\Z', re.S)
_CLASS_PATH = re.compile(
    r"^Problem with given class_path '(?P<path>[^']*)':\s*(?P<detail>.*)\Z", re.S
)
_EXPECTED = re.compile(
    r"Expected a <class '(?P<type>[\w.]+)'>(?:\. Got value: (?P<value>.*))?\Z", re.S
)


def _detail(text: str) -> str:
    """``Expected a <class 'int'>. Got value: abc`` as ``expected int, got 'abc'``."""
    match = _EXPECTED.match(text.strip())
    if match is None:
        return text.strip()
    value = f", got {match['value'].strip()!r}" if match["value"] is not None else ""
    return f"expected {match['type']}{value}"


def _readable(message: str) -> str:
    """jsonargparse's report on an option, which spans lines and, for a ``class_path``
    option (the datamodule), lists the failure of every type the option accepts,
    reduced to the option and its one cause: ``data.batch_size: expected int, got
    'abc'``, ``data.class_path: cannot use 'nosuch.Mod': No module named 'nosuch'``."""
    match = _UNION.match(message)
    if match is None:
        key = _KEY.match(message)
        return f"{key['key']}: {_detail(key['detail'])}" if key else message
    first = match["first"].strip()
    types = re.findall(r"^\s*- Expected a <class '([\w.]+)'>\s*$", message, re.M)
    value = re.search(r"\n\s*Given value: (?P<value>.*)\Z", message)
    if value and types and "class_path" not in first:  # a value of none of the types
        names = " or ".join("null" if t == "NoneType" else t for t in types)
        return f"{match['key']}: expected {names}, got {value['value'].strip()!r}"
    given = _CLASS_PATH.match(first)
    if given is not None:
        first = given["detail"].strip()
        if "Parser key" not in first and "is not accepted" not in first:  # the class itself
            return f"{match['key']}.class_path: cannot use '{given['path']}': {first}"
    keys = [match["key"], *re.findall(r'Parser key "([^"]+)":', first)]
    detail = re.sub(r'Parser key "[^"]+":\s*', "", first)
    return f"{'.'.join(keys)}: {_detail(detail)}"


def report(err: BaseException, command: str) -> int:
    """Print a user error as one ``rsmm: error:`` line; returns the exit status 2."""
    msg = err.args[0] if isinstance(err, KeyError) and err.args else err
    hint = ""
    if isinstance(err, argparse.ArgumentError):
        msg, hint = _readable(str(msg)), f" (see `rsmm {command} --help`)"
    line = " ".join(str(msg).split())  # jsonargparse's messages span lines
    print(f"rsmm: error: {line}{hint}", file=sys.stderr)
    return 2


class Terminated(BaseException):
    """``SIGTERM`` reached a command: raised by the handler of
    :func:`reported_interruptions`, like :class:`KeyboardInterrupt` for ``SIGINT`` (a
    :class:`BaseException`, so that no ``except Exception`` swallows it)."""


#: the exit status a shell reports for a process killed by the signal: 128 + its number
SIGNAL_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}


@dataclass
class Interruptions:
    """What :func:`reported_interruptions` saw: a ``SIGTERM`` that it left to Lightning."""

    deferred: signal.Signals | None = None


@contextmanager
def reported_interruptions(lightning_handles_sigterm: bool) -> Iterator[Interruptions]:
    """Handle ``SIGINT`` and ``SIGTERM`` while a command runs; the previous handlers are
    put back afterwards.

    The first signal raises :class:`KeyboardInterrupt` (``SIGINT``) or
    :class:`Terminated` (``SIGTERM``) in the main thread, where ``except BaseException``
    clean-ups remove temporary files; later ones are ignored while they run.

    While Lightning fits or tests, it installs its own ``SIGTERM`` handler (it finishes
    the batch and sets ``trainer.received_sigterm``) and calls this one after it. With
    ``lightning_handles_sigterm`` (the training commands, whose callbacks save a
    checkpoint and stop) this one then only notes the signal in the returned
    :class:`Interruptions`; otherwise (a quick start's fits) it raises as above.

    A process forked from this one (a DataLoader worker) gets the default behaviour.
    """
    seen = Interruptions()
    owner = os.getpid()
    installed: dict[signal.Signals, object] = {}

    def handler(signum: int, frame: object) -> None:
        sig = signal.Signals(signum)
        if os.getpid() != owner:  # a forked worker: what it would do without rsmm
            if sig == signal.SIGINT:
                raise KeyboardInterrupt
            signal.signal(sig, signal.SIG_DFL)
            os.kill(os.getpid(), sig)
            return
        if signal.getsignal(sig) is not handler and lightning_handles_sigterm:
            seen.deferred = sig  # called by Lightning's handler: it stops the run
            return
        for s in SIGNAL_STATUS:  # a second Ctrl-C must not break the clean-up
            signal.signal(s, signal.SIG_IGN)
        raise KeyboardInterrupt if sig == signal.SIGINT else Terminated

    if threading.current_thread() is threading.main_thread():
        for sig in SIGNAL_STATUS:
            installed[sig] = signal.signal(sig, handler)
    try:
        yield seen
    finally:
        for sig, previous in installed.items():
            signal.signal(sig, previous)  # type: ignore[arg-type]


def interrupted_by(err: BaseException, seen: Interruptions) -> signal.Signals | None:
    """The signal that ``err`` reports, if any: ``SIGINT`` for a
    :class:`KeyboardInterrupt` and for Lightning's ``sys.exit(1)`` after one, ``SIGTERM``
    for :class:`Terminated` and for a ``SystemExit`` after a ``SIGTERM`` that Lightning
    handled (its ``SIGTERMException``, status 0, or a callback's ``SystemExit(143)``
    after saving a checkpoint)."""
    if isinstance(err, KeyboardInterrupt):
        return signal.SIGINT
    if isinstance(err, Terminated):
        return signal.SIGTERM
    if isinstance(err, SystemExit):
        if isinstance(err.__context__, KeyboardInterrupt):
            return signal.SIGINT  # Lightning's graceful shutdown after Ctrl-C
        if seen.deferred == signal.SIGTERM:
            return signal.SIGTERM
    return None


def report_interruption(sig: signal.Signals, command: str) -> int:
    """Print the one line of an interrupted command; returns the shell's status for ``sig``."""
    print(
        f"rsmm: {command} interrupted by {sig.name}; complete outputs are kept, unfinished "
        "ones were not written",
        file=sys.stderr,
    )
    return SIGNAL_STATUS[sig]
