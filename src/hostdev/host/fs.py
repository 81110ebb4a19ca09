"""HostFS: the only reader of /sys, /dev and /proc; every path hangs off an injected root.

Reads use the cheap calls measured in docs/benchmarks.md: os.open/os.read/os.close (no
text-mode open()), os.readlink + basename (never realpath), and directory fds with
``dir_fd=`` so the kernel resolves short relative names. Missing or unreadable files read as
None: sysfs entries vanish under us when devices are removed, and callers decide what a
missing value means.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hostdev.errors import HostReadError

_READ_SIZE = 65536
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_CLOEXEC


@dataclass(frozen=True)
class HostFS:
    """Roots of the three kernel trees hostdev reads; production uses /sys, /dev and /proc."""

    sys_root: Path = Path("/sys")
    dev_root: Path = Path("/dev")
    proc_root: Path = Path("/proc")

    @classmethod
    def under(cls, root: str | Path) -> HostFS:
        """A HostFS whose trees are root/sys, root/dev and root/proc (fake hosts, chroots)."""
        base = Path(root)
        return cls(base / "sys", base / "dev", base / "proc")

    def check(self) -> None:
        """Raise HostReadError when the sysfs root does not look like sysfs at all."""
        try:
            is_sysfs = (self.sys_root / "bus" / "pci").is_dir()
        except OSError as err:  # is_dir() says False only for a missing path
            raise HostReadError(f"cannot read {self.sys_root}: {err.strerror or err}") from err
        if not is_sysfs:
            raise HostReadError(f"{self.sys_root} is not a sysfs root: no bus/pci directory")

    def sys(self, *parts: str) -> str:
        """An absolute path under the sysfs root."""
        return os.path.join(self.sys_root, *parts)

    def dev(self, *parts: str) -> str:
        """An absolute path under the /dev root."""
        return os.path.join(self.dev_root, *parts)

    def proc(self, *parts: str) -> str:
        """An absolute path under the /proc root."""
        return os.path.join(self.proc_root, *parts)


def read_text(path: str, dir_fd: int | None = None) -> str | None:
    """The file's contents without the trailing newline, or None when it cannot be read."""
    try:
        fd = os.open(path, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        data = os.read(fd, _READ_SIZE)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data.decode("utf-8", "replace").rstrip("\n")


def read_many(names: tuple[str, ...], dir_fd: int) -> list[bytes | None]:
    """Several files' raw contents back to back (None for each unreadable one): one call."""
    contents: list[bytes | None] = []
    for name in names:
        try:
            fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
        except OSError:
            contents.append(None)
            continue
        try:
            contents.append(os.read(fd, _READ_SIZE))
        except OSError:
            contents.append(None)
        finally:
            os.close(fd)
    return contents


def link_name(path: str, dir_fd: int | None = None) -> str | None:
    """The last component of a symlink's target (driver → "vfio-pci"), or None."""
    try:
        target = os.readlink(path, dir_fd=dir_fd)
    except OSError:
        return None
    return target.rpartition("/")[2]


def link_target(path: str, dir_fd: int | None = None) -> str | None:
    """A symlink's raw target, or None."""
    try:
        return os.readlink(path, dir_fd=dir_fd)
    except OSError:
        return None


def list_dir(path: str, dir_fd: int | None = None) -> list[str]:
    """Directory entries, or an empty list when the directory is missing or unreadable."""
    try:
        if dir_fd is None:
            return os.listdir(path)
        fd = os.open(path, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError:
        return []
    try:
        return os.listdir(fd)
    except OSError:
        return []
    finally:
        os.close(fd)


def open_dir(path: str, dir_fd: int | None = None) -> int | None:
    """An O_DIRECTORY fd for relative reads, or None when the directory is gone."""
    try:
        return os.open(path, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError:
        return None


def kernel_number(text: str) -> int | None:
    """A decimal number the kernel wrote (a group, a virtfn index, a count), else None.

    ASCII digits only: str.isdigit() also accepts digits such as '²' that int() rejects.
    """
    return int(text) if text.isascii() and text.isdigit() else None


def exists(path: str) -> bool:
    """Whether a path exists (a dangling link counts as missing)."""
    return os.path.exists(path)


def walk_dirs(path: str, max_depth: int, skip: frozenset[str] = frozenset()) -> list[str]:
    """Real subdirectories of path down to max_depth levels, never following symlinks.

    os.scandir gives each entry's type from the directory listing (d_type), so no stat runs.
    """
    found: list[str] = []
    level = [path]
    for _ in range(max_depth):
        following: list[str] = []
        for parent in level:
            try:
                with os.scandir(parent) as entries:
                    following += [
                        e.path
                        for e in entries
                        if e.name not in skip and e.is_dir(follow_symlinks=False)
                    ]
            except OSError:
                continue
        found.extend(following)
        level = following
    return found
