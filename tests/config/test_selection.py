"""Selection on the example hosts: which device joins which resource."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from hostdev.config import DEFAULT_CONFIG, load_config
from hostdev.host.model import Host
from hostdev.host.scan import scan_host
from hostdev.kubelet.envs import kubevirt_env_name
from hostdev.selection import select
from hostdev.testing.examples import build_example

VFS = [
    "0000:04:10.1",
    "0000:04:10.3",
    "0000:04:10.5",
    "0000:04:10.7",
    "0000:04:11.1",
    "0000:04:11.3",
    "0000:04:11.5",
]


@pytest.fixture(scope="module")
def kitchen(tmp_path_factory: pytest.TempPathFactory) -> Host:
    return scan_host(build_example("kitchen-sink", tmp_path_factory.mktemp("ks")).fs)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def served(host: Host, tmp_path: Path, text: str) -> dict[str, list[str]]:
    return {
        r.name: [d.id for d in r.devices] for r in select(host, load_config(write(tmp_path, text)))
    }


def test_no_config_serves_every_vfio_device_by_vendor_device(kitchen: Host) -> None:
    resources = {r.name: [d.id for d in r.devices] for r in select(kitchen, DEFAULT_CONFIG)}
    assert resources == {
        "devices.kubevirt.io/10de_1aeb": ["0000:17:00.1"],
        "devices.kubevirt.io/10de_1eb8": ["0000:65:00.0", "0000:b3:00.0"],  # not the nvidia one
        "devices.kubevirt.io/10de_2184": ["0000:17:00.0"],
        "devices.kubevirt.io/15b3_101b": ["0001:02:00.0"],
        "devices.kubevirt.io/8086_10ca": VFS,
        "devices.kubevirt.io/8086_6f54": ["0000:3d:00.0"],
    }


def test_served_device_fields(kitchen: Host) -> None:
    by_name = {r.name: r for r in select(kitchen, DEFAULT_CONFIG)}
    t4 = by_name["devices.kubevirt.io/10de_1eb8"].devices[1]
    assert (t4.id, t4.iommu_group, t4.numa_node) == ("0000:b3:00.0", 13, 1)
    vf = by_name["devices.kubevirt.io/8086_10ca"].devices[0]
    assert str(vf.physfn) == "0000:04:00.1"


CASES = [
    ("device", "[{device: '10de:1eb8'}]", ["0000:65:00.0", "0000:b3:00.0"]),
    (
        "device-wildcard",
        "[{device: '10de:*'}]",
        ["0000:17:00.0", "0000:17:00.1", "0000:65:00.0", "0000:b3:00.0"],
    ),
    ("vendor", "[{vendor: '15b3'}]", ["0001:02:00.0"]),
    ("class-prefix", "[{class: '03'}]", ["0000:17:00.0", "0000:65:00.0", "0000:b3:00.0"]),
    ("class-full", "[{class: '030200'}]", ["0000:65:00.0", "0000:b3:00.0"]),
    ("subsystem", "[{subsystem: '1458:3fc2'}]", ["0000:17:00.0", "0000:17:00.1"]),
    ("address-glob", "[{address: '*:17:00.*'}]", ["0000:17:00.0", "0000:17:00.1"]),
    ("address-domain", "[{address: '0001:*:*.*'}]", ["0001:02:00.0"]),
    ("address-regex", "[{address: {bus: '[6b][0-9a-f]'}}]", ["0000:65:00.0", "0000:b3:00.0"]),
    ("and-two-fields", "[{vendor: '10de', class: '0403'}]", ["0000:17:00.1"]),
    ("or-selectors", "[{vendor: '15b3'}, {device: '8086:6f54'}]", ["0000:3d:00.0", "0001:02:00.0"]),
    ("pf-name", "[{pfName: enp4s0f1}]", VFS),
    (
        "pf-name-ranges",
        "[{pfName: 'enp4s0f1#0-1,6'}]",
        ["0000:04:10.1", "0000:04:10.3", "0000:04:11.5"],
    ),
    ("pf-name-other-port", "[{pfName: enp4s0f0}]", []),
    ("driver", "[{driver: vfio-pci, device: '8086:*'}]", [*VFS, "0000:3d:00.0"]),
    ("host-driver-never-served", "[{driver: e1000e}]", []),
    ("bridge-never-served", "[{class: '06'}]", []),
    ("nvidia-driver-never-served", "[{address: '0000:3b:00.0'}]", []),
]


@pytest.mark.parametrize("name,selectors,expected", CASES, ids=[c[0] for c in CASES])
def test_selectors(
    kitchen: Host, tmp_path: Path, name: str, selectors: str, expected: list[str]
) -> None:
    result = served(
        kitchen, tmp_path, f"resources:\n- name: example.com/r\n  selectors: {selectors}\n"
    )
    assert result == {"example.com/r": expected}


def test_first_resource_wins_and_exclusions_fall_through(kitchen: Host, tmp_path: Path) -> None:
    result = served(
        kitchen,
        tmp_path,
        """
        resources:
        - name: example.com/first-t4
          selectors: [{device: '10de:1eb8'}]
          exclude: ['0000:b3:00.0']
        - name: example.com/any-nvidia
          selectors: [{vendor: '10de'}]
        - name: example.com/never
          selectors: [{device: '10de:1eb8'}]
        """,
    )
    assert result == {
        "example.com/first-t4": ["0000:65:00.0"],
        "example.com/any-nvidia": ["0000:17:00.0", "0000:17:00.1", "0000:b3:00.0"],
        "example.com/never": [],
    }


def test_neutron_exclusion_on_vfs(kitchen: Host, tmp_path: Path) -> None:
    result = served(
        kitchen,
        tmp_path,
        """
        resources:
        - name: example.com/vf
          selectors: [{pfName: enp4s0f1}]
          exclude: ["enp4s0f1:0000:04:10.1;0000:04:10.3"]
        """,
    )
    assert result == {"example.com/vf": VFS[2:]}


def test_mdevs_by_type_name(kitchen: Host, tmp_path: Path) -> None:
    result = served(
        kitchen,
        tmp_path,
        """
        resources:
        - name: nvidia.com/GRID_T4-1Q
          selectors: [{mdevName: GRID T4-1Q}]
        - name: nvidia.com/GRID_T4-2Q
          selectors: [{mdevName: GRID T4-2Q}]
        """,
    )
    assert result == {
        "nvidia.com/GRID_T4-1Q": [],
        "nvidia.com/GRID_T4-2Q": ["4b20d080-1b54-4048-85b3-a6a62d165c01"],
    }


@pytest.fixture(scope="module")
def vgpu(tmp_path_factory: pytest.TempPathFactory) -> Host:
    return scan_host(build_example("vgpu-node", tmp_path_factory.mktemp("vgpu")).fs)


MDEV_UUID = "4b20d080-1b54-4048-85b3-a6a62d165c01"  # the vgpu-node's GRID T4-2Q
MDEV_NAMES = [
    ("GRID T4-2Q", True),
    ("GRID_T4-2Q", True),  # KubeVirt turns spaces into _ on both sides
    ("GRID T4-2Q\t", True),  # trimmed after the spaces are replaced
    (" GRID T4-2Q", False),  # ... so a leading space becomes a leading _, as in KubeVirt
    ("GRID T4-2Q ", False),
    ("grid t4-2q", False),
    ("GRID T4-1Q", False),
    ("nvidia-231", False),  # the type id is not its name
]


@pytest.mark.parametrize("form", ["native", "kubevirt"])
@pytest.mark.parametrize("selector,selected", MDEV_NAMES, ids=[repr(n) for n, _ in MDEV_NAMES])
def test_mdev_names_match_as_in_kubevirt(
    vgpu: Host, tmp_path: Path, form: str, selector: str, selected: bool
) -> None:
    name = "nvidia.com/GRID_T4-2Q"
    quoted = json.dumps(selector)
    text = (
        f"resources:\n- {{name: {name}, selectors: [{{mdevName: {quoted}}}]}}\n"
        if form == "native"
        else "permittedHostDevices:\n  mediatedDevices:\n"
        f"  - {{mdevNameSelector: {quoted}, resourceName: {name},"
        " externalResourceProvider: true}\n"
    )
    (resource,) = select(vgpu, load_config(write(tmp_path, text)))
    assert [d.id for d in resource.devices] == ([MDEV_UUID] if selected else [])
    assert (
        kubevirt_env_name(resource.name, resource.kind) == "MDEV_PCI_RESOURCE_NVIDIA_COM_GRID_T4-2Q"
    )


def test_mdev_served_device_takes_parent_numa_node(kitchen: Host, tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "permittedHostDevices:\n  mediatedDevices:\n  - {mdevNameSelector: GRID T4-2Q,"
        " resourceName: nvidia.com/GRID_T4-2Q, externalResourceProvider: true}\n"
    )
    (resource,) = select(kitchen, load_config(path))
    (mdev,) = resource.devices
    assert (resource.kind, str(mdev.address), mdev.numa_node, mdev.iommu_group) == (
        "mdev",
        "0000:3b:00.0",
        0,
        47,
    )


def test_kubevirt_block_selects_like_kubevirt(kitchen: Host, tmp_path: Path) -> None:
    result = served(
        kitchen,
        tmp_path,
        """
        permittedHostDevices:
          pciHostDevices:
          - {pciVendorSelector: "10DE:1EB8", resourceName: nvidia.com/TU104GL_Tesla_T4,
             externalResourceProvider: true}
        """,
    )
    assert result == {"nvidia.com/TU104GL_Tesla_T4": ["0000:65:00.0", "0000:b3:00.0"]}
