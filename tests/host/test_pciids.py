"""pci.ids parsing: names come from their own nesting level; unknown IDs fall back to hex."""

import gzip
from pathlib import Path

import pytest

from hostdev.host.pciids import load_pci_ids, parse_pci_ids

FIXTURE = Path(__file__).parent.parent / "data" / "pci.ids"


@pytest.fixture(scope="module")
def ids():  # type: ignore[no-untyped-def]
    return load_pci_ids(str(FIXTURE))


def test_device_names_come_from_the_device_level(ids) -> None:  # type: ignore[no-untyped-def]
    assert ids.device_name("10de", "1eb8") == "TU104GL [Tesla T4]"
    # "1028 1f82" is a subsystem line under 1eb8: it must never be read as device 1f82
    assert ids.device_name("10de", "1f82") is None
    assert ids.device_name("10de", "1028") is None


def test_subsystem_names(ids) -> None:  # type: ignore[no-untyped-def]
    assert ids.subsystem_name("10de", "1eb8", "10de", "12a2") == "Tesla T4 16GB"
    assert ids.subsystem_name("10de", "1eb8", "ffff", "ffff") is None


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("030200", "3D controller"),
        ("030000", "VGA compatible controller"),
        ("020000", "Ethernet controller"),
        ("060400", "PCI bridge"),
        ("0b4000", "Processor"),
        ("ab0000", "Class ab00"),
    ],
    ids=["3d", "vga", "ethernet", "bridge", "builtin-base-class", "unknown"],
)
def test_class_names(ids, code: str, name: str) -> None:  # type: ignore[no-untyped-def]
    assert ids.class_name(code) == name


def test_unknown_ids_fall_back_to_hex(ids) -> None:  # type: ignore[no-untyped-def]
    assert ids.describe("abcd", "0001") == "Vendor abcd Device 0001"
    assert ids.describe("10de", "ffff") == "NVIDIA Corporation Device ffff"


def test_missing_database_is_empty() -> None:
    empty = load_pci_ids(None)
    assert empty.vendor_name("10de") is None
    assert empty.class_name("020000") == "Network controller"


def test_gzip_and_garbage_lines(tmp_path: Path) -> None:
    text = "10de  NVIDIA\n\tzz\n\t\tgarbage\nnot a vendor line\n\t1eb8  T4\n\t\t1 2 3\n"
    path = tmp_path / "pci.ids.gz"
    path.write_bytes(gzip.compress(text.encode()))
    parsed = load_pci_ids(str(path))
    assert parsed.vendor_name("10de") == "NVIDIA"
    assert parsed.device_name("10de", "1eb8") is None  # belongs to no vendor after the junk line
    assert parse_pci_ids("\t\t\n\t\n").vendors == {}
