"""What KubeVirt's virt-launcher makes of a container's environment (its side of the contract).

virt-launcher looks up `PCI_RESOURCE_<NAME>` / `MDEV_PCI_RESOURCE_<NAME>` for each hostDevice
or GPU of the VM, drops one trailing comma, splits on `,` and turns each full PCI address into
a libvirt `<hostdev type='pci' managed='no'>` (each mdev UUID into a `<hostdev type='mdev'>`).
Used by the demo and the docs to show the result; the tests pin our output to this reading.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from hostdev.config.model import ResourceKind
from hostdev.errors import BadInputError
from hostdev.kubelet.envs import kubevirt_env_name

_PCI = re.compile(r"([0-9a-fA-F]{4}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])")


def read_ids(envs: Mapping[str, str], resource_name: str, kind: ResourceKind) -> list[str]:
    """The IDs virt-launcher reads for a resource (empty when the variable is missing)."""
    value = envs.get(kubevirt_env_name(resource_name, kind))
    if not value:
        return []
    return value.removesuffix(",").split(",")


def pci_hostdev_xml(address: str) -> str:
    """The libvirt element for one address, as virt-launcher writes it (managed='no')."""
    match = _PCI.fullmatch(address)
    if match is None:
        raise BadInputError(f"failed to parse pci address {address}")
    domain, bus, slot, function = match.groups()
    return (
        "<hostdev mode='subsystem' type='pci' managed='no'><source>"
        f"<address type='pci' domain='0x{domain}' bus='0x{bus}' slot='0x{slot}' "
        f"function='0x{function}'/></source></hostdev>"
    )


def mdev_hostdev_xml(uuid: str) -> str:
    """The libvirt element for one mdev UUID."""
    return (
        "<hostdev mode='subsystem' type='mdev' model='vfio-pci'><source>"
        f"<address uuid='{uuid}'/></source></hostdev>"
    )


def hostdevs(envs: Mapping[str, str], resource_name: str, kind: ResourceKind) -> list[str]:
    """Every libvirt hostdev virt-launcher builds for a resource from this environment."""
    build = mdev_hostdev_xml if kind == "mdev" else pci_hostdev_xml
    return [build(i) for i in read_ids(envs, resource_name, kind)]
