"""Binding devices to vfio-pci safely, leaving them driverless, and restoring their drivers.

The API the CLI and the daemon share: `bind_devices`, `unbind_devices`, `restore_devices`
and `reset_device`, each taking a HostFS (reads) and a HostWriter (the only writes).
"""

from hostdev.binding.execute import (
    BindOptions,
    BindResult,
    DeviceResult,
    bind_devices,
    reset_device,
    unbind_devices,
)
from hostdev.binding.restore import restore_devices

__all__ = [
    "BindOptions",
    "BindResult",
    "DeviceResult",
    "bind_devices",
    "reset_device",
    "restore_devices",
    "unbind_devices",
]
