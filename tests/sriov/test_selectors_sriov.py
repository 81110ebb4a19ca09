"""SR-IOV selector forms as tables: PF#ranges, VFs of a PF model, nova device_spec, neutron."""

import pytest

from hostdev.errors import ConfigError
from hostdev.host.model import VFIO_PCI, Host, PciAddress
from hostdev.host.scan import scan_host
from hostdev.selectors_sriov import (
    NeutronExclusions,
    NovaDeviceSpec,
    PfVfRange,
    VfsOfPf,
    parse_nova_whitelist,
)
from hostdev.testing.examples import sriov_node

# The seed's own lines (nova.conf and sriov_agent.ini), exactly as printed.
SEED_DEVNAME = 'pci_passthrough_whitelist={"devname": "enp5s0f1", "physical_network":"physnet1"}'
SEED_VENDOR = '\\{"vendor_id": "8086","product_id": "10ac", "physical_network":"physnet1"}'
SEED_EXCLUDE = "eth1:0000:07:00.2; 0000:07:00.3, eth2:0000:05:00.1; 0000:05:00.2"

PF_A = "0000:04:00.0"  # enp4s0f0, no VFs
PF_B = "0000:04:00.1"  # enp4s0f1, 7 VFs 04:10.1 ... 04:11.5
VF_B0, VF_B1, VF_B6 = "0000:04:10.1", "0000:04:10.3", "0000:04:11.5"
PF_C = "0000:05:00.1"  # enp5s0f1, 2 VFs 05:10.1, 05:10.3
VF_C0, VF_C1 = "0000:05:10.1", "0000:05:10.3"
QAT, NIC = "0000:3d:00.0", "0000:01:00.0"


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Host:
    fake = sriov_node(tmp_path_factory.mktemp("sel") / "host")
    fake.add_pf(
        PF_C,
        "8086",
        "10c9",
        "020000",
        total_vfs=7,
        vf_device="10ca",
        num_vfs=2,
        vf_driver=VFIO_PCI,
        offset=128,
        stride=2,
        driver="igb",
        iommu_group=60,
        netdevs=("enp5s0f1",),
        revision="01",
    )
    return scan_host(fake.fs)


def chosen(host: Host, predicate) -> list[str]:  # type: ignore[no-untyped-def]
    return [str(d.address) for d in host.sorted_devices() if predicate(d, host)]


def test_the_host_is_what_the_tables_assume(host: Host) -> None:
    pf_c = host.devices[PciAddress.parse(PF_C)]
    assert [str(v) for v in pf_c.sriov.vfs] == [VF_C0, VF_C1]  # type: ignore[union-attr]
    assert host.netdev_index["enp4s0f1"] == PciAddress.parse(PF_B)


