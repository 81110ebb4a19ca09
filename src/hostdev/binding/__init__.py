"""Binding devices to vfio-pci safely, leaving them driverless, and restoring their drivers.

The API the CLI and the daemon share: `bind_devices`, `unbind_devices`, `restore_devices`
and `reset_device`, each taking a HostFS (reads) and a HostWriter (the only writes). The names
are loaded on first use (PEP 562), so importing a submodule such as `binding.selectors` does
not pull in the scanner and the guards: every `hostdev` command starts faster.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
_HOME = dict.fromkeys(__all__, "hostdev.binding.execute") | {
    "restore_devices": "hostdev.binding.restore"
}


def __getattr__(name: str) -> Any:
    """Load an API name from its module on first use."""
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name]), name)
