"""A function on a vendor's VFIO variant driver is ready, served and left where it is, and
`bind --driver` puts a function on one.

Variant drivers (nvgrace_gpu_vfio_pci for Grace Hopper GPUs, mlx5_vfio_pci for ConnectX VFs
that migrate live, ...) register the function with VFIO as vfio-pci does; every layer has to
treat them as VFIO, and nothing may move such a function to plain vfio-pci unasked.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hostdev.binding import BindOptions, bind_devices, restore_devices
from hostdev.binding.guards import no_ipv4_probe
from hostdev.binding.onstart import devices_to_bind
from hostdev.cli.doctor import devices_to_check
from hostdev.config import DEFAULT_CONFIG, load_config
from hostdev.errors import BadInputError
from hostdev.health import Signals, pci_health
from hostdev.host.checks import PASS, check_device
from hostdev.host.model import VFIO_PCI, Host, PciAddress
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


def _options(fake: FakeHost, state: Path, driver: str) -> BindOptions:
    def load(module: str, params: object) -> None:
        fake.load_vfio() if module == VFIO_PCI else fake.add_driver(module)

    return BindOptions(state_file=state, loader=load, ipv4_probe=no_ipv4_probe, driver=driver)


GH100_ON_NVIDIA = "0000:3b:00.0"


@pytest.fixture
def gpus(fake: FakeHost) -> FakeHost:
    """A GH100 on nvidia whose group also holds its audio-less twin function on nouveau."""
    fake.add_driver("nvidia").add_driver("nouveau")
    fake.add_device(GH100_ON_NVIDIA, "10de", "2342", "030200", driver="nvidia", iommu_group=70)
    fake.add_device("0000:3b:00.1", "10de", "2342", "030200", driver="nouveau", iommu_group=70)
    return fake


def test_bind_with_a_variant_driver_moves_the_device_and_restore_returns_it(
    gpus: FakeHost, tmp_path: Path
) -> None:
    kernel = FakeKernelWriter(gpus)
    options = _options(gpus, tmp_path / "state.json", "nvgrace_gpu_vfio_pci")
    result = bind_devices(gpus.fs, kernel, [PciAddress.parse(GH100_ON_NVIDIA)], options)
    assert result.ok, result.to_json()
    assert [(d.address, d.from_driver, d.to_driver, d.action) for d in result.devices] == [
        (GH100_ON_NVIDIA, "nvidia", "nvgrace_gpu_vfio_pci", "bound"),
        ("0000:3b:00.1", "nouveau", VFIO_PCI, "bound"),  # a companion goes to plain vfio-pci
    ]
    assert readiness(scan_host(gpus.fs), scan_host(gpus.fs).devices[
        PciAddress.parse(GH100_ON_NVIDIA)]).state == READY  # fmt: skip
    restored = restore_devices(gpus.fs, kernel, None, options)
    assert restored.ok
    assert (gpus.driver_of(GH100_ON_NVIDIA), gpus.driver_of("0000:3b:00.1")) == (
        "nvidia",
        "nouveau",
    )


def test_bind_with_a_variant_driver_moves_a_device_off_plain_vfio_pci(
    fake: FakeHost, tmp_path: Path
) -> None:
    fake.unbind(CX7_VF)
    fake.bind(CX7_VF, VFIO_PCI)
    options = _options(fake, tmp_path / "state.json", "mlx5_vfio_pci")
    result = bind_devices(fake.fs, FakeKernelWriter(fake), [PciAddress.parse(CX7_VF)], options)
    assert [(d.from_driver, d.to_driver, d.action) for d in result.devices] == [
        (VFIO_PCI, "mlx5_vfio_pci", "bound")
    ]
    assert fake.driver_of(CX7_VF) == "mlx5_vfio_pci"


@pytest.mark.parametrize(
    "driver", ["nvidia", "vfio", "vfio_pci_core", ""], ids=["host", "vfio", "core", "empty"]
)
def test_bind_refuses_a_driver_that_is_no_vfio_driver(tmp_path: Path, driver: str) -> None:
    with pytest.raises(BadInputError, match="binds to vfio-pci or a vendor's VFIO variant"):
        BindOptions(state_file=tmp_path / "state.json", driver=driver)


def test_bind_loads_the_variant_drivers_module_when_missing(tmp_path: Path) -> None:
    host = base_host(tmp_path / "host")  # an e1000e NIC at 0000:01:00.0, vfio-pci loaded
    options = _options(host, tmp_path / "state.json", "virtio_vfio_pci")
    nic = PciAddress.parse("0000:01:00.0")
    result = bind_devices(host.fs, FakeKernelWriter(host), [nic], options)
    assert result.commands == ["modprobe virtio_vfio_pci"]
    assert host.driver_of(str(nic)) == "virtio_vfio_pci"
