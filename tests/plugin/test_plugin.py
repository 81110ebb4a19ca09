"""The DevicePlugin service end to end: registration, ListAndWatch, Allocate, preferred
allocation, driven through a fake kubelet over real unix sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from conftest import NodeFactory
from fakekubelet import FakeKubelet, Registration

from hostdev.config import load_config
from hostdev.kubelet.api import deviceplugin_pb2 as pb
from hostdev.kubelet.api import deviceplugin_pb2_grpc as pb_grpc
from hostdev.kubelet.plugin import socket_name
from hostdev.testing.examples import build_example
from hostdev.testing.fakehost import FakeHost

T4 = "devices.kubevirt.io/10de_1eb8"


@asynccontextmanager
async def plugin_stub(plugin_dir: Path, resource: str) -> AsyncIterator[Any]:
    async with grpc.aio.insecure_channel(f"unix://{plugin_dir / socket_name(resource)}") as ch:
        yield pb_grpc.DevicePluginStub(ch)


async def registrations(kubelet: FakeKubelet, count: int) -> dict[str, Registration]:
    found = [await kubelet.accepted.get() for _ in range(count)]
    return {r.request.resource_name: r for r in found}


def allocate_request(*containers: list[str]) -> Any:
    return pb.AllocateRequest(
        container_requests=[pb.ContainerAllocateRequest(devices_ids=ids) for ids in containers]
    )


async def test_registers_every_resource_with_its_socket_and_options(
    kubelet: FakeKubelet, make_node: NodeFactory, gpu_host: FakeHost
) -> None:
    node = make_node(gpu_host)
    await node.start()
    regs = await registrations(kubelet, 3)
    assert sorted(regs) == ["devices.kubevirt.io/10de_1aeb", T4, "devices.kubevirt.io/10de_2184"]
    t4 = regs[T4]
    assert t4.request.version == "v1beta1"
    assert t4.request.endpoint == "hostdev-10de_1eb8-83f2218bb9.sock"
    assert t4.options.get_preferred_allocation_available
    assert not t4.options.pre_start_required


async def test_list_and_watch_sends_ids_health_and_numa(
    kubelet: FakeKubelet, make_node: NodeFactory, gpu_host: FakeHost
) -> None:
    node = make_node(gpu_host)
    await node.start()
    regs = await registrations(kubelet, 3)
    first = await regs[T4].lists.get()
    assert [(d.ID, d.health, [n.ID for n in d.topology.nodes]) for d in first.devices] == [
        ("0000:65:00.0", "Healthy", [0]),
        ("0000:b3:00.0", "Healthy", [1]),
    ]
    node.table.set_health("0000:b3:00.0", "AER fatal error")
    update = await regs[T4].lists.get()
    assert [(d.ID, d.health) for d in update.devices] == [
        ("0000:65:00.0", "Healthy"),
        ("0000:b3:00.0", "Unhealthy"),
    ]
    node.table.set_health("0000:b3:00.0", None)
    again = await regs[T4].lists.get()
    assert all(d.health == "Healthy" for d in again.devices)


async def test_list_and_watch_follows_a_rescan(
    kubelet: FakeKubelet, make_node: NodeFactory, gpu_host: FakeHost
) -> None:
    node = make_node(gpu_host)
    await node.start()
    regs = await registrations(kubelet, 3)
    await regs[T4].lists.get()
    gpu_host.remove_device("0000:b3:00.0")
    changes = await node.rescan()
    assert changes.added == changes.removed == ()
    update = await regs[T4].lists.get()
    assert [d.ID for d in update.devices] == ["0000:65:00.0"]


async def test_rescan_adds_and_removes_resources(
    kubelet: FakeKubelet, make_node: NodeFactory, gpu_host: FakeHost, plugin_dir: Path
) -> None:
    node = make_node(gpu_host)
    await node.start()
    await registrations(kubelet, 3)
    gpu_host.unbind("0000:17:00.1")
    gpu_host.add_device(
        "0000:3d:00.0", "8086", "6f54", "0b4000", driver="vfio-pci", iommu_group=30, numa_node=0
    )
    changes = await node.rescan()
    assert changes.removed == ("devices.kubevirt.io/10de_1aeb",)
    assert changes.added == ("devices.kubevirt.io/8086_6f54",)
    regs = await registrations(kubelet, 1)
    assert list(regs) == ["devices.kubevirt.io/8086_6f54"]
    assert not (plugin_dir / socket_name("devices.kubevirt.io/10de_1aeb")).exists()


async def test_multi_container_allocate_gives_each_container_its_own_devices(
    kubelet: FakeKubelet, make_node: NodeFactory, gpu_host: FakeHost, plugin_dir: Path
) -> None:
    node = make_node(gpu_host)
    await node.start()
    await registrations(kubelet, 3)
    async with plugin_stub(plugin_dir, T4) as stub:
        response = await stub.Allocate(allocate_request(["0000:b3:00.0"], ["0000:65:00.0"]))
    first, second = response.container_responses
    assert dict(first.envs) == {"PCI_RESOURCE_DEVICES_KUBEVIRT_IO_10DE_1EB8": "0000:b3:00.0"}
    assert dict(second.envs) == {"PCI_RESOURCE_DEVICES_KUBEVIRT_IO_10DE_1EB8": "0000:65:00.0"}
    assert [(d.container_path, d.host_path, d.permissions) for d in first.devices] == [
        ("/dev/vfio/vfio", "/dev/vfio/vfio", "mrw"),
        ("/dev/vfio/13", "/dev/vfio/13", "mrw"),
    ]
    assert [d.container_path for d in second.devices] == ["/dev/vfio/vfio", "/dev/vfio/11"]
    assert not first.mounts and not first.annotations


async def test_allocate_two_devices_in_one_container(
    kubelet: FakeKubelet, make_node: NodeFactory, gpu_host: FakeHost, plugin_dir: Path
) -> None:
    node = make_node(gpu_host)
    await node.start()
    await registrations(kubelet, 3)
    async with plugin_stub(plugin_dir, T4) as stub:
        response = await stub.Allocate(allocate_request(["0000:65:00.0", "0000:b3:00.0"]))
    (only,) = response.container_responses
    assert only.envs["PCI_RESOURCE_DEVICES_KUBEVIRT_IO_10DE_1EB8"] == "0000:65:00.0,0000:b3:00.0"
    assert [d.container_path for d in only.devices] == [
        "/dev/vfio/vfio",
        "/dev/vfio/11",
        "/dev/vfio/13",
    ]


@pytest.mark.parametrize(
    "ids,code,message",
    [
        (
            ["0000:65:00.0", "0000:99:00.0"],
            grpc.StatusCode.INVALID_ARGUMENT,
            "unknown device ID(s) 0000:99:00.0",
        ),
        (
            ["0000:b3:00.0"],
            grpc.StatusCode.FAILED_PRECONDITION,
            "0000:b3:00.0: the device fell off the bus",
        ),
    ],
    ids=["unknown-id", "unhealthy"],
)
async def test_allocate_refuses_without_a_partial_answer(
    kubelet: FakeKubelet,
    make_node: NodeFactory,
    gpu_host: FakeHost,
    plugin_dir: Path,
    ids: list[str],
    code: grpc.StatusCode,
    message: str,
) -> None:
    node = make_node(gpu_host)
    await node.start()
    regs = await registrations(kubelet, 3)
    await regs[T4].lists.get()
    node.table.set_health("0000:b3:00.0", "the device fell off the bus")
    await regs[T4].lists.get()
    async with plugin_stub(plugin_dir, T4) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Allocate(allocate_request(["0000:65:00.0"], ids))
    assert caught.value.code() == code
    assert message in (caught.value.details() or "")
    resent = await regs[T4].lists.get()  # the refusal comes with a fresh list
    assert [d.health for d in resent.devices] == ["Healthy", "Unhealthy"]


async def test_missing_vfio_group_node_is_unhealthy(
    kubelet: FakeKubelet, make_node: NodeFactory, gpu_host: FakeHost
) -> None:
    (gpu_host.root / "dev/vfio/13").unlink()
    node = make_node(gpu_host)
    await node.start()
    regs = await registrations(kubelet, 3)
    devices = (await regs[T4].lists.get()).devices
    assert [(d.ID, d.health) for d in devices] == [
        ("0000:65:00.0", "Healthy"),
        ("0000:b3:00.0", "Unhealthy"),
    ]


@pytest.mark.parametrize(
    ("iommufd", "cdevs", "container", "expected"),
    [
        (False, False, True, ["/dev/vfio/vfio", "/dev/vfio/11"]),
        # 6.2-6.5: /dev/iommu, but vfio-dev/vfioN has no node: iommufd is of no use yet
        (True, False, True, ["/dev/vfio/vfio", "/dev/vfio/11"]),
        (True, True, True, ["/dev/vfio/vfio", "/dev/vfio/11", "/dev/iommu", "cdev"]),
        (True, True, False, ["/dev/vfio/11", "/dev/iommu", "cdev"]),
    ],
    ids=["container-only", "iommufd-without-cdevs", "container-and-iommufd", "iommufd-only"],
)
async def test_allocate_hands_the_vfio_nodes_the_host_has(
    kubelet: FakeKubelet,
    make_node: NodeFactory,
    short_dir: Path,
    plugin_dir: Path,
    iommufd: bool,
    cdevs: bool,
    container: bool,
    expected: list[str],
) -> None:
    host = build_example("gpu-node", short_dir / "cdev")
    if cdevs:
        host.add_vfio_cdevs()
    elif iommufd:
        (host.root / "dev/iommu").write_text("")
    if not container:  # a kernel without the legacy container (CONFIG_VFIO_CONTAINER=n)
        (host.root / "dev/vfio/vfio").unlink()
    node = make_node(host)
    await node.start()
    await registrations(kubelet, 3)
    cdev = node.table.snapshot(T4).views[0].device.vfio_cdev  # type: ignore[union-attr]
    async with plugin_stub(plugin_dir, T4) as stub:
        response = await stub.Allocate(allocate_request(["0000:65:00.0"]))
    paths = [d.container_path for d in response.container_responses[0].devices]
    assert paths == [f"/dev/vfio/devices/{cdev}" if p == "cdev" else p for p in expected]


async def test_config_names_env_families_and_reset_option(
    kubelet: FakeKubelet,
    make_node: NodeFactory,
    gpu_host: FakeHost,
    plugin_dir: Path,
    short_dir: Path,
) -> None:
    path = short_dir / "c.yaml"
    path.write_text(
        "resources:\n- name: example.com/my-gpu.v2\n"
        "  selectors: [{device: '10de:1eb8'}]\n  env: [kubevirt, sriov]\n"
        "  reset: true\n"
    )
    node = make_node(gpu_host, load_config(path))
    await node.start()
    regs = await registrations(kubelet, 1)
    assert regs["example.com/my-gpu.v2"].options.pre_start_required
    async with plugin_stub(plugin_dir, "example.com/my-gpu.v2") as stub:
        response = await stub.Allocate(allocate_request(["0000:65:00.0"]))
        prestart = await stub.PreStartContainer(
            pb.PreStartContainerRequest(devices_ids=["0000:65:00.0"])
        )
    assert dict(response.container_responses[0].envs) == {
        "PCI_RESOURCE_EXAMPLE_COM_MY-GPU_V2": "0000:65:00.0",
        "PCIDEVICE_EXAMPLE_COM_MY-GPU_V2": "0000:65:00.0",
    }
    assert prestart == pb.PreStartContainerResponse()


async def test_a_reload_of_options_reaches_options_and_allocate_at_once(
    kubelet: FakeKubelet,
    make_node: NodeFactory,
    gpu_host: FakeHost,
    plugin_dir: Path,
    short_dir: Path,
) -> None:
    served = "resources:\n- {name: example.com/t4, selectors: [{device: '10de:1eb8'}]}\n"
    before, after = short_dir / "before.yaml", short_dir / "after.yaml"
    before.write_text(served)
    after.write_text(served.replace("}]}", "}], env: [sriov], reset: true}"))
    node = make_node(gpu_host, load_config(before))
    await node.start()
    assert not (await kubelet.accepted.get()).options.pre_start_required
    await node.reload(load_config(after))
    async with plugin_stub(plugin_dir, "example.com/t4") as stub:
        options = await stub.GetDevicePluginOptions(pb.Empty())
        response = await stub.Allocate(allocate_request(["0000:65:00.0"]))
    assert options.pre_start_required  # what the kubelet reads when it registers again
    assert dict(response.container_responses[0].envs) == {
        "PCIDEVICE_EXAMPLE_COM_T4": "0000:65:00.0"
    }


async def test_mdev_resource_allocates_uuids(
    kubelet: FakeKubelet, make_node: NodeFactory, short_dir: Path, plugin_dir: Path
) -> None:
    host = build_example("vgpu-node", short_dir / "vgpu")
    path = short_dir / "c.yaml"
    path.write_text(
        "permittedHostDevices:\n  mediatedDevices:\n"
        "  - {mdevNameSelector: GRID T4-2Q, resourceName: nvidia.com/GRID_T4-2Q,"
        " externalResourceProvider: true}\n"
    )
    node = make_node(host, load_config(path))
    await node.start()
    regs = await registrations(kubelet, 1)
    uuid = "4b20d080-1b54-4048-85b3-a6a62d165c01"
    assert [d.ID for d in (await regs["nvidia.com/GRID_T4-2Q"].lists.get()).devices] == [uuid]
    async with plugin_stub(plugin_dir, "nvidia.com/GRID_T4-2Q") as stub:
        response = await stub.Allocate(allocate_request([uuid]))
    (answer,) = response.container_responses
    assert dict(answer.envs) == {"MDEV_PCI_RESOURCE_NVIDIA_COM_GRID_T4-2Q": uuid}
    group = node.table.snapshot("nvidia.com/GRID_T4-2Q").views[0].device.iommu_group  # type: ignore[union-attr]
    assert [d.container_path for d in answer.devices] == ["/dev/vfio/vfio", f"/dev/vfio/{group}"]


async def test_get_preferred_allocation(
    kubelet: FakeKubelet, make_node: NodeFactory, gpu_host: FakeHost, plugin_dir: Path
) -> None:
    node = make_node(gpu_host)
    await node.start()
    await registrations(kubelet, 3)
    request = pb.PreferredAllocationRequest(
        container_requests=[
            pb.ContainerPreferredAllocationRequest(
                available_deviceIDs=["0000:65:00.0", "0000:b3:00.0"],
                must_include_deviceIDs=["0000:b3:00.0"],
                allocation_size=1,
            ),
            pb.ContainerPreferredAllocationRequest(
                available_deviceIDs=["0000:b3:00.0", "0000:65:00.0"], allocation_size=2
            ),
        ]
    )
    async with plugin_stub(plugin_dir, T4) as stub:
        response = await stub.GetPreferredAllocation(request)
    assert [list(r.deviceIDs) for r in response.container_responses] == [
        ["0000:b3:00.0"],
        ["0000:65:00.0", "0000:b3:00.0"],
    ]


async def test_node_with_nothing_to_serve(
    kubelet: FakeKubelet, make_node: NodeFactory, short_dir: Path, plugin_dir: Path
) -> None:
    host = build_example("no-iommu", short_dir / "none")
    node = make_node(host)
    await node.start()
    await node.wait_registered()
    assert node.registrars == {}
    assert sorted(p.name for p in plugin_dir.iterdir()) == ["kubelet.sock"]
