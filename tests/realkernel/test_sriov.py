"""`hostdev sriov set` on the emulated NVMe PF: real VFs, their own IOMMU groups, ENOENT."""

from __future__ import annotations

from pathlib import Path

import pytest

from .guest import (
    NVME_PF,
    SYS_PCI,
    bind_raw,
    driver_of,
    group_viable,
    hostdev,
    hostdev_json,
    require,
    sysfs_groups,
    unbind_raw,
    vfio_cdevs,
)

pytestmark = pytest.mark.guest


def virtual_functions() -> list[str]:
    """Addresses of the PF's VFs, as its virtfnN links name them."""
    pf = SYS_PCI / "devices" / NVME_PF
    return sorted(link.resolve().name for link in pf.glob("virtfn*"))


def test_sriov_set_creates_vfs_in_their_own_groups_and_removes_them() -> None:
    require("sriov")
    created = hostdev("sriov", "set", NVME_PF, "3")
    assert created.returncode == 0, created.stderr
    vfs = virtual_functions()
    assert len(vfs) == 3
    groups = sysfs_groups()
    vf_groups = {groups[vf] for vf in vfs}
    assert len(vf_groups) == 3 and groups[NVME_PF] not in vf_groups
    assert all(list(groups.values()).count(group) == 1 for group in vf_groups)

    removed = hostdev("sriov", "set", NVME_PF, "0")
    assert removed.returncode == 0, removed.stderr
    assert virtual_functions() == []
    assert not set(vfs) & set(sysfs_groups())


def test_sriov_set_on_a_pf_without_driver_says_so() -> None:
    require("sriov")
    unbind_raw(NVME_PF)
    result = hostdev("sriov", "set", NVME_PF, "3")
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "no driver" in result.stderr.lower() + result.stdout.lower()
    assert virtual_functions() == []


def test_list_describes_vfs_on_vfio_pci_unbound_and_as_created_as_sysfs_does() -> None:
    """VFs its PF names on vfio-pci or unbound are read without a directory listing: the
    kernel's own tree must still give the same driver, PF, index, group and cdev."""
    require("sriov", "list")
    assert hostdev("sriov", "set", NVME_PF, "3").returncode == 0
    vfs = virtual_functions()
    bind_raw(vfs[0], "vfio-pci")
    unbind_raw(vfs[1])
    listed = {d["address"]: d for d in hostdev_json("list")["devices"]}
    groups = sysfs_groups()
    for index, vf in enumerate(vfs):
        cdevs = vfio_cdevs(vf)
        expected = (driver_of(vf), NVME_PF, index, groups[vf], cdevs[0] if cdevs else None)
        device = listed[vf]
        assert (
            device["driver"],
            device["physfn"],
            device["vf_index"],
            device["iommu_group"],
            device["vfio_cdev"],
        ) == expected, vf
    assert listed[vfs[0]]["driver"] == "vfio-pci" and listed[vfs[1]]["driver"] is None


@pytest.mark.parametrize(
    "autoprobe",
    ["--autoprobe", "--no-autoprobe"],
    ids=["vfs-probed-by-nvme-first", "vfs-created-without-driver"],
)
def test_sriov_set_with_bind_puts_every_new_vf_on_vfio_pci(tmp_path: Path, autoprobe: str) -> None:
    """Seed 003's recipe in one command: create VFs and hand them to vfio-pci. With autoprobe
    on, nvme probes each new VF and gives up about half a second later, racing the bind."""
    require("sriov")
    state = tmp_path / "state.json"
    created = hostdev(
        "sriov", "set", NVME_PF, "3", "--bind", "vfio-pci", autoprobe, "--state-file", str(state)
    )
    assert created.returncode == 0, created.stderr
    vfs = virtual_functions()
    assert len(vfs) == 3 and all(driver_of(vf) == "vfio-pci" for vf in vfs)
    assert all(group_viable(group) for vf, group in sysfs_groups().items() if vf in vfs)
    removed = hostdev("sriov", "set", NVME_PF, "0", "--state-file", str(state))
    assert removed.returncode == 0, removed.stderr
    assert virtual_functions() == []
    assert "forgot the binding records of 3 removed VFs" in removed.stdout
    restored = hostdev("restore", "--all", "--state-file", str(state))
    assert restored.returncode == 0, restored.stderr  # nothing left that cannot be restored
