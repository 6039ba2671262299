"""The errors a user can cause, all derived from :class:`RsmmError`.

The ``rsmm`` command prints one ``rsmm: error: ...`` line for an :class:`RsmmError`
(and for argparse and OS errors, which are also about what the user typed or has on
disk) and a full traceback for anything else: an internal bug must never look like a
user error.

Each class also derives from the builtin exception that code written before this
module expected (``ValueError``, ``KeyError``, ``FileNotFoundError``), so ``except
ValueError`` keeps catching a bad option value.

This module sits at the bottom of the package: it imports nothing from rsmm.
"""

from __future__ import annotations

from collections.abc import Sequence


class RsmmError(Exception):
    """Base of every error a user can cause: a bad path, option, file or checkpoint."""


class ConfigError(RsmmError, ValueError):
    """An option or configuration value that rsmm cannot use; the message names it."""


class UnknownNameError(RsmmError, KeyError):
    """An unknown name (band, sensor, class, preset, objective); the message lists the known."""

    def __str__(self) -> str:  # KeyError's str() would quote the whole message
        return str(self.args[0]) if self.args else ""


class DatasetFileError(RsmmError, ValueError):
    """A dataset file is missing, unreadable or not what the dataset expects."""


class DatasetNotFoundError(RsmmError, FileNotFoundError):
    """A dataset root (or a required part of it) does not exist."""


class CorruptFilesError(DatasetFileError):
    """One or more rasters that do not open or read; the message names every one.

    Attributes:
        messages: one message per file (``corrupt or unreadable GeoTIFF <path>: ...``).
    """

    def __init__(self, messages: Sequence[str]) -> None:
        self.messages = list(messages)
        if len(self.messages) == 1:
            text = self.messages[0]
        else:
            text = f"{len(self.messages)} corrupt or unreadable GeoTIFFs: " + "; ".join(self.messages)
        super().__init__(text)


class NoCoveredChipsError(RsmmError, ValueError):
    """None of a split's chips is covered by every requested modality."""


class CheckpointError(RsmmError, ValueError):
    """A checkpoint or export cannot be read, or cannot be used for this run."""


class ExportError(CheckpointError):
    """A checkpoint or export directory cannot be exported or loaded."""


class WeightsError(RsmmError, ValueError):
    """A weights file cannot be used for a backbone."""


class GridError(RsmmError, ValueError):
    """A results-grid spec or record that cannot be used."""


class DiskFullError(RsmmError, OSError):
    """The disk or the quota ran out while writing an output; the message names it."""
