"""`hostdev render KIND`: print the files that bind devices to vfio-pci at boot (and, through
render_kubevirt, the permittedHostDevices block of the KubeVirt or HyperConverged CR).

Kinds: modprobe (/etc/modprobe.d/vfio.conf), modules-load (/etc/modules-load.d/vfio-pci.conf),
butane (100-<role>-vfiopci.bu), machineconfig (what Butane compiles it to) and kernel-args
(the 100-<role>-iommu MachineConfig). Devices are vendor:device IDs given literally or found
on this host by address, glob or ID; with none given, the IDs of the devices on vfio-pci now.
Bridges are never among them.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from hostdev.binding.selectors import Selector, parse_selector, resolve
from hostdev.cli import render_kubevirt
from hostdev.cli.common import add_host_flags, host_fs
from hostdev.errors import BadInputError, HostReadError
from hostdev.host.fs import HostFS, link_name, read_text
from hostdev.host.model import VFIO_PCI, Host, PciDevice
from hostdev.host.scan import scan_host
from hostdev.render import openshift
from hostdev.render.files import HostFile, modprobe_conf, modules_load_conf, native_drivers

KINDS = ("modprobe", "modules-load", "butane", "machineconfig", "kernel-args")
_HELP = {
    "modprobe": "/etc/modprobe.d/vfio.conf: options vfio-pci ids=... and softdep lines",
    "modules-load": "/etc/modules-load.d/vfio-pci.conf",
    "butane": "the Butane config 100-<role>-vfiopci.bu (variant openshift)",
    "machineconfig": "the MachineConfig the Butane config compiles to",
    "kernel-args": "the 100-<role>-iommu MachineConfig (intel_iommu=on or amd_iommu=on)",
}


def register(subparsers: Any) -> None:
    """Add `render` with one subcommand per kind (so options and devices may mix freely)."""
    render = subparsers.add_parser(
        "render", help="print vfio-pci host configuration (modprobe, Butane, MachineConfig)"
    )
    kinds = render.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind in KINDS:
        parser = kinds.add_parser(kind, help=_HELP[kind], description=_HELP[kind])
        if kind != "kernel-args":
            parser.add_argument(
                "targets",
                nargs="*",
                metavar="SELECTOR",
                help="vendor:device IDs (10de:1eb8), addresses or globs",
            )
        parser.add_argument("--role", default="worker", help="machine config pool (default worker)")
        parser.add_argument(
            "--openshift-version",
            default="4.20",
            help="cluster version X.Y or X.Y.Z (default 4.20)",
        )
        if kind == "kernel-args":
            parser.add_argument(
                "--cpu-vendor",
                choices=sorted(openshift.IOMMU_ARGS),
                help="override the vendor read from /proc/cpuinfo",
            )
            parser.add_argument(
                "--iommu-pt",
                action="store_true",
                help="add iommu=pt (passthrough for host-owned devices)",
            )
        else:
            parser.add_argument(
                "--no-softdep",
                action="store_true",
                help="only the options line in vfio.conf, no softdep lines",
            )
        add_host_flags(parser)
        parser.set_defaults(handler=_render)
    render_kubevirt.add_parser(kinds)


def _render(args: argparse.Namespace) -> int:
    openshift.check_role(args.role)
    openshift.openshift_minor(args.openshift_version)
    if args.kind == "kernel-args":
        document = openshift.kernel_args_machineconfig(
            _cpu_vendor(args), args.role, args.openshift_version, iommu_pt=args.iommu_pt
        )
        sys.stdout.write(openshift.to_yaml(document))
        return 0
    files = _files(args)
    if args.kind in ("modprobe", "modules-load"):
        contents = files[0 if args.kind == "modprobe" else 1].contents
        sys.stdout.write(contents if contents.endswith("\n") else contents + "\n")
    elif args.kind == "butane":
        sys.stdout.write(openshift.butane(files, args.role, args.openshift_version))
    else:
        document = openshift.machineconfig(files, args.role, args.openshift_version)
        sys.stdout.write(openshift.to_yaml(document))
    return 0


def _cpu_vendor(args: argparse.Namespace) -> str:
    if args.cpu_vendor:
        return str(args.cpu_vendor)
    fs = host_fs(args)
    vendor = openshift.cpu_vendor_from_cpuinfo(read_text(fs.proc("cpuinfo")))
    if vendor is None:
        raise BadInputError(
            f"cannot tell Intel from AMD in {fs.proc('cpuinfo')}: pass --cpu-vendor intel|amd"
        )
    return vendor


def _files(args: argparse.Namespace) -> list[HostFile]:
    selectors = [parse_selector(t) for t in args.targets]
    host = _host(args, needed=not selectors or not all(s.literal_id for s in selectors))
    devices = host.sorted_devices() if host else []
    ids = _ids(host, selectors, devices)
    if host is not None:
        _warn_of_swept_devices(host, selectors, ids)
    modules = _driver_modules(host_fs(args), devices)
    softdeps = [m for i in ids for m in native_drivers(i, devices, modules)]
    return [modprobe_conf(ids, [] if args.no_softdep else softdeps), modules_load_conf()]


def _driver_modules(fs: HostFS, devices: list[PciDevice]) -> dict[str, str]:
    """Driver → module, from each driver's `module` link (absent for built-in drivers)."""
    drivers = {d.driver for d in devices if d.driver}
    links = {d: link_name(fs.sys("bus", "pci", "drivers", d, "module")) for d in drivers}
    return {driver: module for driver, module in links.items() if module}


