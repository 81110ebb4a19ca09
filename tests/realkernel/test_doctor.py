"""`hostdev doctor` on a real IOMMU: the host checks pass, the shared group's viability is right."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from .guest import (
    E1000,
    RTL8139,
    SHARED_BRIDGE,
    SHARED_GROUP,
    bind_raw,
    group_viable,
    hostdev,
    hostdev_json,
    require,
)

pytestmark = pytest.mark.guest


def shared_group_checks(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The checks that speak about the shared group 13 or one of its members."""
    needles = (f"group {SHARED_GROUP}", f"group-{SHARED_GROUP}", E1000, RTL8139, SHARED_BRIDGE)
    return [
        check
        for check in report["checks"]
        if any(needle in f"{check['name']} {check['message']}" for needle in needles)
    ]


def test_doctor_passes_the_iommu_and_interrupt_remapping_checks() -> None:
    require("doctor")
    result = hostdev("doctor", "-o", "json")
    report = json.loads(result.stdout)
    statuses = {check["name"]: check["status"] for check in report["checks"]}
    assert statuses["iommu-enabled"] == "PASS", report
    assert statuses["interrupt-remapping"] == "PASS", report
    assert result.returncode == (1 if "FAIL" in statuses.values() else 0), result.stderr


def test_doctor_finds_the_vfio_container_node_once_vfio_is_loaded() -> None:
    require("doctor")
    subprocess.run(["modprobe", "vfio-pci"], check=True)
    report = hostdev_json("doctor")
    (nodes,) = [check for check in report["checks"] if check["name"] == "vfio-nodes"]
    assert nodes["status"] == "PASS", nodes
    assert nodes["message"].startswith("/dev/vfio/vfio"), nodes


def test_doctor_reports_the_shared_group_viable_only_with_both_nics_on_vfio() -> None:
    require("doctor")
    bind_raw(E1000, "vfio-pci")
    assert not group_viable(SHARED_GROUP)
    half_bound = shared_group_checks(hostdev_json("doctor"))
    assert any(check["status"] != "PASS" for check in half_bound), half_bound

    bind_raw(RTL8139, "vfio-pci")
    assert group_viable(SHARED_GROUP)
    both_bound = shared_group_checks(hostdev_json("doctor"))
    assert all(check["status"] == "PASS" for check in both_bound), both_bound
