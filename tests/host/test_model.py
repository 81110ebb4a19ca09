"""PciAddress parsing and the Host model's derived facts."""

from collections.abc import Callable
from pathlib import Path

import pytest

from hostdev.errors import BadInputError
from hostdev.host.model import VFIO_PCI, PciAddress, is_group_safe, is_vfio_driver
from hostdev.host.scan import scan_host
from hostdev.testing.examples import add_intel_pch, base_host
from hostdev.testing.fakehost import FakeHost


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0000:65:00.0", "0000:65:00.0"),
        ("0001:02:1f.7", "0001:02:1f.7"),
        ("10000:01:00.0", "10000:01:00.0"),
        ("0000:AF:00.1", "0000:af:00.1"),
    ],
    ids=["plain", "domain-1", "vmd-domain", "upper-case"],
)
def test_parse_valid(text: str, expected: str) -> None:
    assert str(PciAddress.parse(text)) == expected


@pytest.mark.parametrize(
    "text",
    [
        "65:00.0",
        "0000:65:00",
        "0000:65:00.8",
        "0000:65:20.0",
        "000:65:00.0",
        "0000:6:00.0",
        "0000:65:00.0 ",
        "0000:65:00.0\n",
        "",
        "zzzz:65:00.0",
        "0000.65:00.0",
    ],
    ids=[
        "no-domain",
        "no-function",
        "function-8",
        "slot-0x20",
        "short-domain",
        "short-bus",
        "trailing-space",
        "trailing-newline",
        "empty",
        "not-hex",
        "dot-separator",
    ],
)
def test_parse_invalid(text: str) -> None:
    with pytest.raises(BadInputError, match="invalid PCI address"):
        PciAddress.parse(text)


def test_from_kernel_matches_parse() -> None:
    for text in ("0000:65:00.0", "10000:01:1f.7"):
        assert PciAddress.from_kernel(text) == PciAddress.parse(text)


def test_addresses_sort_numerically() -> None:
    names = ["0000:b3:00.0", "0000:17:00.1", "0001:00:00.0", "0000:17:00.0"]
    ordered = sorted(PciAddress.parse(n) for n in names)
    assert [str(a) for a in ordered] == [
        "0000:17:00.0",
        "0000:17:00.1",
        "0000:b3:00.0",
        "0001:00:00.0",
    ]


def _intel_pch(host: FakeHost) -> None:
    add_intel_pch(host)


def _bridge_with_vfio_device(bridge_driver: str | None) -> Callable[[FakeHost], None]:
    def build(host: FakeHost) -> None:
        host.add_bridge("0000:00:06.0", driver=bridge_driver, iommu_group=36)
        host.add_device("0000:06:00.0", "8086", "10d3", "020000", driver=VFIO_PCI,
                        iommu_group=36, parent="0000:00:06.0")  # fmt: skip

    return build


def _host_bridge_on_edac(host: FakeHost) -> None:
    host.add_device("0000:00:01.0", "8086", "3e30", "060000", driver="ie31200_edac", iommu_group=36)
    host.add_device("0000:00:02.0", "8086", "3e92", "030000", driver=VFIO_PCI, iommu_group=36)


def _pci_stub_member(host: FakeHost) -> None:
    host.add_device("0000:00:1f.3", "8086", "a348", "040300", driver="pci-stub", iommu_group=36)
    host.add_device("0000:00:1f.4", "8086", "a323", "0c0500", driver=VFIO_PCI, iommu_group=36)


def _mlx5_vf_beside_a_vfio_pci_function(host: FakeHost) -> None:
    host.add_device("0000:3b:00.2", "15b3", "101e", "020000", driver="mlx5_vfio_pci",
                    iommu_group=36)  # fmt: skip
    host.add_device("0000:3b:00.3", "15b3", "101e", "020000", driver=VFIO_PCI, iommu_group=36)


@pytest.mark.parametrize(
    ("build", "blockers"),
    [
        (_intel_pch, [("0000:00:1f.0", "lpc_ich")]),
        (_bridge_with_vfio_device("pcieport"), []),
        (_bridge_with_vfio_device(None), []),
        (_bridge_with_vfio_device("shpchp"), [("0000:00:06.0", "shpchp")]),
        (_pci_stub_member, []),
        (_host_bridge_on_edac, [("0000:00:01.0", "ie31200_edac")]),
        (_mlx5_vf_beside_a_vfio_pci_function, []),
    ],
    ids=[
        "isa-bridge-on-lpc_ich-blocks",
        "pci-bridge-on-pcieport",
        "pci-bridge-without-driver",
        "pci-bridge-on-shpchp-blocks",
        "member-on-pci-stub",
        "host-bridge-on-a-driver-blocks",
        "member-on-a-vfio-variant-driver",
    ],
)
def test_group_viability_follows_the_kernels_dma_ownership_rule(
    tmp_path: Path, build: Callable[[FakeHost], None], blockers: list[tuple[str, str]]
) -> None:
    fake = base_host(tmp_path)
    build(fake)
    viability = scan_host(fake.fs).group_viability(36)
    assert [(str(a), d) for a, d in viability.blockers] == blockers
    assert viability.viable == (not blockers)


@pytest.mark.parametrize(
    ("driver", "vfio", "group_safe"),
    [
        ("vfio-pci", True, True),
        ("mlx5_vfio_pci", True, True),
        ("nvgrace_gpu_vfio_pci", True, True),
        ("qat_vfio_pci", True, True),
        ("pci-stub", False, True),
        ("pcieport", False, True),
        ("nvidia", False, False),
        ("vfio", False, False),
        ("vfio_pci_core", False, False),
        ("../x_vfio_pci", False, False),
    ],
    ids=[
        "vfio-pci",
        "mlx5-variant",
        "nvgrace-variant",
        "qat-variant",
        "pci-stub",
        "pcieport",
        "nvidia",
        "vfio-core",
        "vfio-pci-core-library",
        "not-a-module-name",
    ],
)
def test_vfio_and_group_safe_drivers(driver: str, vfio: bool, group_safe: bool) -> None:
    assert is_vfio_driver(driver) is vfio
    assert is_group_safe(driver) is group_safe


def test_no_driver_is_not_a_vfio_driver() -> None:
    assert not is_vfio_driver(None)
