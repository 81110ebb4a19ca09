"""`hostdev serve` on the real kernel, driven by the kubelet simulator (with PodResources).

Most scenarios move the three e1000e NICs to vfio-pci (raw sysfs writes), so the plugin serves
them with no config as devices.kubevirt.io/8086_10d3. Allocate answers must name only the
kernel's own VFIO nodes for the devices' real groups, groups the kernel calls viable, and
KubeVirt's variable their addresses (NICs, two VFs of the NVMe PF). The daemon's other work
meets the real kernel too: `bind: onStart` (and its guard for an interface in use), group
accounting on the shared group 13, `reset: true` through sysfs `reset`, VFs that come and go
while it serves, and health: a removed or unbound NIC leaves Allocatable within
HEALTH_BOUND_S, and a PCI rescan brings it back.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from .guest import (
    E1000,
    E1000E,
    HOSTDEV,
    NVME_PF,
    RTL8139,
    SHARED_GROUP,
    SYS_PCI,
    VFIO_DEVICE_FLAGS_PCI,
    VfioDeviceInfo,
    bind_raw,
    driver_of,
    group_viable,
    hostdev,
    hostdev_json,
    record_figure,
    require,
    require_flag,
    sysfs_groups,
    unbind_raw,
    vfio_cdevs,
    vmm_open_cdev,
    vmm_open_devices,
    write_sysfs,
)

pytestmark = pytest.mark.guest
RESOURCE = "devices.kubevirt.io/8086_10d3"
ENV_NAME = "PCI_RESOURCE_DEVICES_KUBEVIRT_IO_8086_10D3"  # KubeVirt's name for RESOURCE
# Generous for TCG: every Python instruction is emulated. The measured figure is recorded.
HEALTH_BOUND_S = 60.0
START_BOUND_S = 240.0


@asynccontextmanager
async def kubelet_and_plugin(
    plugin_dir: Path, log: Path, resource: str = RESOURCE, *serve_args: str
) -> AsyncIterator[Any]:
    """The kubelet simulator in this process and `hostdev serve` as a child process.

    The simulator also serves PodResources next to plugin_dir, as the kubelet does. Yields
    the simulator once the plugin registered resource; fails at once if serve exits first.
    """
    from hostdev.kubelet.simulator import KubeletSimulator

    pod_resources = plugin_dir.parent / f"{plugin_dir.name}-pod-resources.sock"
    sim = KubeletSimulator(plugin_dir, pod_resources)
    await sim.start()
    args = ("--plugin-dir", str(plugin_dir), "--pod-resources-socket", str(pod_resources))
    with log.open("w") as out:
        serve = await asyncio.create_subprocess_exec(
            *HOSTDEV, "serve", *args, *serve_args, stdout=out, stderr=out
        )
    try:
        exited = asyncio.ensure_future(serve.wait())
        registered = asyncio.ensure_future(sim.wait_registered(resource, timeout=START_BOUND_S))
        await asyncio.wait([exited, registered], return_when=asyncio.FIRST_COMPLETED)
        if exited.done():
            registered.cancel()
            raise AssertionError(f"hostdev serve exited with {serve.returncode}")
        exited.cancel()
        await registered
        yield sim
    finally:
        if serve.returncode is None:
            serve.terminate()
        await serve.wait()
        await sim.stop()


async def seconds_until(sim: Any, healthy: int) -> float:
    """How long until the resource shows `healthy` allocatable devices (bounded)."""
    start = time.monotonic()
    await sim.wait_devices(RESOURCE, healthy, timeout=HEALTH_BOUND_S)
    return round(time.monotonic() - start, 3)


async def scenario(plugin_dir: Path, log: Path) -> dict[str, float]:
    """Advertise three NICs, remove one, unbind one, rescan; the measured latencies."""
    figures: dict[str, float] = {}
    removed, unbound = E1000E[0], E1000E[1]
    async with kubelet_and_plugin(plugin_dir, log) as sim:
        await sim.wait_devices(RESOURCE, 3, timeout=START_BOUND_S)

        write_sysfs(SYS_PCI / "devices" / removed / "remove", "1")
        figures["removed device leaves Allocatable (s)"] = await seconds_until(sim, 2)
        unbind_raw(unbound)
        figures["unbound device leaves Allocatable (s)"] = await seconds_until(sim, 1)

        write_sysfs(SYS_PCI / "rescan", "1")
        assert (SYS_PCI / "devices" / removed).exists()
        bind_raw(removed, "vfio-pci")
        bind_raw(unbound, "vfio-pci")
        figures["rescanned + rebound devices healthy again (s)"] = await seconds_until(sim, 3)
        assert set(sim.devices(RESOURCE)) >= set(E1000E)
    return figures


def kernel_nodes(address: str, group: int) -> dict[str, str]:
    """The VFIO nodes this kernel has for a device: host path → the permissions to hand out."""
    nodes = [f"/dev/vfio/{group}"]
    if os.path.exists("/dev/vfio/vfio"):  # the legacy container (CONFIG_VFIO_CONTAINER)
        nodes.append("/dev/vfio/vfio")
    cdevs = vfio_cdevs(address)
    if cdevs and os.path.exists("/dev/iommu"):  # iommufd with device cdevs (6.6+)
        nodes += ["/dev/iommu", *(f"/dev/vfio/devices/{cdev}" for cdev in cdevs)]
    return dict.fromkeys(nodes, "mrw")


def is_pci_device(info: VfioDeviceInfo) -> bool:
    """VFIO's info for a PCI function: the PCI flag, the BAR, ROM and config regions, IRQs."""
    return bool(info.flags & VFIO_DEVICE_FLAGS_PCI) and info.regions >= 8 and info.irqs >= 1


