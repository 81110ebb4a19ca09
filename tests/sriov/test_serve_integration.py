"""The serve config's SR-IOV and mdev parts: loading, selection with tags, Allocate envs, and
provisioning at start on the fake kernel."""

from pathlib import Path

import pytest
import yaml

from hostdev.config import load_config
from hostdev.daemon.provision import provision, start_facts
from hostdev.errors import ConfigError
from hostdev.host.model import VFIO_PCI, PciAddress
from hostdev.host.scan import scan_host
from hostdev.kubelet.envs import tag_env_name, tag_envs
from hostdev.kubelet.plugin import VfioNodes, container_response
from hostdev.selection import select
from hostdev.sriov import Waiter
from hostdev.testing.examples import add_vgpu
from hostdev.testing.fakehost import FakeHost
from hostdev.testing.fakekernel import FakeKernelWriter

SEED_EXCLUDE = "enp4s0f1:0000:04:10.1; 0000:04:10.3"


def config_file(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "hostdev.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


NATIVE = {
    "resources": [
        {
            "name": "intel.com/sriov_physnet1",
            "selectors": [
                {"novaDeviceSpec": '{"devname": "enp4s0f1", "physical_network": "physnet1"}'}
            ],
            "excludeDevices": SEED_EXCLUDE,
            "env": ["kubevirt", "sriov"],
        },
        {"name": "intel.com/other_vfs", "selectors": [{"pfDevice": "8086:10c9"}]},
    ],
    "sriov": [{"pf": "enp4s0f0", "numVfs": 2, "bind": "vfio-pci"}],
    "mediatedDevicesConfiguration": {"mediatedDevicesTypes": ["nvidia-233"]},
}


def test_native_config_loads_every_part(tmp_path: Path, nic: FakeHost) -> None:
    config = load_config(config_file(tmp_path, NATIVE))
    assert [s.pf for s in config.sriov] == ["enp4s0f0"]
    assert config.mediated_devices is not None
    assert config.mediated_devices.types == ("nvidia-233",)
    physnet, other = select(scan_host(nic.fs), config)
    assert [d.id for d in physnet.devices] == [
        "0000:04:10.5",
        "0000:04:10.7",
        "0000:04:11.1",
        "0000:04:11.3",
        "0000:04:11.5",
    ]
    assert {d.tags for d in physnet.devices} == {(("physical_network", "physnet1"),)}
    assert [d.id for d in other.devices] == ["0000:04:10.1", "0000:04:10.3"]
    assert other.devices[0].tags == ()


def test_allocate_carries_the_physical_network(tmp_path: Path, nic: FakeHost) -> None:
    (physnet, _) = select(scan_host(nic.fs), load_config(config_file(tmp_path, NATIVE)))
    nodes = VfioNodes(container=True, iommufd=False)
    response = container_response(physnet, physnet.devices[:2], nodes)
    envs = dict(response.envs)
    assert envs["HOSTDEV_TAG_PHYSICAL_NETWORK_INTEL_COM_SRIOV_PHYSNET1"] == "physnet1,physnet1"
    assert envs["PCIDEVICE_INTEL_COM_SRIOV_PHYSNET1"] == "0000:04:10.5,0000:04:10.7"
    assert envs["PCI_RESOURCE_INTEL_COM_SRIOV_PHYSNET1"] == "0000:04:10.5,0000:04:10.7"


def test_tag_envs_keep_device_order() -> None:
    tags = [(("physical_network", "a"),), (), (("physical_network", "b"), ("trusted", "true"))]
    assert tag_envs("x.io/n", tags) == {
        "HOSTDEV_TAG_PHYSICAL_NETWORK_X_IO_N": "a,,b",
        "HOSTDEV_TAG_TRUSTED_X_IO_N": ",,true",
    }
    assert tag_env_name("remote-managed", "a.b/c") == "HOSTDEV_TAG_REMOTE_MANAGED_A_B_C"


def test_hyperconverged_cr_brings_its_mdev_configuration(tmp_path: Path) -> None:
    cr = {
        "apiVersion": "hco.kubevirt.io/v1",
        "kind": "HyperConverged",
        "spec": {
            "mediatedDevicesConfiguration": {
                "mediatedDevicesTypes": ["nvidia-231"],
                "nodeMediatedDeviceTypes": [
                    {
                        "mediatedDevicesTypes": ["nvidia-233"],
                        "nodeSelector": {"kubernetes.io/hostname": "n11"},
                    }
                ],
            },
            "permittedHostDevices": {
                "mediatedDevices": [
                    {"mdevNameSelector": "GRID T4-2Q", "resourceName": "nvidia.com/GRID_T4-2Q"}
                ]
            },
        },
    }
    config = load_config(config_file(tmp_path, cr), kubevirt_entries="all")
    assert config.mediated_devices is not None
    assert config.mediated_devices.node_types[0].types == ("nvidia-233",)
    assert [r.name for r in config.resources] == ["nvidia.com/GRID_T4-2Q"]


def test_only_provisioning_sections_are_a_valid_file(tmp_path: Path) -> None:
    config = load_config(config_file(tmp_path, {"sriov": [{"pf": "enp4s0f0", "numVfs": 1}]}))
    assert config.resources == () and len(config.sriov) == 1


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        (
            {
                "resources": [
                    {"name": "a.io/b", "selectors": [{"novaDeviceSpec": '{"vendor_id": "10000"}'}]}
                ]
            },
            "resources[0].selectors[0].novaDeviceSpec",
            "vendor_id: vendor_id '10000' is greater",
        ),
        (
            {"resources": [{"name": "a.io/b", "selectors": [{"pfDevice": "8086"}]}]},
            "resources[0].selectors[0].pfDevice",
            "vendor:device pair",
        ),
        (
            {
                "resources": [
                    {"name": "a.io/b", "selectors": [{"vendor": "8086"}], "excludeDevices": "eth1"}
                ]
            },
            "resources[0].excludeDevices",
            "invalid mapping",
        ),
        ({"sriov": [{"pf": "enp4s0f0", "numVfs": -2}]}, "sriov[0].numVfs", "whole number"),
        (
            {
                "mediatedDevicesConfiguration": {
                    "nodeMediatedDeviceTypes": [{"mediatedDevicesTypes": ["a"]}]
                }
            },
            "mediatedDevicesConfiguration.nodeMediatedDeviceTypes[0].nodeSelector",
            "non-empty",
        ),
    ],
    ids=["nova-range", "pf-device", "exclude-devices", "sriov", "mdev"],
)
def test_config_errors_name_the_field(
    tmp_path: Path, data: object, field: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(config_file(tmp_path, data))
    assert err.value.field == field
    assert reason in err.value.reason


# -- provisioning at start -------------------------------------------------------------------
def test_provision_creates_vfs_and_mdevs(tmp_path: Path, nic: FakeHost) -> None:
    add_vgpu(nic)
    config = load_config(config_file(tmp_path, NATIVE))
    report = provision(nic.fs, FakeKernelWriter(nic), config, waiter=Waiter(timeout=5))
    assert report.problems == []
    host = scan_host(nic.fs)
    pf = host.devices[PciAddress.parse("0000:04:00.0")]
    assert pf.sriov is not None and pf.sriov.num_vfs == 2
    assert {host.devices[v].driver for v in pf.sriov.vfs} == {VFIO_PCI}
    assert sorted(m.type_id for m in host.mdevs) == ["nvidia-233", "nvidia-233"]
    assert any(c.startswith("mdev: remove ") for c in report.changes)


def test_provision_keeps_what_pods_hold_and_reports_problems(tmp_path: Path, nic: FakeHost) -> None:
    add_vgpu(nic)
    data = {
        "sriov": [{"pf": "enp4s0f1", "numVfs": 2}, {"pf": "eth7", "numVfs": 1}],
        "mediatedDevicesConfiguration": {"mediatedDevicesTypes": []},
    }
    config = load_config(config_file(tmp_path, data))
    held = frozenset({"0000:04:10.1", "4b20d080-1b54-4048-85b3-a6a62d165c01"})
    report = provision(nic.fs, FakeKernelWriter(nic), config, in_use=held)
    assert len(report.problems) == 2 and report.changes == []
    host = scan_host(nic.fs)
    assert host.devices[PciAddress.parse("0000:04:00.1")].sriov.num_vfs == 7  # type: ignore[union-attr]
    assert len(host.mdevs) == 1


def test_start_facts(tmp_path: Path) -> None:
    labels_file = tmp_path / "labels.yaml"
    labels_file.write_text("gpu: big\n")
    data = {
        "mediatedDevicesConfiguration": {
            "nodeMediatedDeviceTypes": [
                {"mediatedDevicesTypes": ["a"], "nodeSelector": {"gpu": "big"}}
            ]
        }
    }
    config = load_config(config_file(tmp_path, data))
    labels, in_use = start_facts(config, str(labels_file), str(tmp_path / "none.sock"), {})
    assert (labels, in_use) == ({"gpu": "big"}, frozenset())
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n")
    assert start_facts(config, str(bad), str(tmp_path / "none.sock"), {})[0] == {}
    silent = tmp_path / "silent.sock"
    silent.write_text("")  # exists but nobody answers
    assert start_facts(config, None, str(silent), {}) == ({}, frozenset())


def test_mdev_keys_at_the_top_level(tmp_path: Path) -> None:
    data = {
        "mediatedDevicesTypes": ["nvidia-231"],
        "nodeMediatedDeviceTypes": [
            {"mediatedDevicesTypes": ["nvidia-233"], "nodeSelector": {"gpu": "big"}}
        ],
    }
    config = load_config(config_file(tmp_path, data))
    assert config.mediated_devices is not None
    assert config.mediated_devices.types == ("nvidia-231",)
    with pytest.raises(ConfigError) as err:
        load_config(
            config_file(
                tmp_path,
                {"nodeMediatedDeviceTypes": [{"mediatedDevicesTypes": ["a"], "nodeSelector": {}}]},
            )
        )
    assert err.value.field == "nodeMediatedDeviceTypes[0].nodeSelector"
    both = {**data, "mediatedDevicesConfiguration": {"mediatedDevicesTypes": ["x"]}}
    with pytest.raises(ConfigError, match="either at the top level or under"):
        load_config(config_file(tmp_path, both))


def test_config_check_summarises_the_new_sections(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hostdev.cli.main import main

    assert main(["config", "check", str(config_file(tmp_path, NATIVE))]) == 0
    out = capsys.readouterr().out
    assert "novaDeviceSpec(1)" in out and "pfDevice=8086:10c9" in out
    assert "sriov: enp4s0f0: 2 VFs, bind vfio-pci" in out
    assert "mediated devices: nvidia-233; 0 node override(s)" in out


def test_reapply_after_a_pf_driver_reload(tmp_path: Path, nic: FakeHost) -> None:
    from hostdev.daemon.provision import reapply_sriov

    config = load_config(
        config_file(
            tmp_path,
            {
                "sriov": [
                    {"pf": "enp4s0f1", "numVfs": 7, "bind": "vfio-pci"},
                    {"pf": "eth7", "numVfs": 1},
                ]
            },
        )
    )
    kernel = FakeKernelWriter(nic)
    assert reapply_sriov(nic.fs, kernel, scan_host(nic.fs), config) is None
    assert kernel.writes == []
    nic.destroy_vfs("0000:04:00.1")  # the PF driver was reloaded: its VFs are gone
    report = reapply_sriov(nic.fs, kernel, scan_host(nic.fs), config)
    assert report is not None and len(report.problems) == 1  # eth7 is still unknown
    host = scan_host(nic.fs)
    vfs = host.devices[PciAddress.parse("0000:04:00.1")].sriov.vfs  # type: ignore[union-attr]
    assert len(vfs) == 7 and {host.devices[v].driver for v in vfs} == {VFIO_PCI}


@pytest.mark.parametrize("second", ["0000:04:00.0", "04:00.0"], ids=["address", "short-address"])
def test_one_pf_declared_twice_is_applied_once_and_stays(
    tmp_path: Path, nic: FakeHost, second: str
) -> None:
    from hostdev.daemon.provision import reapply_sriov

    data = {"sriov": [{"pf": "enp4s0f0", "numVfs": 2}, {"pf": second, "numVfs": 4}]}
    config = load_config(config_file(tmp_path, data))
    kernel = FakeKernelWriter(nic)
    report = provision(nic.fs, kernel, config, waiter=Waiter(timeout=5))
    assert report.problems == [
        f"sriov: {second}: PF 0000:04:00.0 is already declared as 'enp4s0f0'; ignored"
    ]
    writes = len(kernel.writes)
    assert reapply_sriov(nic.fs, kernel, scan_host(nic.fs), config) is None
    assert len(kernel.writes) == writes  # a rescan leaves the PF at the first entry's count
    pf = scan_host(nic.fs).devices[PciAddress.parse("0000:04:00.0")]
    assert pf.sriov is not None and pf.sriov.num_vfs == 2
