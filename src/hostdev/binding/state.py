"""The binding state file: each device's original driver, recorded before hostdev touches it.

Format (JSON, version 1)::

    {"version": 1,
     "devices": {"0000:05:01.0": {"driver": "e1000", "driver_override": null,
                                  "vendor_device": "8086:100e", "companion_of": null,
                                  "command": "bind", "recorded_at": "2026-11-22T10:00:00Z",
                                  "noiommu": false}},
     "noiommu": {"previous": "N", "recorded_at": "2026-11-22T10:00:00Z"}}

The top-level "noiommu" (present only while hostdev keeps vfio's enable_unsafe_noiommu_mode on)
holds the parameter's value before a --noiommu bind turned it on (null: vfio was not loaded);
a record's "noiommu" says it was bound with --noiommu and so needs that mode.

Every save is atomic (a temporary file in the same directory, fsync, rename, fsync of the
directory), so a crash leaves either the old or the new file, never a torn one. A lock file
next to the state file (flock) serialises concurrent hostdev runs on one host.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hostdev.errors import ConfigError, HostdevError, StateFileError

DEFAULT_STATE_FILE = Path("/var/lib/hostdev/state.json")
STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """What a device looked like before hostdev first changed it."""

    driver: str | None
    driver_override: str | None
    vendor_device: str
    companion_of: str | None = None
    command: str = "bind"
    recorded_at: str = ""
    noiommu: bool = False  # bound with --noiommu: needs vfio's no-IOMMU mode while recorded

    @classmethod
    def from_json(cls, path: Path, address: str, raw: Any) -> DeviceRecord:
        """Validate one record read from the file."""
        if not isinstance(raw, dict):
            raise ConfigError(str(path), f"devices.{address}", "must be an object")
        for key in ("driver", "driver_override", "companion_of"):
            if raw.get(key) is not None and not isinstance(raw.get(key), str):
                raise ConfigError(str(path), f"devices.{address}.{key}", "must be a string or null")
        if not isinstance(raw.get("noiommu", False), bool):
            raise ConfigError(str(path), f"devices.{address}.noiommu", "must be true or false")
        return cls(
            raw.get("driver"),
            raw.get("driver_override"),
            str(raw.get("vendor_device", "")),
            raw.get("companion_of"),
            str(raw.get("command", "bind")),
            str(raw.get("recorded_at", "")),
            raw.get("noiommu", False),
        )


@dataclass(frozen=True, slots=True)
class NoiommuRecord:
    """vfio's enable_unsafe_noiommu_mode before a --noiommu bind turned it on."""

    previous: str | None  # None: vfio was not loaded (hostdev loaded it with the mode on)
    recorded_at: str = ""

    @classmethod
    def from_json(cls, path: Path, raw: Any) -> NoiommuRecord | None:
        """Validate the file's "noiommu" entry (absent or null: none)."""
        if raw is None:
            return None
        if not isinstance(raw, dict) or not isinstance(raw.get("previous", ""), str | None):
            raise ConfigError(str(path), "noiommu", 'must be {"previous": string or null}')
        return cls(raw.get("previous"), str(raw.get("recorded_at", "")))


