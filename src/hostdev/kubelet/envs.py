"""Environment variables handed to containers: KubeVirt's contract and the SR-IOV family.

KubeVirt (pkg/util ResourceNameToEnvVar): `PCI_RESOURCE_<NAME>` for PCI devices and
`MDEV_PCI_RESOURCE_<NAME>` for mdevs, NAME = the resource name upper-cased with every `/` and
`.` replaced by `_` and nothing else changed (a `-` stays). The value is the comma-separated
list of full PCI addresses (DDDD:BB:SS.F) or mdev UUIDs, without spaces.
SR-IOV network device plugin: `PCIDEVICE_<NAME>` with the same transformation and value.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from hostdev.config.model import EnvFamily, ResourceKind

PCI_PREFIX = "PCI_RESOURCE"
MDEV_PREFIX = "MDEV_PCI_RESOURCE"
SRIOV_PREFIX = "PCIDEVICE"


def env_suffix(resource_name: str) -> str:
    """Upper-case the resource name and turn every `/` and `.` into `_`."""
    return resource_name.upper().replace("/", "_").replace(".", "_")


def kubevirt_env_name(resource_name: str, kind: ResourceKind) -> str:
    """The variable virt-launcher reads for this resource."""
    prefix = MDEV_PREFIX if kind == "mdev" else PCI_PREFIX
    return f"{prefix}_{env_suffix(resource_name)}"


def sriov_env_name(resource_name: str) -> str:
    """The variable the SR-IOV network device plugin family uses (DPDK pods read it)."""
    return f"{SRIOV_PREFIX}_{env_suffix(resource_name)}"


def env_value(ids: Iterable[str]) -> str:
    """Comma-separated IDs, no spaces."""
    return ",".join(ids)


def container_envs(
    resource_name: str, kind: ResourceKind, families: Sequence[EnvFamily], ids: Sequence[str]
) -> dict[str, str]:
    """Every variable one container gets for its devices of one resource."""
    value = env_value(ids)
    envs: dict[str, str] = {}
    if "kubevirt" in families:
        envs[kubevirt_env_name(resource_name, kind)] = value
    if "sriov" in families and kind == "pci":
        envs[sriov_env_name(resource_name)] = value
    return envs
