"""Paths named by a user: directories made ready with one-line errors.

A file where a directory belongs, a directory that cannot be created, or a path that cannot
be looked up becomes one BadInputError line naming the path (exit 2), never an OSError.
"""

from __future__ import annotations

import os
from pathlib import Path

from hostdev.errors import BadInputError


def ensure_directory(path: Path, what: str) -> None:
    """Create a directory (and its parents) unless it exists; `what` names it in errors."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError as err:
        raise BadInputError(f"cannot use {path} as {what}: not a directory") from err
    except OSError as err:
        raise BadInputError(f"cannot create {what} {path}: {err.strerror or err}") from err


def stat_or_none(path: Path, what: str) -> os.stat_result | None:
    """The path's stat, or None when nothing is there; a path that cannot be looked up (no
    permission on a directory above it, a name too long) is BadInputError."""
    try:
        return path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as err:
        raise BadInputError(f"cannot use {path} as {what}: {err.strerror or err}") from err
