"""The node around the devices in a fake host: kernel command line, CPU, IOMMU, modules, drivers,
and what the binding guards look at (routes, addresses, mounts, swap, consoles).

NodeTree owns the file primitives the fake-host builder (hostdev.testing.fakehost) is made
of, and the host-wide facts that need no PCI function; FakeHost adds the functions.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Self

from hostdev.host.model import VFIO_PCI

_DRIVER_FILES = ("bind", "unbind", "new_id", "remove_id", "uevent")
_ROUTE_HEADER = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT"
_SWAPS_HEADER = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority"


class NodeTree:
    """Files and links under a fake host's root, and the node-wide facts written there."""

    root: Path

    def _put(self, rel: str, text: str) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n" if text else "")

    def _link(self, rel: str, target: str) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink() or path.exists():
            path.unlink()
        path.symlink_to(target)

    def set_cmdline(self, text: str) -> Self:
        """Write /proc/cmdline."""
        self._put("proc/cmdline", text)
        return self

    def set_cpu_vendor(self, vendor_id: str) -> Self:
        """Write a minimal /proc/cpuinfo (GenuineIntel or AuthenticAMD)."""
        self._put(
            "proc/cpuinfo", f"processor\t: 0\nvendor_id\t: {vendor_id}\nmodel name\t: Example CPU\n"
        )
        return self

    def add_iommu(self, vendor: str = "intel", *, intremap: bool = True, unit: int = 0) -> Self:
        """Create /sys/class/iommu/dmarN (Intel, ecap bit 3 = interrupt remapping) or ivhdN."""
        name = f"dmar{unit}" if vendor == "intel" else f"ivhd{unit}"
        self._link(f"sys/class/iommu/{name}", f"../../devices/virtual/iommu/{name}")
        if vendor == "intel":
            ecap = "f00f4a" if intremap else "f00f42"
            self._put(f"sys/devices/virtual/iommu/{name}/intel-iommu/ecap", ecap)
            self._put(f"sys/devices/virtual/iommu/{name}/intel-iommu/cap", "d2008c22260286")
            self._put(f"sys/devices/virtual/iommu/{name}/intel-iommu/version", "1:0")
        else:
            self._put(f"sys/devices/virtual/iommu/{name}/amd-iommu/features", "25bf732fa2295afe")
        return self

    def load_module(self, name: str, **params: str) -> Self:
        """Create /sys/module/<name> with parameters; vfio creates /dev/vfio/vfio."""
        (self.root / "sys/module" / name).mkdir(parents=True, exist_ok=True)
        for key, value in params.items():
            self._put(f"sys/module/{name}/parameters/{key}", value)
        if name == "vfio":
            self._put("dev/vfio/vfio", "")
        return self

    def load_vfio(self, **vfio_pci_params: str) -> Self:
        """Load vfio, vfio_iommu_type1 and vfio_pci the way `modprobe vfio-pci` does."""
        self.load_module("vfio", enable_unsafe_noiommu_mode="N")
        self.load_module(
            "vfio_iommu_type1",
            allow_unsafe_interrupts="N",
            disable_hugepages="N",
            dma_entry_limit="65535",
        )
        params = {
            "disable_denylist": "N",
            "disable_idle_d3": "N",
            "disable_vga": "N",
            "enable_sriov": "N",
            "nointxmask": "N",
            **vfio_pci_params,
        }
        self.load_module("vfio_pci", **params)
        self.add_driver(VFIO_PCI, module="vfio_pci")
        return self

    def add_driver(self, name: str, module: str | None = None) -> Self:
        """Create /sys/bus/pci/drivers/<name> with bind/unbind/new_id/remove_id."""
        base = f"sys/bus/pci/drivers/{name}"
        for f in _DRIVER_FILES:
            if not (self.root / base / f).exists():
                self._put(f"{base}/{f}", "")
        mod = module or name.replace("-", "_")
        (self.root / "sys/module" / mod).mkdir(parents=True, exist_ok=True)
        self._link(f"{base}/module", f"../../../../module/{mod}")
        return self

    def set_operstate(self, ifname: str, operstate: str) -> Self:
        """Set an interface's operstate ("up", "down", "unknown")."""
        target = os.readlink(self.root / "sys/class/net" / ifname)
        self._put(os.path.normpath(f"sys/class/net/{target}") + "/operstate", operstate)
        return self

    def add_route(
        self,
        ifname: str,
        destination: str = "00000000",
        gateway: str = "0100A8C0",
        mask: str = "00000000",
    ) -> Self:
        """Append an IPv4 route to /proc/net/route (hex fields, little-endian, as the kernel)."""
        self._append(
            "proc/net/route",
            _ROUTE_HEADER,
            f"{ifname}\t{destination}\t{gateway}\t0003\t0\t0\t100\t{mask}\t0\t0\t0",
        )
        return self

    def add_inet6(
        self, ifname: str, address: str = "20010db8000000000000000000000001", *, scope: str = "00"
    ) -> Self:
        """Append an IPv6 address to /proc/net/if_inet6 (hex address, index, plen, scope, name).

        Scope "00" is global, "20" link-local (every interface that is up has one).
        """
        self._append("proc/net/if_inet6", None, f"{address} 02 40 {scope} 80 {ifname:>8}")
        return self

    def add_mount(
        self, source: str, target: str, fstype: str = "ext4", *, pid: str = "self"
    ) -> Self:
        """Append a line to /proc/<pid>/mounts ("self": ours; "1": init's, the host's)."""
        self._append(f"proc/{pid}/mounts", None, f"{source} {target} {fstype} rw,relatime 0 0")
        return self

    def add_swap(self, source: str) -> Self:
        """Append an active swap area to /proc/swaps."""
        self._append("proc/swaps", _SWAPS_HEADER, f"{source}\tpartition\t8388604\t0\t-2")
        return self

    def add_framebuffer(self, name: str = "fb0", driver_name: str = "EFI VGA") -> Self:
        """Create /sys/class/graphics/<name> (an active framebuffer)."""
        self._put(f"sys/devices/virtual/graphics/{name}/name", driver_name)
        self._link(f"sys/class/graphics/{name}", f"../../devices/virtual/graphics/{name}")
        return self

    def add_vtconsole(
        self, name: str = "vtcon1", *, bind: int = 1, description: str = "(M) frame buffer device"
    ) -> Self:
        """Create /sys/class/vtconsole/<name> with bind and name files."""
        self._put(f"sys/devices/virtual/vtconsole/{name}/bind", str(bind))
        self._put(f"sys/devices/virtual/vtconsole/{name}/name", description)
        self._link(f"sys/class/vtconsole/{name}", f"../../devices/virtual/vtconsole/{name}")
        return self

    def _append(self, rel: str, header: str | None, line: str) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        text = path.read_text() if path.exists() else (header + "\n" if header else "")
        path.write_text(text + line + "\n")