def test_pf_vf_range_mid_teardown_picks_by_virtfn_number(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The kernel removes virtfn0 first: the VFs left keep their numbers."""
    fake = sriov_node(tmp_path / "host")
    for index in (0, 1, 2):
        fake.remove_vf(PF_B, index)
    torn = scan_host(fake.fs)
    assert chosen(torn, PfVfRange.parse("enp4s0f1#0-3").matches) == ["0000:04:10.7"]
    assert chosen(torn, PfVfRange.parse("enp4s0f1#6").matches) == [VF_B6]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "enp4s0f1",
            [VF_B0, VF_B1, "0000:04:10.5", "0000:04:10.7", "0000:04:11.1", "0000:04:11.3", VF_B6],
        ),
        ("enp4s0f1#0-1,6", [VF_B0, VF_B1, VF_B6]),
        ("enp4s0f1#9", []),
        ("enp4s0f0", []),
        ("enp5s0f1#1", [VF_C1]),
    ],
    ids=["all-vfs", "ranges", "index-beyond", "pf-without-vfs", "other-pf"],
)
def test_pf_vf_range(host: Host, text: str, expected: list[str]) -> None:
    assert chosen(host, PfVfRange.parse(text).matches) == expected


@pytest.mark.parametrize(
    "text",
    ["enp4s0f1#", "enp4s0f1#3-1", "enp4s0f1#a", "bad name#1"],
    ids=["empty-range", "backwards", "not-a-number", "bad-ifname"],
)
def test_pf_vf_range_errors(text: str) -> None:
    with pytest.raises(ConfigError, match="pfName"):
        PfVfRange.parse(text)


@pytest.mark.parametrize(
    ("pattern", "count"),
    [("8086:10c9", 9), ("8086:*", 9), ("15b3:1017", 0), ("8086:10ca", 0)],
    ids=["82576", "any-intel", "other-model", "vf-model-is-not-a-pf"],
)
def test_vfs_of_pf(host: Host, pattern: str, count: int) -> None:
    picked = chosen(host, VfsOfPf.parse(pattern).matches)
    assert len(picked) == count
    assert PF_B not in picked


def test_vfs_of_pf_error() -> None:
    with pytest.raises(ConfigError, match="vendor:device"):
        VfsOfPf.parse("8086")


# -- nova -----------------------------------------------------------------------------------
NOVA_CASES = [
    (SEED_DEVNAME, [PF_C, VF_C0, VF_C1]),
    (SEED_VENDOR, []),
    ('{"vendor_id": "8086", "product_id": "10ca"}', None),  # every VF: counted below
    (
        '{"address": "0000:04:00.1"}',
        [PF_B, VF_B0, VF_B1, "0000:04:10.5", "0000:04:10.7", "0000:04:11.1", "0000:04:11.3", VF_B6],
    ),
    (
        '{"address": "0000:04:00.1", "product_id": "10ca"}',
        [VF_B0, VF_B1, "0000:04:10.5", "0000:04:10.7", "0000:04:11.1", "0000:04:11.3", VF_B6],
    ),
    ('{"address": "*:05:10.*"}', [VF_C0, VF_C1]),
    ('{"address": ":05:10."}', [VF_C0, VF_C1]),
    ('{"address": "3d:00.0"}', [QAT]),
    ('{"address": ".1", "vendor_id": "8086", "product_id": "10c9"}', [PF_B, PF_C]),
    ('{"address": {"bus": "05", "slot": "10", "function": "[0-1]"}}', [VF_C0]),
    ('{"address": {"domain": ".*", "bus": "0[45]", "slot": "00", "function": "1"}}', [PF_B, PF_C]),
    (
        '{"address": {"domain": "0000", "bus": "05", "slot": "00", "function": "1"}}',
        [PF_C, VF_C0, VF_C1],
    ),
    ('{"devname": "enp4s0f0"}', [PF_A]),
    ('{"devname": "eno1"}', [NIC]),
    ('{"devname": "nosuch0"}', []),
    ('[{"devname": "enp5s0f1"}, {"address": "3d:00.0"}]', [PF_C, VF_C0, VF_C1, QAT]),
    ('device_spec = {"vendor_id": "8086", "product_id": "6f54"}', [QAT]),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    NOVA_CASES,
    ids=[
        "seed-devname",
        "seed-vendor",
        "vf-ids",
        "pf-address",
        "pf-address-vf-ids",
        "glob",
        "glob-blanks",
        "short-glob",
        "function-only",
        "regex",
        "regex-any-domain",
        "regex-single-pf",
        "devname-pf-no-vfs",
        "devname-plain-nic",
        "devname-missing",
        "list",
        "device-spec-line",
    ],
)
def test_nova_device_spec(host: Host, text: str, expected: list[str] | None) -> None:
    specs = parse_nova_whitelist(text, "nova.conf")
    picked = [
        str(d.address) for d in host.sorted_devices() if any(s.matches(d, host) for s in specs)
    ]
    if expected is None:
        assert len(picked) == 9 and all(host.devices[PciAddress.parse(a)].is_vf for a in picked)
    else:
        assert picked == expected


def test_nova_tags_are_kept() -> None:
    (spec,) = parse_nova_whitelist(SEED_VENDOR)
    assert (spec.vendor_id, spec.product_id) == ("8086", "10ac")
    assert spec.physical_network == "physnet1"
    (tagged,) = parse_nova_whitelist(
        '{"devname": "eth3", "physical_network": "physnet2", "trusted": true, "x": 1, '
        '"remote_managed": "false", "resource_class": null}'
    )
    assert dict(tagged.tags) == {
        "physical_network": "physnet2",
        "trusted": "true",
        "x": "1",
        "remote_managed": "false",
    }


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        ('{"vendor_id": "8086", ', "deviceSpec", "not valid JSON"),
        ('"8086"', "deviceSpec", "JSON object or a non-empty list"),
        ("[]", "deviceSpec", "non-empty list"),
        ('[{"devname": "a"}, 3]', "deviceSpec[1]", "must be a JSON object"),
        (
            '{"vendor_id": "10000"}',
            "deviceSpec.vendor_id",
            "greater than the maximum allowable value (FFFF)",
        ),
        ('{"product_id": "zz"}', "deviceSpec.product_id", "does not parse as a hex number"),
        ('{"vendor_id": 8086}', "deviceSpec.vendor_id", "must be a string"),
        (
            '{"address": "0000:04:00.8"}',
            "deviceSpec.address",
            "function '8' is greater than the maximum allowable value (7)",
        ),
        (
            '{"address": "0000:04:20.0"}',
            "deviceSpec.address",
            "slot '20' is greater than the maximum allowable value (1F)",
        ),
        ('{"address": "0000:100:00.0"}', "deviceSpec.address", "bus '100' is greater"),
        ('{"address": "10000:04:00.0"}', "deviceSpec.address", "domain '10000' is greater"),
        ('{"address": "0:0:04:00.0"}', "deviceSpec.address", "more than domain:bus:slot"),
        ('{"address": "0000:g4:00.0"}', "deviceSpec.address", "does not parse as a hex"),
        ('{"address": {"bus": "(("}}', "deviceSpec.address.bus", "invalid regex"),
        ('{"address": {"bus": 4}}', "deviceSpec.address.bus", "regular expression string"),
        ('{"address": {"device": "04"}}', "deviceSpec.address.device", "unknown field"),
        ('{"address": 4}', "deviceSpec.address", "glob string or a dict"),
        ('{"address": "04:00.0", "devname": "eth0"}', "deviceSpec", "not both"),
        ('{"devname": ""}', "deviceSpec.devname", "network interface name"),
        (
            '{"devname": "eth0", "physical_network": ["a"]}',
            "deviceSpec.physical_network",
            "tag values",
        ),
    ],
    ids=[
        "bad-json",
        "not-object",
        "empty-list",
        "list-item",
        "vendor-range",
        "product-hex",
        "vendor-type",
        "function-range",
        "slot-range",
        "bus-range",
        "domain-range",
        "too-many-fields",
        "glob-hex",
        "regex-invalid",
        "regex-type",
        "regex-field",
        "address-type",
        "address-and-devname",
        "empty-devname",
        "tag-type",
    ],
)
def test_nova_errors(text: str, field: str, reason: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_nova_whitelist(text, "nova.conf")
    assert (err.value.file, err.value.field) == ("nova.conf", field)
    assert reason in err.value.reason


def test_nova_accepts_parsed_data(host: Host) -> None:
    (spec,) = parse_nova_whitelist({"address": "*:3d:*.*", "physical_network": None})
    assert chosen(host, spec.matches) == [QAT] and spec.physical_network is None
    assert NovaDeviceSpec.from_mapping({}).matches(host.devices[PciAddress.parse(QAT)], host)


# -- neutron exclude_devices ------------------------------------------------------------------
def test_neutron_seed_example() -> None:
    excl = NeutronExclusions.parse(SEED_EXCLUDE)
    assert {k: sorted(map(str, v)) for k, v in excl.by_interface.items()} == {
        "eth1": ["0000:07:00.2", "0000:07:00.3"],
        "eth2": ["0000:05:00.1", "0000:05:00.2"],
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("enp5s0f1:0000:05:10.3", [VF_C1]),
        ("enp4s0f1:0000:04:10.1;0000:04:11.5, enp5s0f1:0000:05:10.1", [VF_B0, VF_B6, VF_C0]),
        ("enp4s0f1:0000:05:10.3", []),
        ("eno1:0000:01:00.0", [NIC]),
        ("", []),
        ("enp4s0f1:", []),
    ],
    ids=["one", "two-pfs", "wrong-pf", "plain-netdev", "empty", "no-addresses"],
)
def test_neutron_excludes(host: Host, text: str, expected: list[str]) -> None:
    assert chosen(host, NeutronExclusions.parse(text).excludes) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("eth1", "invalid mapping 'eth1'"),
        (":0000:07:00.2", "missing interface"),
        ("eth1:0000:07:00.2, eth1:0000:07:00.3", "eth1 is listed twice"),
        ("eth1:07:00.2", "is not a PCI address"),
    ],
    ids=["no-colon", "no-interface", "duplicate", "short-address"],
)
def test_neutron_errors(text: str, reason: str) -> None:
    with pytest.raises(ConfigError) as err:
        NeutronExclusions.parse(text, "sriov_agent.ini")
    assert err.value.field == "exclude_devices" and reason in err.value.reason
