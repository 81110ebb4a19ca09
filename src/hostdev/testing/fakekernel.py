"""FakeKernelWriter: applies sysfs writes to a FakeHost the way the Linux kernel does.

Behaviour and errnos follow what a real 6.1 kernel showed (see docs/architecture.md):
driver_override sticks; unbind removes the driver link; drivers_probe binds a device to the
driver its override names (or leaves it driverless when that driver does not exist);
writing a wrong device to a driver's bind/unbind gives ENODEV; sriov_numvfs must go through 0
(EBUSY otherwise), may not exceed sriov_totalvfs (ERANGE) and needs a PF driver (ENOENT);
mdev create/remove move available_instances. `fail_on` (by path suffix) and `fail_at` (by
the index of the write) inject errors for rollback tests.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from hostdev.errors import HostWriteError
from hostdev.testing.fakehost import FakeHost

_ADDR = r"(?P<addr>[0-9a-f]{4,8}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7])"
_DEV = rf"(?:bus/pci/devices/{_ADDR}|devices/.*/{_ADDR.replace('addr', 'daddr')})"


def _fail(path: str, value: str, code: int) -> HostWriteError:
    return HostWriteError(path, value, code, os.strerror(code))


@dataclass
class FakeKernelWriter:
    """A HostWriter over a FakeHost whose writes have the kernel's effects and errors."""

    host: FakeHost
    writes: list[tuple[str, str]] = field(default_factory=list)
    fail_on: dict[str, int] = field(default_factory=dict)  # path suffix → errno to inject
    fail_at: dict[int, int] = field(default_factory=dict)  # index of a write → errno to inject

    def write(self, path: str, value: str) -> None:
        """Apply one write; raise HostWriteError as the kernel would refuse it."""
        index = len(self.writes)
        self.writes.append((path, value))
        if index in self.fail_at:
            raise _fail(path, value, self.fail_at[index])
        for suffix, code in self.fail_on.items():
            if path.endswith(suffix):
                raise _fail(path, value, code)
        rel = os.path.relpath(path, self.host.root / "sys")
        for pattern, handler in self._routes():
            match = re.fullmatch(pattern, rel)
            if match:
                groups = {k: v for k, v in match.groupdict().items() if v is not None}
                addr = groups.get("addr") or groups.get("daddr") or ""
                handler(self, path, value.strip(), addr, groups)
                return
        if not os.path.isfile(path):
            raise _fail(path, value, errno.ENOENT)
        with open(path, "w") as f:
            f.write(value if value.endswith("\n") else value + "\n")

    @staticmethod
    def _routes() -> list[tuple[str, Callable[..., None]]]:
        return [
            (rf"{_DEV}/driver_override", FakeKernelWriter._driver_override),
            (rf"{_DEV}/driver/unbind", FakeKernelWriter._driver_unbind),
            (r"bus/pci/drivers/(?P<drv>[^/]+)/unbind", FakeKernelWriter._unbind),
            (r"bus/pci/drivers/(?P<drv>[^/]+)/bind", FakeKernelWriter._bind),
            (r"bus/pci/drivers_probe", FakeKernelWriter._probe),
            (rf"{_DEV}/remove", FakeKernelWriter._remove),
            (rf"{_DEV}/reset", FakeKernelWriter._reset),
            (rf"{_DEV}/sriov_numvfs", FakeKernelWriter._numvfs),
            (rf"{_DEV}/mdev_supported_types/(?P<type>[^/]+)/create", FakeKernelWriter._mdev_create),
            (r"bus/mdev/devices/(?P<uuid>[^/]+)/remove", FakeKernelWriter._mdev_remove),
        ]

    def _known(self, path: str, value: str, addr: str) -> None:
        # a removed function's directory is gone with it: the open fails before any write
        if addr not in self.host.funcs:
            raise _fail(path, value, errno.ENOENT)

    def _driver_override(self, path: str, value: str, addr: str, _: dict[str, str]) -> None:
        self._known(path, value, addr)
        text = value if value else "(null)"
        (self.host.device_dir(addr) / "driver_override").write_text(text + "\n")

    def _driver_unbind(self, path: str, value: str, addr: str, _: dict[str, str]) -> None:
        driver = self.host.driver_of(addr)
        if driver is None:
            raise _fail(path, value, errno.ENOENT)
        self._unbind(path, value, "", {"drv": driver})

    def _unbind(self, path: str, value: str, _addr: str, groups: dict[str, str]) -> None:
        if value not in self.host.funcs or self.host.driver_of(value) != groups["drv"]:
            raise _fail(path, value, errno.ENODEV)
        self.host.unbind(value)

    def _override_of(self, addr: str) -> str | None:
        text = (self.host.device_dir(addr) / "driver_override").read_text().strip()
        return None if text == "(null)" else text

    def _bind(self, path: str, value: str, _addr: str, groups: dict[str, str]) -> None:
        drv = groups["drv"]
        if value not in self.host.funcs:
            raise _fail(path, value, errno.ENODEV)
        if self.host.driver_of(value) is not None:
            raise _fail(path, value, errno.EBUSY)
        override = self._override_of(value)
        if override is not None and override != drv:
            raise _fail(path, value, errno.ENODEV)
        self.host.bind(value, drv)

    def _probe(self, path: str, value: str, _addr: str, _: dict[str, str]) -> None:
        if value not in self.host.funcs:
            raise _fail(path, value, errno.ENODEV)
        override = self._override_of(value)
        if self.host.driver_of(value) is not None or override is None:
            return
        if (self.host.root / "sys/bus/pci/drivers" / override).is_dir():
            self.host.bind(value, override)

    def _remove(self, path: str, value: str, addr: str, _: dict[str, str]) -> None:
        self._known(path, value, addr)
        if value == "1":
            self.host.remove_device(addr)

    def _reset(self, path: str, value: str, addr: str, _: dict[str, str]) -> None:
        self._known(path, value, addr)
        if value != "1":
            raise _fail(path, value, errno.EINVAL)

    def _numvfs(self, path: str, value: str, addr: str, _: dict[str, str]) -> None:
        self._known(path, value, addr)
        pdir = self.host.device_dir(addr)
        try:
            wanted = int(value)
        except ValueError:
            raise _fail(path, value, errno.EINVAL) from None
        current = int((pdir / "sriov_numvfs").read_text())
        total = int((pdir / "sriov_totalvfs").read_text())
        if self.host.driver_of(addr) is None:
            raise _fail(path, value, errno.ENOENT)
        if wanted < 0 or wanted > total:
            raise _fail(path, value, errno.ERANGE)
        if wanted == current:
            return
        if current and wanted:
            raise _fail(path, value, errno.EBUSY)
        if wanted == 0:
            self.host.destroy_vfs(addr)
            return
        autoprobe = (pdir / "sriov_drivers_autoprobe").read_text().strip() == "1"
        vf_driver = self._vf_driver(addr) if autoprobe else None
        self.host.create_vfs(addr, wanted, driver=vf_driver)

    def _vf_driver(self, pf: str) -> str | None:
        """The driver autoprobe would give new VFs: the PF driver's VF sibling when loaded."""
        pf_driver = self.host.driver_of(pf) or ""
        candidates = {
            "igb": "igbvf",
            "ixgbe": "ixgbevf",
            "i40e": "iavf",
            "ice": "iavf",
            "nvme": "nvme",
            "mlx5_core": "mlx5_core",
        }
        vf_driver = candidates.get(pf_driver)
        drivers = self.host.root / "sys/bus/pci/drivers"
        return vf_driver if vf_driver and (drivers / vf_driver).is_dir() else None

    def _mdev_create(self, path: str, value: str, addr: str, groups: dict[str, str]) -> None:
        self._known(path, value, addr)
        tdir = self.host.device_dir(addr) / "mdev_supported_types" / groups["type"]
        if not tdir.is_dir():  # the type went away (its parent's driver was unloaded)
            raise _fail(path, value, errno.ENOENT)
        if not re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", value):
            raise _fail(path, value, errno.EINVAL)
        if (self.host.root / "sys/bus/mdev/devices" / value).exists():
            raise _fail(path, value, errno.EEXIST)
        if int((tdir / "available_instances").read_text()) <= 0:
            raise _fail(path, value, errno.ENOSPC)
        self.host.add_mdev(addr, groups["type"], value)

    def _mdev_remove(self, path: str, value: str, _addr: str, groups: dict[str, str]) -> None:
        if not (self.host.root / "sys/bus/mdev/devices" / groups["uuid"]).exists():
            raise _fail(path, value, errno.ENOENT)
        if value == "1":
            self.host.remove_mdev(groups["uuid"])
