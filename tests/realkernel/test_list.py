"""`hostdev list -o json` against the kernel's view: lspci -Dnnk and /sys/kernel/iommu_groups."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from .guest import hex_id, hostdev, parse_lspci, require, sysfs_groups, timed

pytestmark = pytest.mark.guest


@pytest.fixture(scope="module")
def listed() -> dict[str, dict[str, Any]]:
    """The devices of one `hostdev list -o json` run, keyed by address."""
    require("list")
    with timed("hostdev list -o json, whole command (s)"):
        result = hostdev("list", "-o", "json")
    assert result.returncode == 0, result.stderr
    return {device["address"]: device for device in json.loads(result.stdout)["devices"]}


@pytest.fixture(scope="module")
def lspci() -> dict[str, Any]:
    """What lspci -Dnnk shows."""
    result = subprocess.run(["lspci", "-Dnnk"], capture_output=True, text=True, check=True)
    return parse_lspci(result.stdout)


def test_list_shows_every_endpoint_lspci_shows(
    listed: dict[str, Any], lspci: dict[str, Any]
) -> None:
    endpoints = {address for address, device in lspci.items() if not device.class4.startswith("06")}
    assert endpoints <= set(listed)
    assert set(listed) <= set(lspci)


def test_list_agrees_with_lspci_on_ids_class_and_driver(
    listed: dict[str, Any], lspci: dict[str, Any]
) -> None:
    mismatches = {}
    for address, device in listed.items():
        ours = (hex_id(device["vendor"]), hex_id(device["device"]), hex_id(device["class"])[:4])
        theirs = (lspci[address].vendor, lspci[address].device, lspci[address].class4)
        if ours != theirs or device["driver"] != lspci[address].driver:
            mismatches[address] = (ours, device["driver"], theirs, lspci[address].driver)
    assert mismatches == {}


def test_list_agrees_with_sysfs_iommu_groups(listed: dict[str, Any]) -> None:
    groups = sysfs_groups()
    ours = {address: device["iommu_group"] for address, device in listed.items()}
    assert ours == {address: groups.get(address) for address in listed}
