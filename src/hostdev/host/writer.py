"""The writer seam: the only code that writes to sysfs (and the only one tests replace).

`SysfsWriter` writes for real; `RecordingWriter` records what would be written (--dry-run);
`hostdev.testing.fakekernel.FakeKernelWriter` applies the writes to a fake host the way the
kernel would. Callers build absolute paths with `HostFS.sys(...)`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Protocol

from hostdev.errors import HostWriteError


class HostWriter(Protocol):
    """Something that writes one value to one sysfs attribute."""

    def write(self, path: str, value: str) -> None:
        """Write value to path; raise HostWriteError with the kernel's errno on failure."""


class SysfsWriter:
    """Writes to the real sysfs with a single write(2), as `echo value > path` does."""

    def write(self, path: str, value: str) -> None:
        """Write value to path; raise HostWriteError with the kernel's errno on failure."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except OSError as err:
            raise HostWriteError(path, value, err.errno or 0, err.strerror or str(err)) from err
        try:
            os.write(fd, value.encode())
        except OSError as err:
            raise HostWriteError(path, value, err.errno or 0, err.strerror or str(err)) from err
        finally:
            os.close(fd)


@dataclass
class RecordingWriter:
    """Records writes instead of doing them (--dry-run); optionally passes them on."""

    inner: HostWriter | None = None
    writes: list[tuple[str, str]] = field(default_factory=list)

    def write(self, path: str, value: str) -> None:
        """Record the write, then hand it to the inner writer if there is one."""
        self.writes.append((path, value))
        if self.inner is not None:
            self.inner.write(path, value)
