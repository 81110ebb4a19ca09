"""Health signal readers: aer_dev_fatal (kernel format, garbage, no AER) and /dev/vfio nodes."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostdev.host.model import PciAddress
from hostdev.host.signals import parse_aer_fatal, read_aer_fatal, vfio_group_nodes
from hostdev.testing.examples import build_example

KERNEL_SAMPLE = "Undefined 0\nData Link Protocol 0\nSurprise Down Error 2\nTOTAL_ERR_FATAL 2\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (KERNEL_SAMPLE, 2),
        ("TOTAL_ERR_FATAL 0", 0),
        ("Poisoned TLP 7\nTOTAL_ERR_FATAL 7\n\n", 7),
        (None, None),
        ("", None),
        ("Surprise Down Error 2\n", None),
        ("TOTAL_ERR_FATAL lots", None),
        ("TOTAL_ERR_FATAL -1", None),
        ("TOTAL_ERR_FATAL \u00b2", None),
        ("TOTAL_ERR_NONFATAL 3", None),
    ],
    ids=[
        "kernel",
        "zero",
        "trailing-blank",
        "missing",
        "empty",
        "no-total",
        "garbage",
        "negative",
        "superscript-digit",
        "wrong-file",
    ],
)
def test_parse(text: str | None, expected: int | None) -> None:
    assert parse_aer_fatal(text) == expected


def test_read_from_fake_host(tmp_path: Path) -> None:
    host = build_example("gpu-node", tmp_path)
    host.set_aer_fatal("0000:65:00.0", {"Surprise Down Error": 1, "Poisoned TLP": 2})
    gpu, other = PciAddress.parse("0000:65:00.0"), PciAddress.parse("0000:b3:00.0")
    missing = PciAddress.parse("0000:99:00.0")
    assert read_aer_fatal(host.fs, [gpu, other, missing]) == {gpu: 3}


def test_vfio_group_nodes(tmp_path: Path) -> None:
    host = build_example("vgpu-node", tmp_path)
    (tmp_path / "dev" / "vfio" / "noiommu-7").write_text("")
    (tmp_path / "dev" / "vfio" / "\u00b2").write_text("")  # isdigit() but not int()
    assert vfio_group_nodes(host.fs) == {36}
    host.remove_mdev("4b20d080-1b54-4048-85b3-a6a62d165c01")
    assert vfio_group_nodes(host.fs) == set()


def test_vfio_group_nodes_without_dev(tmp_path: Path) -> None:
    from hostdev.host.fs import HostFS

    assert vfio_group_nodes(HostFS.under(tmp_path)) == set()