class StateFile:
    """The records of one state file; `locked()` holds the lock while a run uses them."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.records: dict[str, DeviceRecord] = {}
        self.noiommu: NoiommuRecord | None = None

    def exists(self) -> bool:
        """Whether the file is there; a location that cannot be looked up is StateFileError."""
        try:
            self.path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as err:
            raise _unusable(self.path, "cannot look it up", err) from err
        return True

    @classmethod
    def read(cls, path: Path) -> StateFile:
        """The records as they are now, without the lock: for a dry run, which saves nothing."""
        state = cls(path)
        state.records, state.noiommu = load_state(state.path)
        return state

    @contextlib.contextmanager
    def locked(self, on_wait: Callable[[Path], None] | None = None) -> Iterator[StateFile]:
        """Take the lock (calling on_wait first when another run holds it), load the records,
        check that a save can succeed, and release the lock on exit; an unusable location
        fails here, before the caller changes anything."""
        self._ensure_dir()
        fd = self._open_lock()
        try:
            _take_lock(fd, Path(f"{self.path}.lock"), on_wait)
            self.records, self.noiommu = load_state(self.path)
            self._check_writable()
            yield self
        finally:
            os.close(fd)

    def add(
        self, records: Mapping[str, DeviceRecord], noiommu: NoiommuRecord | None = None
    ) -> list[str]:
        """Add records for devices not recorded yet (the first original wins) and the no-IOMMU
        mode's previous value (when none is kept yet), save, and return the addresses added."""
        fresh = {a: r for a, r in records.items() if a not in self.records}
        journal = noiommu is not None and self.noiommu is None
        if fresh or journal:
            self.records.update(fresh)
            self.noiommu = noiommu if journal else self.noiommu
            self.save()
        return list(fresh)

    def drop(self, addresses: list[str], *, noiommu: bool = False) -> None:
        """Forget devices (restored, or rolled back) and, with noiommu, the no-IOMMU mode's
        previous value (put back); save."""
        gone = [a for a in addresses if a in self.records]
        if gone or (noiommu and self.noiommu is not None):
            for address in gone:
                del self.records[address]
            self.noiommu = None if noiommu else self.noiommu
            self.save()

    def noiommu_needed(self, leaving: Collection[str] = ()) -> bool:
        """Whether a recorded device (other than those leaving) was bound with --noiommu."""
        return any(r.noiommu for a, r in self.records.items() if a not in leaving)

    def save(self) -> None:
        """Write every record atomically: temporary file, fsync, rename, fsync the directory."""
        body: dict[str, Any] = {
            "version": STATE_VERSION,
            "devices": {a: asdict(r) for a, r in sorted(self.records.items())},
        }
        if self.noiommu is not None:
            body["noiommu"] = asdict(self.noiommu)
        data = (json.dumps(body, indent=2) + "\n").encode()
        directory = self.path.parent
        fd, tmp = self._temporary_file()
        try:
            os.write(fd, data)
            os.fsync(fd)
            os.close(fd)
            os.replace(tmp, self.path)
        except OSError as err:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise HostdevError(f"cannot write the state file {self.path}: {err}") from err
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _ensure_dir(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        except FileExistsError as err:  # mkdir(exist_ok) says so when it is not a directory
            raise StateFileError(str(self.path), str(self.path.parent), "not a directory") from err
        except OSError as err:
            raise _unusable(self.path, f"cannot create {self.path.parent}", err) from err

    def _open_lock(self) -> int:
        lock = f"{self.path}.lock"
        try:
            return os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as err:
            raise _unusable(self.path, f"cannot open its lock file {lock}", err) from err

    def _temporary_file(self) -> tuple[int, str]:
        """A new file next to the state file (saves are renames of one into place)."""
        try:
            return tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        except OSError as err:
            where = f"cannot create a file in {self.path.parent}"
            raise _unusable(self.path, where, err) from err

    def _check_writable(self) -> None:
        fd, tmp = self._temporary_file()
        os.close(fd)
        os.unlink(tmp)


def _take_lock(fd: int, lock: Path, on_wait: Callable[[Path], None] | None) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        if on_wait is not None:
            on_wait(lock)
        fcntl.flock(fd, fcntl.LOCK_EX)


def _unusable(path: Path, what: str, err: OSError) -> StateFileError:
    return StateFileError(str(path), what, err.strerror or str(err))


def load_records(path: Path) -> dict[str, DeviceRecord]:
    """The device records of a state file; a missing file has none."""
    return load_state(path)[0]


def load_state(path: Path) -> tuple[dict[str, DeviceRecord], NoiommuRecord | None]:
    """The records of a state file; a missing file has none, a broken one is a ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, None
    except OSError as err:
        raise _unusable(path, "cannot read it", err) from err
    except UnicodeDecodeError as err:
        raise ConfigError(str(path), "", "not UTF-8 text, so not a state file") from err
    try:
        body = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(str(path), "", f"not JSON ({err.msg} at line {err.lineno})") from err
    if not isinstance(body, dict) or body.get("version") != STATE_VERSION:
        raise ConfigError(str(path), "version", f"must be {STATE_VERSION}")
    devices = body.get("devices", {})
    if not isinstance(devices, dict):
        raise ConfigError(str(path), "devices", "must be an object")
    records = {a: DeviceRecord.from_json(path, a, raw) for a, raw in devices.items()}
    return records, NoiommuRecord.from_json(path, body.get("noiommu"))


def now_utc() -> str:
    """The current time as an RFC 3339 UTC timestamp, for `recorded_at`."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
