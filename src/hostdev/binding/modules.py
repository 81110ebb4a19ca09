"""Loading vfio-pci (and vfio's no-IOMMU mode) before a bind, through an injectable runner.

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


def ensure_vfio(
    fs: HostFS, writer: HostWriter, loader: ModuleLoader, *, noiommu: bool, dry_run: bool
) -> list[str]:
    """Load vfio-pci when its driver is missing (and enable no-IOMMU mode when asked).

    Returns the commands run (or, in a dry run, that would run).
    """
    commands: list[str] = []
    if noiommu:
        param = fs.sys("module", "vfio", "parameters", "enable_unsafe_noiommu_mode")
        if exists(param):
            if read_text(param) not in ("Y", "1"):
                writer.write(param, "1")
        else:
            commands.append(_load(loader, "vfio", ("enable_unsafe_noiommu_mode=1",), dry_run))
    if not exists(fs.sys("bus", "pci", "drivers", VFIO_PCI)):
        commands.append(_load(loader, VFIO_PCI, (), dry_run))
        if not dry_run and not exists(fs.sys("bus", "pci", "drivers", VFIO_PCI)):
            raise HostdevError("vfio-pci was loaded but /sys/bus/pci/drivers/vfio-pci is missing")
    return commands


def _load(loader: ModuleLoader, module: str, params: Sequence[str], dry_run: bool) -> str:
    command = " ".join(["modprobe", module, *params])
    if not dry_run:
        loader(module, params)
    return command
