"""Our Allocate env as virt-launcher reads it (prior-art §2b)."""

from __future__ import annotations

import pytest

from hostdev.errors import BadInputError
from hostdev.kubelet.envs import container_envs
from hostdev.kubelet.virtlauncher import hostdevs, read_ids

T4 = "nvidia.com/TU104GL_Tesla_T4"


def test_our_env_becomes_one_unmanaged_pci_hostdev_per_address() -> None:
    envs = container_envs(T4, "pci", ("kubevirt",), ["0000:65:00.0", "0000:66:00.0"])
    assert hostdevs(envs, T4, "pci") == [
        "<hostdev mode='subsystem' type='pci' managed='no'><source><address type='pci' "
        "domain='0x0000' bus='0x65' slot='0x00' function='0x0'/></source></hostdev>",
        "<hostdev mode='subsystem' type='pci' managed='no'><source><address type='pci' "
        "domain='0x0000' bus='0x66' slot='0x00' function='0x0'/></source></hostdev>",
    ]


def test_mdev_uuid_becomes_an_mdev_hostdev() -> None:
    uuid = "4b20d080-1b54-4048-85b3-a6a62d165c01"
    envs = container_envs("nvidia.com/GRID_T4-2Q", "mdev", ("kubevirt",), [uuid])
    assert hostdevs(envs, "nvidia.com/GRID_T4-2Q", "mdev") == [
        "<hostdev mode='subsystem' type='mdev' model='vfio-pci'><source>"
        f"<address uuid='{uuid}'/></source></hostdev>"
    ]


@pytest.mark.parametrize(
    "value,ids",
    [
        ("0000:65:00.0,", ["0000:65:00.0"]),
        ("", []),
    ],
    ids=["trailing-comma", "empty"],
)
def test_read_ids(value: str, ids: list[str]) -> None:
    assert read_ids({"PCI_RESOURCE_NVIDIA_COM_TU104GL_TESLA_T4": value}, T4, "pci") == ids


@pytest.mark.parametrize(
    "value",
    ["65:00.0", "0000:65:00.0, 0000:66:00.0", "0000:65:00.0\n"],
    ids=["no-domain", "space-after-comma", "trailing-newline"],
)
def test_what_virt_launcher_refuses(value: str) -> None:
    with pytest.raises(BadInputError, match="failed to parse pci address"):
        hostdevs({"PCI_RESOURCE_NVIDIA_COM_TU104GL_TESLA_T4": value}, T4, "pci")


def test_mixed_case_name_is_not_found() -> None:
    assert read_ids({"PCI_RESOURCE_NVIDIA_COM_TU104GL_Tesla_T4": "0000:65:00.0"}, T4, "pci") == []
