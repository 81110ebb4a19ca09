"""Loading vfio-pci, a VFIO variant driver and vfio's no-IOMMU mode before a bind, through an
injectable runner.

The default runner calls `modprobe`; tests pass a function that loads the modules on a fake
host. In a dry run nothing is loaded: the command that would run is only reported.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence

from hostdev.errors import HostdevError
from hostdev.host.fs import HostFS, exists, read_text
from hostdev.host.model import VFIO_PCI
from hostdev.host.writer import HostWriter

ModuleLoader = Callable[[str, Sequence[str]], None]  # (module, parameters)


def modprobe(module: str, params: Sequence[str]) -> None:
    """Load a kernel module with modprobe; raise HostdevError with modprobe's message."""
    try:
        subprocess.run(["modprobe", module, *params], check=True, capture_output=True, text=True)
    except FileNotFoundError as err:
        raise HostdevError(f"modprobe not found: load {module} yourself") from err
    except subprocess.CalledProcessError as err:
        detail = (err.stderr or "").strip() or f"exit status {err.returncode}"
        raise HostdevError(f"modprobe {module} failed: {detail}") from err


NOIOMMU_PARAM = ("module", "vfio", "parameters", "enable_unsafe_noiommu_mode")


def noiommu_value(fs: HostFS) -> str | None:
    """vfio's enable_unsafe_noiommu_mode as the kernel shows it ("Y"/"N"); None: vfio not loaded."""
    return read_text(fs.sys(*NOIOMMU_PARAM))


def noiommu_on(value: str | None) -> bool:
    """Whether a value of enable_unsafe_noiommu_mode means on."""
    return value in ("Y", "1")


def put_back_noiommu(fs: HostFS, writer: HostWriter, previous: str | None) -> None:
    """Turn no-IOMMU mode back off (to its value before hostdev turned it on) if it is on."""
    if noiommu_on(noiommu_value(fs)):
        writer.write(fs.sys(*NOIOMMU_PARAM), previous or "N")


def ensure_vfio(
    fs: HostFS,
    writer: HostWriter,
    loader: ModuleLoader,
    *,
    noiommu: bool,
    dry_run: bool,
    variant: str | None = None,
) -> list[str]:
    """Load vfio-pci (and a VFIO variant driver, its module named as the driver) when the
    driver is missing, and enable no-IOMMU mode when asked.

    Returns the commands run (or, in a dry run, that would run).
    """
    commands: list[str] = []
    if noiommu:
        param = fs.sys(*NOIOMMU_PARAM)
        if exists(param):
            if not noiommu_on(read_text(param)):
                writer.write(param, "1")
        else:
            commands.append(_load(loader, "vfio", ("enable_unsafe_noiommu_mode=1",), dry_run))
    for driver in (VFIO_PCI, variant) if variant else (VFIO_PCI,):
        if not exists(fs.sys("bus", "pci", "drivers", driver)):
            commands.append(_load(loader, driver, (), dry_run))
            if not dry_run and not exists(fs.sys("bus", "pci", "drivers", driver)):
                raise HostdevError(
                    f"{driver} was loaded but /sys/bus/pci/drivers/{driver} is missing"
                )
    return commands


def _load(loader: ModuleLoader, module: str, params: Sequence[str], dry_run: bool) -> str:
    command = " ".join(["modprobe", module, *params])
    if not dry_run:
        loader(module, params)
    return command