def allocated_specs(response: Any) -> dict[str, str]:
    """A ContainerAllocateResponse's device nodes: host path → permissions, each checked as a
    character device of the guest's /dev, mounted at the same path in the container, once."""
    specs = {}
    for spec in response.devices:
        assert spec.container_path == spec.host_path and spec.host_path not in specs
        assert stat.S_ISCHR(os.stat(spec.host_path).st_mode), f"{spec.host_path}: no such node"
        specs[spec.host_path] = spec.permissions
    return specs


async def allocate_two_containers(plugin_dir: Path, log: Path) -> dict[str, Any]:
    """One pod, two containers asking for one NIC each: the devices and each answer."""
    async with kubelet_and_plugin(plugin_dir, log) as sim:
        await sim.wait_devices(RESOURCE, 3, timeout=START_BOUND_S)
        pod = await sim.create_pod("vm", {"a": {RESOURCE: 1}, "b": {RESOURCE: 1}})
        return {c.name: (c.devices[RESOURCE], c.responses[RESOURCE]) for c in pod.containers}


def serve_session(scenario_of: Any, log: Path, *, nics_on_vfio: bool = True) -> Any:
    """Run one scenario against `hostdev serve`, the e1000e NICs first put on vfio-pci."""
    if nics_on_vfio:
        for address in E1000E:
            bind_raw(address, "vfio-pci")
        assert all(driver_of(address) == "vfio-pci" for address in E1000E)
    # Unix socket paths must stay under 108 bytes; pytest's tmp_path is too deep.
    plugin_dir = Path(tempfile.mkdtemp(prefix="hostdev-plugins-", dir="/run"))
    try:
        return asyncio.run(scenario_of(plugin_dir, log))
    except (TimeoutError, AssertionError):
        print(log.read_text(errors="replace")[-4000:])
        raise
    finally:
        shutil.rmtree(plugin_dir, ignore_errors=True)


def test_allocate_hands_the_kernels_vfio_nodes_for_viable_groups(tmp_path: Path) -> None:
    require("serve")
    answers = serve_session(allocate_two_containers, tmp_path / "serve.log")
    groups = sysfs_groups()
    handed = []
    for devices, response in answers.values():
        assert len(devices) == 1 and devices[0] in E1000E
        address = devices[0]
        handed.append(address)
        group = groups[address]
        assert allocated_specs(response) == kernel_nodes(address, group)
        assert group_viable(group)
        assert dict(response.envs) == {ENV_NAME: address}
        # what the VMM in the container does with them: the device's own fd, through VFIO
        to_open = [(f"/dev/vfio/{group}", response.envs[ENV_NAME])]
        assert all(is_pci_device(info) for info in vmm_open_devices("/dev/vfio/vfio", to_open))
    assert len(set(handed)) == 2  # each container got its own NIC


