"""hostdev: hand host PCI devices to VMs and containers through VFIO."""

__version__ = "0.1.0"
