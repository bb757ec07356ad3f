"""The package's error types, in a leaf module that imports nothing of the package, so that any module
can raise them without importing the one that once defined them.

Each is a ``ValueError`` whose message is one line; the command lines print it as ``error: <message>``
and exit 1, without a traceback. This module is their one home: import them from here.
"""

from __future__ import annotations

__all__ = ["CheckpointError", "ConfigError", "DataError", "ReportError"]


class ConfigError(ValueError):
    """A config value is invalid; the message is one line naming the key, the value and what is allowed."""


class CheckpointError(ValueError):
    """The file is missing, unreadable, or not a fer-attention checkpoint."""


class DataError(ValueError):
    """A dataset cannot be read as configured: a missing path, an unrecognised layout, a corrupt image, a
    bad CSV row, an unknown label. The message is one line naming the file (or path) and the reason."""


class ReportError(ValueError):
    """A report cannot be made as asked (no such row, seed, key or run); the message is one line naming
    what exists."""
