"""Atomic writes: a file or folder appears complete at its path, or not at all.

Every output rsmm writes (checkpoints, exports, chip manifests, maps, reports) is first
written to a temporary file or folder *beside* the target (same folder, so the same
filesystem), flushed and ``fsync``-ed, given the user's umask, and renamed onto the
target with :func:`os.replace`; the folder is then ``fsync``-ed so the rename itself
survives a crash. An error, ``Ctrl-C`` or ``SIGTERM`` removes the temporary file and
leaves the previous output untouched.

A ``kill -9`` or a power cut cannot run any clean-up: temporary names are recognisable
(``.<name>.rsmm.tmp-<host>-<pid>-<random>``) and the next write into the same folder
removes those whose process is gone (on this host). A previous export moved aside
while a new one is renamed into place (``.<name>.rsmm.old-...``) is put back if its
process died before the new one arrived.

A full disk or an exceeded quota raises :class:`~rsmm.errors.DiskFullError` naming the
target, whatever library did the writing (Python, PyTorch, safetensors, Arrow).

This module sits at the bottom of the package: it imports only :mod:`rsmm.errors`.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import shutil
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from rsmm.errors import DiskFullError

__all__ = [
    "atomic_dir",
    "atomic_open",
    "atomic_path",
    "commit",
    "disk_full_error",
    "is_disk_full",
    "remove_stale",
    "replace_dir",
    "temp_path",
    "user_mode",
    "write_bytes",
    "write_text",
]

_STALE = re.compile(
    r"^\.(?P<name>.+)\.rsmm\.(?P<kind>tmp|old)-(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-[0-9a-f]{8}$"
)
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_FULL_TEXTS = ("no space left on device", "disk quota exceeded", "storagefull")


def _host() -> str:
    """A short, filename-safe tag of this machine (pids mean nothing on another host)."""
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def temp_path(target: str | Path, kind: str = "tmp") -> Path:
    """A fresh temporary name beside ``target`` that :func:`remove_stale` recognises."""
    target = Path(target)
    tag = f"{_host()}-{os.getpid()}-{secrets.token_hex(4)}"
    return target.parent / f".{target.name}.rsmm.{kind}-{tag}"


def user_mode(directory: bool = False) -> int:
    """The mode a new file (``0o666``) or folder (``0o777``) gets under the user's umask."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def remove_stale(folder: str | Path) -> list[Path]:
    """Remove the temporary files and folders that a killed rsmm process left in
    ``folder``; an export it had moved aside is put back when nothing replaced it.

    Only names made by :func:`temp_path` on this host whose process no longer runs are
    touched. Returns the paths removed or restored.
    """
    folder = Path(folder)
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    host, found = _host(), []
    for entry in entries:
        match = _STALE.match(entry.name)
        if match is None or match["host"] != host or _alive(int(match["pid"])):
            continue
        target = folder / match["name"]
        if match["kind"] == "old" and not target.exists() and not target.is_symlink():
            try:
                entry.rename(target)
            except OSError:
                continue
        else:
            _remove(entry)
        found.append(entry)
    return found


def is_disk_full(err: BaseException) -> bool:
    """``err`` (or what it was raised from) says the disk or the quota is full; PyTorch,
    safetensors and Arrow report it in their own exception types, with the OS's text."""
    seen: set[int] = set()
    cur: BaseException | None = err
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, OSError) and cur.errno in _FULL_ERRNOS:
            return True
        if any(t in str(cur).lower() for t in _FULL_TEXTS):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


def disk_full_error(target: str | Path) -> DiskFullError:
    """The one-line error for a disk or quota that ran out while writing ``target``."""
    return DiskFullError(
        f"no space left on device for {target} (disk full or quota exceeded): it was not "
        "written, a previous one there is unchanged"
    )


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        _fsync(path)
    except OSError:  # some filesystems refuse to fsync a folder; the rename is done
        pass


def _fsync_tree(path: Path) -> None:
    for root, _, files in os.walk(path):
        for f in files:
            _fsync(Path(root) / f)
        _fsync_dir(Path(root))


