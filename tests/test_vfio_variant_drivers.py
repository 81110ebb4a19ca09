"""A function on a vendor's VFIO variant driver is ready, served and left where it is.

Variant drivers (nvgrace_gpu_vfio_pci for Grace Hopper GPUs, mlx5_vfio_pci for ConnectX VFs
that migrate live, ...) register the function with VFIO as vfio-pci does; every layer has to
treat them as VFIO, and nothing may move such a function to plain vfio-pci.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hostdev.binding import BindOptions, bind_devices
from hostdev.binding.guards import no_ipv4_probe
from hostdev.binding.onstart import devices_to_bind
from hostdev.cli.doctor import devices_to_check
from hostdev.config import DEFAULT_CONFIG, load_config
from hostdev.health import Signals, pci_health
from hostdev.host.checks import PASS, check_device
from hostdev.host.model import Host, PciAddress
from hostdev.host.readiness import READY, readiness
from hostdev.host.scan import scan_host
from hostdev.host.signals import vfio_group_nodes
from hostdev.selection import select
from hostdev.testing.examples import base_host
from hostdev.testing.fakehost import FakeHost
from hostdev.testing.fakekernel import FakeKernelWriter

GH100 = "0009:01:00.0"  # a Grace Hopper GPU, on nvgrace_gpu_vfio_pci
CX7_VF = "0000:3b:00.2"  # a ConnectX-7 VF, on mlx5_vfio_pci
VARIANTS = {GH100: "nvgrace_gpu_vfio_pci", CX7_VF: "mlx5_vfio_pci"}
IDS = list(VARIANTS.values())


@pytest.fixture
def fake(tmp_path: Path) -> FakeHost:
    host = base_host(tmp_path / "host")
    host.add_device(GH100, "10de", "2342", "030200", driver=VARIANTS[GH100], iommu_group=60)
    host.add_device(CX7_VF, "15b3", "101e", "020000", driver=VARIANTS[CX7_VF], iommu_group=61)
    return host


@pytest.fixture
def host(fake: FakeHost) -> Host:
    return scan_host(fake.fs)


@pytest.mark.parametrize("address", list(VARIANTS), ids=IDS)
def test_ready_and_passing_on_its_variant_driver(host: Host, address: str) -> None:
    device = host.devices[PciAddress.parse(address)]
    state = readiness(host, device)
    assert (state.state, state.reason) == (READY, f"on {VARIANTS[address]}, group "
                                                  f"{device.iommu_group} viable")  # fmt: skip
    assert check_device(host, device).status == PASS
    assert device in devices_to_check(host, [])


def test_served_without_a_config_by_vendor_and_device(host: Host) -> None:
    served = {r.name: [d.id for d in r.devices] for r in select(host, DEFAULT_CONFIG)}
    assert served["devices.kubevirt.io/10de_2342"] == [GH100]
    assert served["devices.kubevirt.io/15b3_101e"] == [CX7_VF]


@pytest.mark.parametrize("address", list(VARIANTS), ids=IDS)
def test_healthy_with_its_group_node(fake: FakeHost, host: Host, address: str) -> None:
    signals = Signals(vfio_nodes=vfio_group_nodes(fake.fs))
    assert pci_health(PciAddress.parse(address), host, signals, None).healthy


def test_bind_on_start_leaves_variant_functions_alone(host: Host, tmp_path: Path) -> None:
    path = tmp_path / "hostdev.yaml"
    path.write_text(
        "resources:\n- name: example.com/gpu\n  selectors:\n  - device: '10de:2342'\n"
        "  - device: '15b3:101e'\n  bind: onStart\n"
    )
    assert devices_to_bind(host, load_config(path)) == []


@pytest.mark.parametrize("address", list(VARIANTS), ids=IDS)
def test_bind_keeps_the_variant_driver_and_records_nothing(
    fake: FakeHost, tmp_path: Path, address: str
) -> None:
    kernel = FakeKernelWriter(fake)
    state = tmp_path / "state.json"
    options = BindOptions(state_file=state, ipv4_probe=no_ipv4_probe)
    result = bind_devices(fake.fs, kernel, [PciAddress.parse(address)], options)
    assert result.ok
    item = result.devices[0]
    assert (item.action, item.from_driver, item.to_driver) == (
        "already-bound",
        VARIANTS[address],
        VARIANTS[address],
    )
    assert kernel.writes == []
    assert fake.driver_of(address) == VARIANTS[address]
    assert not state.exists() or address not in state.read_text()
