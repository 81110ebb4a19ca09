"""The fake-host builder: realistic sysfs, /dev and /proc trees in a directory.

File names, contents and symlink shapes follow what a real kernel shows
(docs/real-kernel-notes in the reference: `0x`-prefixed hex, trailing newlines, `(null)`
driver_override, uevent with upper-case IDs and PCI_CLASS without leading zeros,
`driver -> ../../../bus/pci/drivers/X` whose depth grows with the bridges above a device).
Writes that the kernel would act on are emulated by `hostdev.testing.fakekernel`, which uses
the primitives here (bind, unbind, add and remove functions) so both stay consistent.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from hostdev.host.fs import HostFS
from hostdev.host.model import PciAddress, is_vfio_driver
from hostdev.testing.fakenode import NodeTree


@dataclass
class _Func:
    """What the builder remembers of a function it created."""

    address: str
    path: str  # relative to sys/, e.g. devices/pci0000:00/0000:00:03.0/0000:01:00.0
    group: int | None


@dataclass
class FakeHost(NodeTree):
    """A fake host rooted at `root` (root/sys, root/dev, root/proc)."""

    root: Path
    cdev: bool = False  # expose /dev/vfio/devices/vfioN and /dev/iommu (kernel 6.6+)
    funcs: dict[str, _Func] = field(default_factory=dict)
    # "DDDD:BB" → the directory of a root bus that is not a host bridge's (a VMD domain's)
    roots: dict[str, str] = field(default_factory=dict)
    _next_cdev: int = 0

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        for d in (
            "sys/bus/pci/devices",
            "sys/bus/pci/drivers",
            "sys/bus/mdev/devices",
            "sys/kernel/iommu_groups",
            "sys/module",
            "sys/class/iommu",
            "sys/class/net",
            "sys/class/mdev_bus",
            "sys/devices/virtual/iommu",
            "dev/vfio",
            "proc",
        ):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        self._put("sys/bus/pci/drivers_probe", "")
        self._put("sys/bus/pci/rescan", "")
        self._put("sys/bus/pci/drivers_autoprobe", "1")
        if not (self.root / "proc/cmdline").exists():
            self._put("proc/cmdline", "BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro quiet")
            self.set_cpu_vendor("GenuineIntel")
        if self.cdev:
            self._put("dev/iommu", "")

    @property
    def fs(self) -> HostFS:
        """The HostFS that reads this fake host."""
        return HostFS.under(self.root)

    # -- low-level helpers -------------------------------------------------------------
    @staticmethod
    def _up(rel_dir: str) -> str:
        """The ../ prefix that climbs from a directory under sys/ back to sys/."""
        return "../" * (rel_dir.count("/") + 1)

    def _func(self, address: str) -> _Func:
        try:
            return self.funcs[address]
        except KeyError:
            raise KeyError(f"fake host has no device {address}") from None

    def device_dir(self, address: str) -> Path:
        """The real directory of a function (sys/devices/...)."""
        return self.root / "sys" / self._func(address).path

    # -- devices -----------------------------------------------------------------------
    def add_device(
        self,
        address: str,
        vendor: str,
        device: str,
        class_code: str,
        *,
        subsystem: tuple[str, str] = ("0000", "0000"),
        revision: str = "00",
        driver: str | None = None,
        iommu_group: int | None = None,
        numa_node: int = -1,
        parent: str | None = None,
        netdevs: tuple[str, ...] = (),
        _parent_dir: str | None = None,
    ) -> FakeHost:
        """Create one PCI function with every attribute file and link the kernel makes."""
        addr = str(PciAddress.parse(address))
        if _parent_dir is None:
            root = self.roots.get(addr[:-5], f"devices/pci{addr[:-8]}:{addr[-7:-5]}")
            _parent_dir = self._func(parent).path if parent else root
        rel = f"{_parent_dir}/{addr}"
        self.funcs[addr] = _Func(addr, rel, iommu_group)
        base = f"sys/{rel}"
        attrs = {
            "vendor": f"0x{vendor}",
            "device": f"0x{device}",
            "subsystem_vendor": f"0x{subsystem[0]}",
            "subsystem_device": f"0x{subsystem[1]}",
            "class": f"0x{class_code}",
            "revision": f"0x{revision}",
            "numa_node": str(numa_node),
            "driver_override": "(null)",
            "enable": "1",
            "irq": "16",
            "local_cpulist": "0-1",
            "d3cold_allowed": "1",
            "reset": "",
            "remove": "",
            "rescan": "",
            "config": "",
            "modalias": _modalias(vendor, device, subsystem, class_code),
        }
        for name, value in attrs.items():
            self._put(f"{base}/{name}", value)
        self._link(f"{base}/subsystem", self._up(rel) + "bus/pci")
        self._link(f"sys/bus/pci/devices/{addr}", f"../../../{rel}")
        if iommu_group is not None:
            self._join_group(addr, iommu_group)
        for ifname in netdevs:
            self.add_netdev(addr, ifname)
        self.write_uevent(addr, driver)
        if driver:
            self.bind(addr, driver)
        return self

    def _join_group(self, addr: str, group: int) -> None:
        rel = self._func(addr).path
        gdir = f"sys/kernel/iommu_groups/{group}"
        if not (self.root / gdir / "type").exists():
            self._put(f"{gdir}/type", "identity")
            self._put(f"{gdir}/reserved_regions", "0x00000000fee00000 0x00000000feefffff msi")
        (self.root / gdir / "devices").mkdir(parents=True, exist_ok=True)
        self._link(f"{gdir}/devices/{addr}", f"../../../../{rel}")
        self._link(f"sys/{rel}/iommu_group", self._up(rel) + f"kernel/iommu_groups/{group}")
        self._link(f"sys/{rel}/iommu", self._up(rel) + "devices/virtual/iommu/dmar0")

    def add_netdev(self, address: str, ifname: str, *, operstate: str = "down") -> FakeHost:
        """Give a function a network interface (device/net/<if> and /sys/class/net/<if>)."""
        rel = self._func(address).path
        self._put(f"sys/{rel}/net/{ifname}/operstate", operstate)
        self._put(f"sys/{rel}/net/{ifname}/address", "52:54:00:12:34:56")
        self._put(f"sys/{rel}/net/{ifname}/flags", "0x1002")
        self._link(f"sys/class/net/{ifname}", f"../../{rel}/net/{ifname}")
        return self

    def set_aer_fatal(self, address: str, counts: dict[str, int]) -> FakeHost:
        """Write aer_dev_fatal as the kernel shows it: "<kind> <n>" lines, then the total."""
        kinds = (
            "Undefined",
            "Data Link Protocol",
            "Surprise Down Error",
            "Poisoned TLP",
            "Flow Control Protocol",
            "Completion Timeout",
            "Completer Abort",
            "Unexpected Completion",
            "Receiver Overflow",
            "Malformed TLP",
            "ECRC",
            "Unsupported Request",
            "ACS Violation",
            "Uncorrectable Internal Error",
            "MC Blocked TLP",
            "AtomicOp Egress Blocked",
            "TLP Prefix Blocked Error",
        )
        lines = [f"{kind} {counts.get(kind, 0)}" for kind in kinds]
        lines.append(f"TOTAL_ERR_FATAL {sum(counts.values())}")
        self._put(f"sys/{self._func(address).path}/aer_dev_fatal", "\n".join(lines))
        return self

    def add_block(
        self,
        address: str,
        name: str,
        *,
        nvme: bool = False,
        partitions: tuple[str, ...] = (),
        holders: tuple[str, ...] = (),
    ) -> FakeHost:
        """A block device of a function (block/<name> or nvme/nvmeX/<name>), partitions, holders."""
        rel = self._func(address).path
        controller = re.sub(r"n\d+$", "", name)  # nvme0n1 → nvme0
        base = f"sys/{rel}/nvme/{controller}/{name}" if nvme else f"sys/{rel}/block/{name}"
        self._put(f"{base}/size", "209715200")
        (self.root / base / "holders").mkdir(parents=True, exist_ok=True)
        for part in partitions:
            self._put(f"{base}/{part}/partition", part[len(name) :].lstrip("p") or "1")
            (self.root / base / part / "holders").mkdir(exist_ok=True)
        for holder in holders:
            self._link(f"{base}/holders/{holder}", f"../../../../../virtual/block/{holder}")
        self._link(f"sys/class/block/{name}", "../../" + base.removeprefix("sys/"))
        return self

    def set_boot_vga(self, address: str, value: int = 1) -> FakeHost:
        """Write boot_vga (the firmware's console device has 1)."""
        self._put(f"sys/{self._func(address).path}/boot_vga", str(value))
        return self

    def add_bridge(
        self,
        address: str,
        *,
        vendor: str = "1b36",
        device: str = "000c",
        class_code: str = "060400",
        driver: str | None = "pcieport",
        iommu_group: int | None = None,
        parent: str | None = None,
    ) -> FakeHost:
        """A PCI bridge or root port (pcieport by default)."""
        if driver:
            self.add_driver(driver)
        return self.add_device(
            address,
            vendor,
            device,
            class_code,
            driver=driver,
            iommu_group=iommu_group,
            parent=parent,
        )

    def add_vmd(
        self,
        address: str,
        *,
        domain: str = "10000",
        bus: str = "e0",
        iommu_group: int | None = None,
    ) -> FakeHost:
        """An Intel VMD controller on the vmd driver; its PCI domain's root bus (domain:bus)
        hangs below it (.../0000:00:0e.0/pci10000:e0/), where later functions of it go."""
        self.add_device(address, "8086", "467f", "010400", driver="vmd", iommu_group=iommu_group)
        self.roots[f"{domain}:{bus}"] = f"{self._func(address).path}/pci{domain}:{bus}"
        return self

    def write_uevent(self, address: str, driver: str | None) -> None:
        """Rewrite uevent the way the kernel shows it (DRIVER only when bound)."""
        base = f"sys/{self._func(address).path}"
        attr = {
            n: (self.root / base / n).read_text().strip()
            for n in ("vendor", "device", "subsystem_vendor", "subsystem_device", "class")
        }
        hexid = {k: v.removeprefix("0x") for k, v in attr.items()}
        lines = [f"DRIVER={driver}"] if driver else []
        lines += [
            f"PCI_CLASS={int(attr['class'], 16):X}",
            f"PCI_ID={hexid['vendor'].upper()}:{hexid['device'].upper()}",
            f"PCI_SUBSYS_ID={hexid['subsystem_vendor'].upper()}:"
            f"{hexid['subsystem_device'].upper()}",
            f"PCI_SLOT_NAME={address}",
            "MODALIAS=" + (self.root / base / "modalias").read_text().strip(),
        ]
        self._put(f"{base}/uevent", "\n".join(lines))

    def driver_of(self, address: str) -> str | None:
        """The driver a function is bound to, or None."""
        link = self.device_dir(address) / "driver"
        return os.readlink(link).rpartition("/")[2] if link.is_symlink() else None

    def bind(self, address: str, driver: str) -> None:
        """Bind as the kernel does: driver link, driver dir entry, uevent, vfio nodes."""
        self.add_driver(driver)
        func = self._func(address)
        self._link(f"sys/{func.path}/driver", self._up(func.path) + f"bus/pci/drivers/{driver}")
        self._link(f"sys/bus/pci/drivers/{driver}/{address}", f"../../../../{func.path}")
        self.write_uevent(address, driver)
        if is_vfio_driver(driver):
            self._attach_vfio(func)

    def unbind(self, address: str) -> None:
        """Unbind as the kernel does; /dev/vfio/<group> goes when its last vfio member goes."""
        func = self._func(address)
        driver = self.driver_of(address)
        if driver is None:
            return
        (self.root / "sys" / func.path / "driver").unlink()
        (self.root / f"sys/bus/pci/drivers/{driver}/{address}").unlink(missing_ok=True)
        self.write_uevent(address, None)
        if is_vfio_driver(driver):
            self._detach_vfio(func)

    def _attach_vfio(self, func: _Func) -> None:
        cdev = f"vfio{self._next_cdev}"
        self._next_cdev += 1
        self._put(f"sys/{func.path}/vfio-dev/{cdev}/uevent", "")  # 6.1+; a node needs cdevs (6.6+)
        if self.cdev:
            self._expose_cdev(func, cdev)
        if func.group is not None:
            self._put(f"dev/vfio/{func.group}", "")

    def _expose_cdev(self, func: _Func, cdev: str) -> None:
        self._put(f"sys/{func.path}/vfio-dev/{cdev}/dev", f"511:{cdev[4:]}")
        self._put(f"dev/vfio/devices/{cdev}", "")

    def add_vfio_cdevs(self) -> FakeHost:
        """The host on a 6.6+ kernel: /dev/iommu and a char device per vfio-pci device."""
        self.cdev = True
        self._put("dev/iommu", "")
        for func in self.funcs.values():
            vdir = self.root / "sys" / func.path / "vfio-dev"
            for cdev in os.listdir(vdir) if vdir.exists() else ():
                self._expose_cdev(func, cdev)
        return self

    def _detach_vfio(self, func: _Func) -> None:
        vdir = self.root / "sys" / func.path / "vfio-dev"
        for cdev in os.listdir(vdir) if vdir.exists() else ():
            (self.root / "dev/vfio/devices" / cdev).unlink(missing_ok=True)
        shutil.rmtree(vdir, ignore_errors=True)
        if func.group is None:
            return
        still = [
            f
            for f in self.funcs.values()
            if f.group == func.group and is_vfio_driver(self.driver_of(f.address))
        ]
        if not still:
            (self.root / f"dev/vfio/{func.group}").unlink(missing_ok=True)

    def remove_device(self, address: str) -> None:
        """Remove a function as `echo 1 > remove` does (VFs of a PF go with it)."""
        func = self._func(address)
        for vf in self.vfs_of(address):
            self.remove_device(vf)
        self.unbind(address)
        for ifname in (
            os.listdir(self.device_dir(address) / "net")
            if (self.device_dir(address) / "net").exists()
            else ()
        ):
            (self.root / "sys/class/net" / ifname).unlink(missing_ok=True)
        (self.root / "sys/bus/pci/devices" / address).unlink()
        if func.group is not None:
            gdir = self.root / f"sys/kernel/iommu_groups/{func.group}"
            (gdir / "devices" / address).unlink(missing_ok=True)
            if not any((gdir / "devices").iterdir()):
                shutil.rmtree(gdir)
        shutil.rmtree(self.root / "sys" / func.path)
        del self.funcs[address]

    # -- SR-IOV ------------------------------------------------------------------------
    def add_pf(
        self,
        address: str,
        vendor: str,
        device: str,
        class_code: str,
        *,
        total_vfs: int,
        vf_device: str,
        num_vfs: int = 0,
        vf_driver: str | None = None,
        first_vf_group: int | None = None,
        offset: int = 1,
        stride: int = 1,
        **kwargs: object,
    ) -> FakeHost:
        """A physical function with SR-IOV attributes, and num_vfs VFs created at once."""
        self.add_device(address, vendor, device, class_code, **kwargs)  # type: ignore[arg-type]
        base = f"sys/{self._func(address).path}"
        for name, value in (
            ("sriov_totalvfs", total_vfs),
            ("sriov_numvfs", 0),
            ("sriov_offset", offset),
            ("sriov_stride", stride),
            ("sriov_vf_device", vf_device),
            ("sriov_drivers_autoprobe", 1),
            ("sriov_vf_total_msix", 0),
        ):
            self._put(f"{base}/{name}", str(value))
        if num_vfs:
            self.create_vfs(address, num_vfs, driver=vf_driver, first_group=first_vf_group)
        return self

    def vfs_of(self, address: str) -> list[str]:
        """VF addresses of a PF, in virtfn order."""
        return list(self.vf_links(address).values())

    def vf_links(self, address: str) -> dict[int, str]:
        """A PF's virtfnN links in order: N → VF address."""
        pdir = self.device_dir(address)
        indexes = sorted(int(n[6:]) for n in os.listdir(pdir) if n.startswith("virtfn"))
        return {i: os.readlink(pdir / f"virtfn{i}").rpartition("/")[2] for i in indexes}

    def create_vfs(
        self, pf: str, count: int, *, driver: str | None = None, first_group: int | None = None
    ) -> list[str]:
        """Create VFs the way the kernel does on `echo N > sriov_numvfs`."""
        pdir = self.device_dir(pf)
        pf_addr = PciAddress.parse(pf)
        vendor = (pdir / "vendor").read_text().strip()[2:]
        vf_device = (pdir / "sriov_vf_device").read_text().strip()
        class_code = (pdir / "class").read_text().strip()[2:]
        offset = int((pdir / "sriov_offset").read_text())
        stride = int((pdir / "sriov_stride").read_text())
        numa = int((pdir / "numa_node").read_text())
        group = first_group if first_group is not None else self._next_group()
        parent_dir = str(Path(self._func(pf).path).parent)
        created = []
        for index in range(count):
            routing = (pf_addr.slot << 3 | pf_addr.function) + offset + index * stride
            vf = str(
                PciAddress(
                    pf_addr.domain, pf_addr.bus + (routing >> 8), (routing >> 3) & 0x1F, routing & 7
                )
            )
            self.add_device(
                vf,
                vendor,
                vf_device,
                class_code,
                iommu_group=group + index,
                numa_node=numa,
                driver=driver,
                _parent_dir=parent_dir,
            )
            self._link(f"sys/{self._func(vf).path}/physfn", f"../{pf}")
            self._link(f"sys/{self._func(pf).path}/virtfn{index}", f"../{vf}")
            created.append(vf)
        self._put(f"sys/{self._func(pf).path}/sriov_numvfs", str(count))
        return created

    def destroy_vfs(self, pf: str) -> None:
        """Remove every VF of a PF, as `echo 0 > sriov_numvfs` does."""
        for index in self.vf_links(pf):
            self.remove_vf(pf, index)
        self._put(f"sys/{self._func(pf).path}/sriov_numvfs", "0")

    def remove_vf(self, pf: str, index: int) -> None:
        """Remove VF virtfn<index> and its link, one step of the kernel's VF teardown (which
        goes from virtfn0 up, so a scan mid-teardown sees the links from some N on)."""
        self.remove_device(self.vf_links(pf)[index])
        (self.device_dir(pf) / f"virtfn{index}").unlink()

    def _next_group(self) -> int:
        groups = [int(g) for g in os.listdir(self.root / "sys/kernel/iommu_groups")]
        return max(groups, default=-1) + 1

    # -- mediated devices --------------------------------------------------------------
    def add_mdev_type(
        self,
        parent: str,
        type_id: str,
        name: str,
        *,
        available: int,
        device_api: str = "vfio-pci",
        description: str = "",
    ) -> FakeHost:
        """Offer an mdev type on a parent (mdev_supported_types/<type_id>/...)."""
        base = f"sys/{self._func(parent).path}"
        tdir = f"{base}/mdev_supported_types/{type_id}"
        for fname, value in (
            ("name", name),
            ("available_instances", str(available)),
            ("device_api", device_api),
            ("description", description),
            ("create", ""),
        ):
            self._put(f"{tdir}/{fname}", value)
        (self.root / tdir / "devices").mkdir(exist_ok=True)
        self._link(f"sys/class/mdev_bus/{parent}", f"../../{self._func(parent).path}")
        return self

    def add_mdev(self, parent: str, type_id: str, uuid: str) -> int:
        """Create an mdev as a write of its UUID to `create` does; returns its group."""
        prel = self._func(parent).path
        tdir = self.root / "sys" / prel / "mdev_supported_types" / type_id
        rel = f"{prel}/{uuid}"
        group = self._next_group()
        self._put(f"sys/{rel}/remove", "")
        self._link(f"sys/{rel}/mdev_type", f"../mdev_supported_types/{type_id}")
        self._link(f"sys/{rel}/iommu_group", self._up(rel) + f"kernel/iommu_groups/{group}")
        self._put(f"sys/kernel/iommu_groups/{group}/type", "DMA")
        self._link(f"sys/kernel/iommu_groups/{group}/devices/{uuid}", f"../../../../{rel}")
        self._link(f"sys/bus/mdev/devices/{uuid}", f"../../../{rel}")
        self._link(f"{tdir.relative_to(self.root)}/devices/{uuid}", f"../../../{uuid}")
        available = int((tdir / "available_instances").read_text())
        (tdir / "available_instances").write_text(f"{available - 1}\n")
        self._put(f"dev/vfio/{group}", "")
        return group

    def remove_mdev(self, uuid: str) -> None:
        """Remove an mdev as `echo 1 > remove` does; available_instances goes back up."""
        link = self.root / "sys/bus/mdev/devices" / uuid
        rel = os.path.normpath(os.path.join("bus/mdev/devices", os.readlink(link)))
        mdir = self.root / "sys" / rel
        tdir = (mdir / os.readlink(mdir / "mdev_type")).resolve()
        group = os.readlink(mdir / "iommu_group").rpartition("/")[2]
        available = int((tdir / "available_instances").read_text())
        (tdir / "available_instances").write_text(f"{available + 1}\n")
        (tdir / "devices" / uuid).unlink()
        link.unlink()
        shutil.rmtree(self.root / f"sys/kernel/iommu_groups/{group}")
        (self.root / f"dev/vfio/{group}").unlink(missing_ok=True)
        shutil.rmtree(mdir)


def _modalias(vendor: str, device: str, subsystem: tuple[str, str], class_code: str) -> str:
    cls = class_code.upper()
    return (
        f"pci:v0000{vendor.upper()}d0000{device.upper()}sv0000{subsystem[0].upper()}"
        f"sd0000{subsystem[1].upper()}bc{cls[0:2]}sc{cls[2:4]}i{cls[4:6]}"
    )