def _make_parent(target: Path) -> None:
    """Create ``target``'s folder; a file in the way is an error naming ``target``."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as err:
        raise NotADirectoryError(
            f"cannot write {target}: {err.filename or target.parent} is a file, not a folder"
        ) from err


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """A temporary path beside ``target`` to write to; renamed onto ``target`` when
    the block ends without an error, removed otherwise.

    For writers that want a path (``DataFrame.to_parquet``, ``Figure.savefig``). The
    parent folder is created; the file gets the user's umask (``0o666 & ~umask``).

    Raises:
        DiskFullError: the disk or quota ran out while writing (names ``target``).
    """
    with _staged(target, commit) as tmp:
        yield tmp


@contextmanager
def _staged(
    target: str | Path, finish: Callable[[Path, Path], object], folder: bool = False
) -> Iterator[Path]:
    """The shared life of a temporary beside ``target`` (a file path, or a created
    folder): ``finish(tmp, target)`` when the block ends without an error; removed
    otherwise, a full disk reported as :class:`DiskFullError` naming ``target``."""
    target = Path(target)
    _make_parent(target)
    remove_stale(target.parent)
    tmp = temp_path(target)
    if folder:
        tmp.mkdir(mode=0o700)
    try:
        yield tmp
        finish(tmp, target)
    except BaseException as err:
        _remove(tmp)
        if is_disk_full(err):
            raise disk_full_error(target) from err
        raise


def commit(tmp: str | Path, target: str | Path) -> Path:
    """Move a finished temporary file (from :func:`temp_path`) onto ``target``: ``fsync``
    it, give it the user's umask, rename it, ``fsync`` the folder. Returns ``target``."""
    tmp, target = Path(tmp), Path(target)
    _fsync(tmp)
    os.chmod(tmp, user_mode())
    os.replace(tmp, target)
    _fsync_dir(target.parent)
    return target


@contextmanager
def atomic_open(target: str | Path, mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """:func:`open` for writing, atomically: the file appears at ``target`` complete,
    flushed and ``fsync``-ed, when the block ends without an error (see
    :func:`atomic_path`)."""
    if not any(c in mode for c in "wx"):
        raise ValueError(f"atomic_open writes a new file: mode {mode!r} has no 'w'")
    with atomic_path(target) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())


def write_text(target: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``target`` atomically; returns ``target`` as a Path."""
    with atomic_open(target, "w", encoding=encoding) as fh:
        fh.write(text)
    return Path(target)


def write_bytes(target: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``target`` atomically; returns ``target`` as a Path."""
    with atomic_open(target, "wb") as fh:
        fh.write(data)
    return Path(target)


def replace_dir(tmp: Path, target: Path) -> None:
    """Rename the folder ``tmp`` onto ``target``; an existing ``target`` is moved aside
    first, put back if the rename fails (or, after a ``kill -9``, by the next
    :func:`remove_stale`), and deleted once the new folder is in place."""
    if not target.exists() and not target.is_symlink():
        tmp.rename(target)
        return
    old = temp_path(target, "old")
    target.rename(old)
    try:
        tmp.rename(target)
    except BaseException:
        old.rename(target)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """A temporary folder beside ``target`` to fill; when the block ends without an
    error its files are ``fsync``-ed and it replaces ``target`` (see
    :func:`replace_dir`: the caller decides whether an existing ``target`` may be
    replaced), otherwise it is removed.

    The folder gets the user's umask (``0o777 & ~umask``, not :func:`tempfile.mkdtemp`'s
    ``0o700``).

    Raises:
        DiskFullError: the disk or quota ran out while writing (names ``target``).
    """
    with _staged(target, _install_dir, folder=True) as tmp:
        yield tmp


def _install_dir(tmp: Path, target: Path) -> None:
    """Move a filled temporary folder onto ``target``: ``fsync`` its files, give it the
    user's umask, :func:`replace_dir`, ``fsync`` the parent folder."""
    _fsync_tree(tmp)
    os.chmod(tmp, user_mode(directory=True))
    replace_dir(tmp, target)
    _fsync_dir(target.parent)
