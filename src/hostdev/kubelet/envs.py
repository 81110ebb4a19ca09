"""Environment variables handed to containers: KubeVirt's contract and the SR-IOV family.

KubeVirt (pkg/util ResourceNameToEnvVar): `PCI_RESOURCE_<NAME>` for PCI devices and
`MDEV_PCI_RESOURCE_<NAME>` for mdevs, NAME = the resource name upper-cased with every `/` and
`.` replaced by `_` and nothing else changed (a `-` stays). The value is the comma-separated
list of full PCI addresses (DDDD:BB:SS.F) or mdev UUIDs, without spaces.
SR-IOV network device plugin: `PCIDEVICE_<NAME>` with the same transformation and value.
Tags of nova device_spec entries (physical_network ...): `HOSTDEV_TAG_<TAG>_<NAME>`, the
values of the container's devices in the order of the address list (empty when untagged).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from hostdev.config.model import EnvFamily, ResourceKind

PCI_PREFIX = "PCI_RESOURCE"
MDEV_PREFIX = "MDEV_PCI_RESOURCE"
SRIOV_PREFIX = "PCIDEVICE"
TAG_PREFIX = "HOSTDEV_TAG"


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


def tag_env_name(tag: str, resource_name: str) -> str:
    """HOSTDEV_TAG_<TAG>_<NAME>: a config tag (nova's physical_network ...) per resource."""
    key = "".join(c if c.isalnum() else "_" for c in tag.upper())
    return f"{TAG_PREFIX}_{key}_{env_suffix(resource_name)}"


def tag_envs(resource_name: str, tags: Sequence[Sequence[tuple[str, str]]]) -> dict[str, str]:
    """One variable per tag key: the values of the container's devices, in device order."""
    per_device = [dict(t) for t in tags]
    keys = sorted({k for d in per_device for k in d})
    return {
        tag_env_name(k, resource_name): env_value(d.get(k, "") for d in per_device) for k in keys
    }


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