def test_a_vmm_opens_the_allocated_cdev_through_iommufd_alone(tmp_path: Path) -> None:
    """Where the kernel has VFIO device cdevs (6.6+ built with iommufd), Allocate hands
    /dev/iommu and each device's cdev, and a VMM with an iommufd backend needs no more."""
    require("serve")
    bind_raw(E1000E[0], "vfio-pci")
    if not (vfio_cdevs(E1000E[0]) and os.path.exists("/dev/iommu")):
        pytest.skip("this kernel has no VFIO device cdevs (6.6+ built with CONFIG_IOMMUFD)")
    answers = serve_session(allocate_two_containers, tmp_path / "serve.log")
    for devices, response in answers.values():
        cdev = f"/dev/vfio/devices/{vfio_cdevs(devices[0])[0]}"
        assert {"/dev/iommu", cdev} <= allocated_specs(response).keys()
        assert is_pci_device(vmm_open_cdev("/dev/iommu", cdev))


NIC_RESOURCE = "example.com/nic"
BIND_ON_START = f"""
resources:
- name: {NIC_RESOURCE}
  selectors: [{{device: "8086:10d3"}}]
  bind: onStart
"""


@contextmanager
def interface_in_use(address: str) -> Iterator[str]:
    """The NIC's interface up with an IPv4 address, as on a host that uses it; undone after."""
    ifname = os.listdir(SYS_PCI / "devices" / address / "net")[0]
    ip = ["ip", "-4"]
    subprocess.run([*ip, "address", "add", "192.0.2.10/24", "dev", ifname], check=True)
    subprocess.run([*ip, "link", "set", ifname, "up"], check=True)
    try:
        yield ifname
    finally:
        subprocess.run([*ip, "address", "flush", "dev", ifname], check=False)
        subprocess.run([*ip, "link", "set", ifname, "down"], check=False)


def bind_on_start(config: Path) -> Any:
    """A scenario: serve the config; the devices served once the start's binding is done."""

    async def scenario(plugin_dir: Path, log: Path) -> list[str]:
        args = ("--config", str(config))
        async with kubelet_and_plugin(plugin_dir, log, NIC_RESOURCE, *args) as sim:
            await sim.wait_devices(NIC_RESOURCE, 2, timeout=START_BOUND_S)
            return sorted(sim.devices(NIC_RESOURCE))

    return scenario


def test_serve_binds_on_start_all_but_the_nic_in_use_and_restore_undoes_it(tmp_path: Path) -> None:
    require("serve")
    assert [driver_of(address) for address in E1000E] == ["e1000e"] * 3
    config = tmp_path / "hostdev.yaml"
    config.write_text(BIND_ON_START)
    log = tmp_path / "serve.log"
    with interface_in_use(E1000E[2]) as ifname:
        served = serve_session(bind_on_start(config), log, nics_on_vfio=False)
        address = subprocess.run(
            ["ip", "-4", "-o", "address", "show", ifname],
            text=True,
            capture_output=True,
            check=True,
        ).stdout
    assert served == sorted(E1000E[:2])
    assert [driver_of(a) for a in E1000E] == ["vfio-pci", "vfio-pci", "e1000e"]
    assert "192.0.2.10/24" in address  # the host kept its interface
    refusal = [line for line in log.read_text().splitlines() if E1000E[2] in line]
    assert any("refused" in line and ifname in line for line in refusal), refusal
    # the daemon recorded what it changed in the CLI's default state file
    restored = hostdev("restore", "--all")
    assert restored.returncode == 0, restored.stderr
    assert [driver_of(a) for a in E1000E] == ["e1000e"] * 3


def resource_of(address: str) -> str:
    """The no-config resource name of a device, from its IDs in sysfs."""
    device_dir = SYS_PCI / "devices" / address
    vendor, device = ((device_dir / name).read_text()[2:6] for name in ("vendor", "device"))
    return f"devices.kubevirt.io/{vendor}_{device}"


async def hold_one_of_the_shared_group(plugin_dir: Path, log: Path) -> dict[str, Any]:
    """A pod takes the e1000 of group 13; what the 8139 then shows, and a second pod's fate."""
    from hostdev.kubelet.admission import AllocationError

    held, other = resource_of(E1000), resource_of(RTL8139)
    async with kubelet_and_plugin(plugin_dir, log, held) as sim:
        await sim.wait_registered(other, timeout=START_BOUND_S)
        for resource in (held, other):  # both healthy once PodResources says nothing is in use
            await sim.wait_devices(resource, 1, timeout=START_BOUND_S)
        pod = await sim.create_pod("vm-a", {"compute": {held: 1}})
        await sim.wait_devices(other, 0, timeout=HEALTH_BOUND_S)  # group 13 is vm-a's now
        try:
            await sim.create_pod("vm-b", {"compute": {other: 1}})
            refused = ""
        except AllocationError as err:
            refused = str(err)
        return {"a": pod.containers[0].responses[held], "b refused": refused}


