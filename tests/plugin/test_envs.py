"""Env variable names and values: KubeVirt's contract and the SR-IOV family."""

from __future__ import annotations

import pytest

from hostdev.kubelet.envs import container_envs, env_value, kubevirt_env_name, sriov_env_name


@pytest.mark.parametrize(
    "resource,kind,expected",
    [
        ("nvidia.com/TU104GL_Tesla_T4", "pci", "PCI_RESOURCE_NVIDIA_COM_TU104GL_TESLA_T4"),
        ("intel.com/qat", "pci", "PCI_RESOURCE_INTEL_COM_QAT"),
        ("nvidia.com/GRID_T4-1Q", "mdev", "MDEV_PCI_RESOURCE_NVIDIA_COM_GRID_T4-1Q"),
        ("example.com/my-dev", "pci", "PCI_RESOURCE_EXAMPLE_COM_MY-DEV"),
        ("devices.kubevirt.io/10de_1eb8", "pci", "PCI_RESOURCE_DEVICES_KUBEVIRT_IO_10DE_1EB8"),
        ("a.b.example.com/Foo_Bar.1-x", "pci", "PCI_RESOURCE_A_B_EXAMPLE_COM_FOO_BAR_1-X"),
    ],
    ids=["kubevirt-doc", "qat", "mdev-dash-kept", "dash-kept", "default-name", "dots-and-case"],
)
def test_kubevirt_env_names(resource: str, kind: str, expected: str) -> None:
    assert kubevirt_env_name(resource, kind) == expected  # type: ignore[arg-type]


def test_sriov_env_name() -> None:
    assert sriov_env_name("intel.com/intel_sriov_dpdk") == "PCIDEVICE_INTEL_COM_INTEL_SRIOV_DPDK"


def test_value_is_comma_separated_without_spaces() -> None:
    assert env_value(["0000:65:00.0", "0000:66:00.0"]) == "0000:65:00.0,0000:66:00.0"


@pytest.mark.parametrize(
    "families,kind,expected",
    [
        (("kubevirt",), "pci", {"PCI_RESOURCE_EXAMPLE_COM_NIC"}),
        (("sriov",), "pci", {"PCIDEVICE_EXAMPLE_COM_NIC"}),
        (
            ("kubevirt", "sriov"),
            "pci",
            {"PCI_RESOURCE_EXAMPLE_COM_NIC", "PCIDEVICE_EXAMPLE_COM_NIC"},
        ),
        (("kubevirt", "sriov"), "mdev", {"MDEV_PCI_RESOURCE_EXAMPLE_COM_NIC"}),
    ],
    ids=["kubevirt", "sriov", "both", "mdev-has-no-sriov-family"],
)
def test_families(families: tuple[str, ...], kind: str, expected: set[str]) -> None:
    envs = container_envs("example.com/nic", kind, families, ["0000:04:10.1"])  # type: ignore[arg-type]
    assert set(envs) == expected
    assert set(envs.values()) == {"0000:04:10.1"}