def _host(args: argparse.Namespace, *, needed: bool) -> Host | None:
    try:
        return scan_host(host_fs(args))
    except HostReadError:
        if needed:
            raise
        return None


def _ids(host: Host | None, selectors: list[Selector], devices: list[PciDevice]) -> list[str]:
    if not selectors:
        ids = [d.vendor_device for d in devices if d.driver == VFIO_PCI and not d.is_bridge]
        if not ids:
            raise BadInputError("no device is on vfio-pci on this host: name vendor:device IDs")
        return list(dict.fromkeys(ids))
    ids = [i for selector in selectors for i in _selected_ids(host, selector)]
    return list(dict.fromkeys(ids))


def _selected_ids(host: Host | None, selector: Selector) -> list[str]:
    """The IDs one selector names; a literal ID absent from the host is taken as given."""
    if host is None or (selector.literal_id and not _on_host(host, selector)):
        return [selector.value]
    devices = [host.devices[a] for a in resolve(host, [selector])]
    # vfio-pci's ids= would claim a host bridge at boot; bridges are never passed through.
    kept = [d.vendor_device for d in devices if not d.is_bridge]
    if not kept:
        bridges = ", ".join(str(d.address) for d in devices[:3])
        raise BadInputError(
            f"{selector.text!r} selects only PCI bridges ({bridges}"
            f"{', ...' if len(devices) > 3 else ''}): bridges are never bound to vfio-pci"
        )
    return kept


def _warn_of_swept_devices(host: Host, selectors: list[Selector], ids: list[str]) -> None:
    """Say which functions ids= hands to vfio-pci at boot without being asked for: vfio-pci
    claims every function with an ID it is given (another card of the model, say, on its host
    driver for a desktop or as a vGPU parent)."""
    for device in host.sorted_devices():
        if device.vendor_device not in ids or device.is_bridge or device.driver == VFIO_PCI:
            continue
        if any(s.matches(host, device.address) for s in selectors):
            continue
        print(
            f"warning: ids={device.vendor_device} also gives {device.address} (on "
            f"{device.driver or 'no driver'}) to vfio-pci at boot",
            file=sys.stderr,
        )


def _on_host(host: Host, selector: Selector) -> bool:
    return any(selector.matches(host, address) for address in host.devices)