def test_serve_keeps_a_shared_groups_other_nic_from_a_second_pod(tmp_path: Path) -> None:
    require("serve")
    for address in (E1000, RTL8139):
        bind_raw(address, "vfio-pci")
    assert group_viable(SHARED_GROUP)
    outcome = serve_session(
        hold_one_of_the_shared_group, tmp_path / "serve.log", nics_on_vfio=False
    )
    assert allocated_specs(outcome["a"]) == kernel_nodes(E1000, SHARED_GROUP)
    # the kubelet's own words when a resource has no healthy device left
    assert "no healthy devices present" in outcome["b refused"]


async def allocate_both_vfs(plugin_dir: Path, log: Path) -> tuple[list[str], Any]:
    """One container asking for two VFs of the NVMe PF: its devices and the answer."""
    resource = resource_of(NVME_PF)  # the VFs share the PF's IDs; the PF itself is on nvme
    async with kubelet_and_plugin(plugin_dir, log, resource) as sim:
        await sim.wait_devices(resource, 2, timeout=START_BOUND_S)
        pod = await sim.create_pod("vm", {"compute": {resource: 2}})
        container = pod.containers[0]
        return container.devices[resource], container.responses[resource]


def test_allocate_hands_two_vfs_their_own_groups_and_both_addresses(tmp_path: Path) -> None:
    require("serve", "sriov")
    state = str(tmp_path / "state.json")
    created = hostdev("sriov", "set", NVME_PF, "2", "--bind", "vfio-pci", "--state-file", state)
    assert created.returncode == 0, created.stderr
    vfs = sorted(link.resolve().name for link in (SYS_PCI / "devices" / NVME_PF).glob("virtfn*"))
    log = tmp_path / "serve.log"
    devices, response = serve_session(allocate_both_vfs, log, nics_on_vfio=False)
    assert sorted(devices) == vfs
    groups = sysfs_groups()
    expected: dict[str, str] = {}
    for vf in devices:
        expected |= kernel_nodes(vf, groups[vf])
        assert group_viable(groups[vf])
    assert allocated_specs(response) == expected
    env = "PCI_RESOURCE_DEVICES_KUBEVIRT_IO_1B36_0010"  # KubeVirt's name for the VFs' resource
    assert dict(response.envs) == {env: ",".join(devices)}
    # a VM with both: their two groups in one VFIO container, each device reachable
    to_open = [(f"/dev/vfio/{groups[vf]}", vf) for vf in response.envs[env].split(",")]
    assert all(is_pci_device(info) for info in vmm_open_devices("/dev/vfio/vfio", to_open))


RESET_CONFIG = """
resources:
- name: example.com/nic
  selectors: [{device: "8086:10d3"}]
  reset: true
- name: example.com/legacy
  selectors: [{device: "10ec:8139"}]
  reset: true
"""


def start_with_reset(config: Path) -> Any:
    """A scenario: one pod per resource of RESET_CONFIG; each container's start error."""

    async def scenario(plugin_dir: Path, log: Path) -> dict[str, str | None]:
        args = ("--config", str(config))
        async with kubelet_and_plugin(plugin_dir, log, "example.com/nic", *args) as sim:
            outcome = {}
            for resource in ("example.com/nic", "example.com/legacy"):
                await sim.wait_devices(resource, 1 if "legacy" in resource else 3, START_BOUND_S)
                pod = await sim.create_pod(resource.split("/")[1], {"c": {resource: 1}})
                outcome[resource] = pod.containers[0].start_error
            return outcome

    return scenario


def test_reset_before_start_works_where_the_kernel_can_reset_and_says_why_not_elsewhere(
    tmp_path: Path,
) -> None:
    require("serve")
    for address in (*E1000E, E1000, RTL8139):
        bind_raw(address, "vfio-pci")
    assert not (SYS_PCI / "devices" / RTL8139 / "reset").exists()  # no reset method at all
    config = tmp_path / "hostdev.yaml"
    config.write_text(RESET_CONFIG)
    log = tmp_path / "serve.log"
    started = serve_session(start_with_reset(config), log, nics_on_vfio=False)
    assert started["example.com/nic"] is None  # the kernel reset the e1000e (pm or bus)
    resets = [line for line in log.read_text().splitlines() if "PreStartContainer: reset 0" in line]
    assert len(resets) == 1 and any(address in resets[0] for address in E1000E), resets
    assert f"{RTL8139} cannot be reset" in (started["example.com/legacy"] or "")


