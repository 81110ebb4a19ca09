"""Paths named by a user: directories made ready with one-line errors.

A file where a directory belongs, or a directory that cannot be created, becomes one
BadInputError line naming the path (exit 2), never an OSError.
"""

from __future__ import annotations

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
