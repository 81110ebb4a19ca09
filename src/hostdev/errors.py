"""The error hierarchy: every error a user can see is a HostdevError with one clear line.

Policy: helpers raise a typed error (chained with ``from err``); only the boundary (the CLI
entry point, an RPC handler, the daemon's main loop) logs or prints it, exactly once.
"""

from __future__ import annotations


class HostdevError(Exception):
    """Base of every error hostdev reports to a user."""

    exit_code = 1


class BadInputError(HostdevError):
    """The user gave something we cannot use (a path, a selector, an address)."""

    exit_code = 2


class ConfigError(BadInputError):
    """A configuration file is invalid: names the file, the field and the reason."""

    def __init__(self, file: str, field: str, reason: str) -> None:
        self.file = file
        self.field = field
        self.reason = reason
        where = f"{file}: {field}" if field else file
        super().__init__(f"{where}: {reason}")


class HostReadError(HostdevError):
    """The host could not be read (a missing or unusable sysfs root)."""

    exit_code = 2


class HostWriteError(HostdevError):
    """A write to sysfs failed; carries the path, the value and the kernel's errno."""

    def __init__(self, path: str, value: str, errno: int, reason: str) -> None:
        self.path = path
        self.value = value
        self.errno = errno
        self.reason = reason
        super().__init__(f"writing {value!r} to {path} failed: {reason}")


class DeviceNotFoundError(BadInputError):
    """A device named by the user does not exist on this host."""


class StateFileError(BadInputError):
    """The state file's location cannot be used: names the path, what failed and why."""

    def __init__(self, path: str, what: str, reason: str) -> None:
        self.path = path
        super().__init__(
            f"cannot use the state file {path}: {what}: {reason}; use --state-file PATH"
        )
