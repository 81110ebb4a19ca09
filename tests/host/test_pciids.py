"""pci.ids parsing: names come from their own nesting level; unknown IDs fall back to hex."""

import gzip
from collections.abc import Callable
from pathlib import Path

import pytest

from hostdev.errors import BadInputError
from hostdev.host import pciids
from hostdev.host.pciids import load_pci_ids, parse_pci_ids, system_pci_ids

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


def _missing(path: Path) -> None:
    pass


def _directory(path: Path) -> None:
    path.mkdir()


def _not_gzip(path: Path) -> None:
    path.write_bytes(b"10de  NVIDIA\n")


def _truncated_gzip(path: Path) -> None:
    path.write_bytes(gzip.compress(b"10de  NVIDIA\n" * 100)[:40])


def _corrupt_gzip_data(path: Path) -> None:
    header = gzip.compress(b"")[:10]
    path.write_bytes(header + b"\xff" * 64)  # no valid deflate block


def _bad_checksum(path: Path) -> None:
    whole = bytearray(gzip.compress(b"10de  NVIDIA\n" * 100))
    whole[-8] ^= 0xFF  # the CRC-32 of the data
    path.write_bytes(bytes(whole))


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_missing, "No such file or directory"),
        (_directory, "Is a directory"),
        (_not_gzip, "Not a gzipped file"),
        (_truncated_gzip, "ended before the end-of-stream marker"),
        (_corrupt_gzip_data, "while decompressing data"),
        (_bad_checksum, "CRC check failed"),
    ],
    ids=["missing", "directory", "not-gzip", "truncated-gzip", "corrupt-gzip", "bad-crc"],
)
def test_unreadable_file_is_bad_input(
    tmp_path: Path, make: Callable[[Path], None], reason: str
) -> None:
    path = tmp_path / "pci.ids.gz"
    make(path)
    with pytest.raises(BadInputError, match=f"cannot read pci.ids file {path}: .*{reason}"):
        load_pci_ids(str(path))


def test_unreadable_system_file_warns_once_and_gives_hex_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "pci.ids.gz"
    _truncated_gzip(path)
    monkeypatch.setattr(pciids, "SEARCH_PATHS", (str(path),))
    warnings: list[str] = []
    names = system_pci_ids(warnings.append)
    assert names.describe("10de", "1eb8") == "Vendor 10de Device 1eb8"
    assert len(warnings) == 1 and warnings[0].endswith("; showing hex IDs")