async def vfs_come_and_go(plugin_dir: Path, log: Path) -> dict[str, float]:
    """Serving the NICs, VFs created and put on vfio-pci become a new resource; VFs removed
    leave it with nothing allocatable. The measured latencies."""
    resource = resource_of(NVME_PF)
    numvfs = SYS_PCI / "devices" / NVME_PF / "sriov_numvfs"
    figures = {}
    async with kubelet_and_plugin(plugin_dir, log) as sim:
        await sim.wait_devices(RESOURCE, 3, timeout=START_BOUND_S)
        start = time.monotonic()
        write_sysfs(numvfs, "2")
        for vf in sorted(link.resolve().name for link in numvfs.parent.glob("virtfn*")):
            bind_raw(vf, "vfio-pci")
        await sim.wait_devices(resource, 2, timeout=HEALTH_BOUND_S)
        figures["new VFs on vfio-pci -> a new resource, both allocatable (s)"] = round(
            time.monotonic() - start, 3
        )
        start = time.monotonic()
        write_sysfs(numvfs, "0")
        await sim.wait_for(lambda: not sim.allocatable().get(resource), HEALTH_BOUND_S)
        figures["VFs removed -> nothing allocatable (s)"] = round(time.monotonic() - start, 3)
        assert sim.allocatable()[RESOURCE] == 3  # the NICs were never disturbed
    return figures


def test_serve_takes_up_new_vfs_as_a_new_resource_and_drops_them(tmp_path: Path) -> None:
    require("serve")
    figures = serve_session(vfs_come_and_go, tmp_path / "serve.log")
    for name, value in figures.items():
        record_figure(f"serve live: {name}", value)


def test_serve_reports_removed_and_unbound_devices_and_recovers_after_rescan(
    tmp_path: Path,
) -> None:
    require("serve")
    require_flag("serve", "--rescan-interval", "the live health watch")
    figures = serve_session(scenario, tmp_path / "serve.log")
    for name, value in figures.items():
        record_figure(f"serve health: {name}", value)


# A VFIO variant driver built on vfio-pci-core. The driver_override write makes any function
# match it, and for a function that is not a virtio VF it is plain vfio-pci-core: enough to
# check that hostdev treats a variant as VFIO. Debian builds no variant driver; the iommufd
# build here has this one.
VARIANT = "virtio_vfio_pci"


async def allocate_one(plugin_dir: Path, log: Path) -> tuple[list[str], Any]:
    """One container asking for one NIC: its devices and the answer."""
    async with kubelet_and_plugin(plugin_dir, log) as sim:
        await sim.wait_devices(RESOURCE, 1, timeout=START_BOUND_S)
        pod = await sim.create_pod("vm", {"compute": {RESOURCE: 1}})
        container = pod.containers[0]
        return container.devices[RESOURCE], container.responses[RESOURCE]


def test_bind_driver_puts_a_nic_on_a_vfio_variant_served_and_kept_there(tmp_path: Path) -> None:
    require("serve")
    if subprocess.run(["modprobe", "-n", VARIANT], capture_output=True).returncode != 0:
        pytest.skip(f"this kernel has no {VARIANT} module (Debian builds no VFIO variant)")
    address = E1000E[0]
    state = str(tmp_path / "state.json")
    (moved,) = hostdev_json("bind", "--driver", VARIANT, address, "--state-file", state)["devices"]
    assert (moved["from"], moved["to"], moved["action"]) == ("e1000e", VARIANT, "bound")
    assert driver_of(address) == VARIANT  # its module loaded by hostdev, as for vfio-pci
    group = sysfs_groups()[address]
    listed = {d["address"]: d for d in hostdev_json("list")["devices"]}[address]
    ready = {"state": "ready", "reason": f"on {VARIANT}, group {group} viable"}
    assert listed["readiness"] == ready
    (kept,) = hostdev_json("bind", address, "--state-file", state)["devices"]
    assert (kept["action"], kept["to"], driver_of(address)) == ("already-bound", VARIANT, VARIANT)
    devices, response = serve_session(allocate_one, tmp_path / "serve.log", nics_on_vfio=False)
    assert devices == [address]  # the other two NICs stay on e1000e
    assert allocated_specs(response) == kernel_nodes(address, group)
    to_open = [(f"/dev/vfio/{group}", address)]
    assert all(is_pci_device(info) for info in vmm_open_devices("/dev/vfio/vfio", to_open))
    restored = hostdev("restore", "--all", "--state-file", state)
    assert restored.returncode == 0, restored.stderr
    assert driver_of(address) == "e1000e"
