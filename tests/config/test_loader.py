"""Loading config files: the native form, KubeVirt's block (verbatim and inside CRs), errors."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest

from hostdev.config import load_config
from hostdev.config.model import KubeVirtEntries
from hostdev.errors import ConfigError

KUBEVIRT_BLOCK = """
permittedHostDevices:
  pciHostDevices:
  - pciVendorSelector: "10DE:1EB8"
    resourceName: "nvidia.com/TU104GL_Tesla_T4"
    externalResourceProvider: true
  - pciVendorSelector: "8086:6F54"
    resourceName: "intel.com/qat"
  mediatedDevices:
  - mdevNameSelector: "GRID T4-1Q"
    resourceName: "nvidia.com/GRID_T4-1Q"
    externalResourceProvider: true
"""


def write(tmp_path: Path, text: str, name: str = "hostdev.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_native_form_is_converted_to_frozen_objects(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        resources:
        - name: example.com/gpu
          selectors:
          - device: "10DE:1EB8"
            class: "0302"
          - address: "*:65:00.*"
            subsystem: "10de:12a2"
            driver: vfio-pci
          - pfName: ["enp4s0f1#0-3,5"]
          exclude: ["0000:65:00.1", "eth1:0000:07:00.2;0000:07:00.3"]
          env: [kubevirt, sriov]
          reset: true
        """,
    )
    config = load_config(path)
    (spec,) = config.resources
    assert (spec.name, spec.kind, spec.origin) == ("example.com/gpu", "pci", "resources[0]")
    first, second, third = spec.selectors
    assert (first.device, first.class_prefix) == ("10de:1eb8", "0302")
    assert second.address is not None and second.address.bus == "65"
    assert third.pf_names[0].vf_ranges == ((0, 3), (5, 5))
    assert len(spec.excludes) == 2 and spec.excludes[1].ifname == "eth1"
    assert spec.options.env == ("kubevirt", "sriov") and spec.options.reset
    assert config.source == str(path) and not config.serves_all_vfio


def test_mdev_resource_kind(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        resources:
        - name: nvidia.com/GRID_T4-2Q
          selectors: [{mdevName: "GRID T4-2Q"}]
        """,
    )
    (spec,) = load_config(path).resources
    assert spec.kind == "mdev" and spec.selectors[0].mdev_name == "GRID T4-2Q"


def test_kubevirt_block_serves_only_external_entries(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    config = load_config(write(tmp_path, KUBEVIRT_BLOCK))
    assert [(r.name, r.kind) for r in config.resources] == [
        ("nvidia.com/TU104GL_Tesla_T4", "pci"),
        ("nvidia.com/GRID_T4-1Q", "mdev"),
    ]
    assert config.resources[0].selectors[0].device == "10de:1eb8"
    assert len(config.skipped) == 1 and "intel.com/qat" in config.skipped[0]
    assert "permittedHostDevices.pciHostDevices[1]" in config.skipped[0]
    assert "intel.com/qat: KubeVirt serves it itself" in caplog.text


@pytest.mark.parametrize("how", ["file", "argument"])
def test_kubevirt_entries_all_overrides(tmp_path: Path, how: str) -> None:
    text = KUBEVIRT_BLOCK + ("kubevirtEntries: all\n" if how == "file" else "")
    config = load_config(
        write(tmp_path, text), kubevirt_entries="all" if how == "argument" else None
    )
    assert "intel.com/qat" in [r.name for r in config.resources]
    assert config.skipped == ()


@pytest.mark.parametrize(
    "wrapper,origin",
    [
        (
            "apiVersion: kubevirt.io/v1\nkind: KubeVirt\nmetadata: {name: kubevirt}\n"
            "spec:\n  configuration:\n    developerConfiguration: {featureGates: [GPU]}\n"
            "    permittedHostDevices:\n      pciHostDevices:\n",
            "spec.configuration.permittedHostDevices.pciHostDevices[0]",
        ),
        (
            "apiVersion: hco.kubevirt.io/v1beta1\nkind: HyperConverged\nmetadata: {name: hco}\n"
            "spec:\n  permittedHostDevices:\n      pciHostDevices:\n",
            "spec.permittedHostDevices.pciHostDevices[0]",
        ),
    ],
    ids=["kubevirt-cr", "hyperconverged-cr"],
)
def test_kubevirt_block_nested_in_a_custom_resource(
    tmp_path: Path, wrapper: str, origin: str
) -> None:
    entry = (
        '      - pciDeviceSelector: "10de:1EB8"\n'
        "        resourceName: nvidia.com/T4\n        externalResourceProvider: true\n"
    )
    (spec,) = load_config(write(tmp_path, wrapper + entry)).resources
    assert (spec.name, spec.selectors[0].device, spec.origin) == (
        "nvidia.com/T4",
        "10de:1eb8",
        origin,
    )


def test_kubevirt_entries_sharing_a_resource_name_merge(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        permittedHostDevices:
          pciHostDevices:
          - {pciVendorSelector: "10de:1eb8", resourceName: example.com/gpu,
             externalResourceProvider: true}
          - {pciVendorSelector: "10de:2184", resourceName: example.com/gpu,
             externalResourceProvider: true}
          usb:
          - resourceName: kubevirt.io/storage
            selectors: [{vendor: "46f4", product: "0001"}]
        """,
    )
    config = load_config(path)
    (spec,) = config.resources
    assert [s.device for s in spec.selectors] == ["10de:1eb8", "10de:2184"]
    assert any("usb" in reason for reason in config.skipped)


HCO = (
    "apiVersion: hco.kubevirt.io/v1beta1\nkind: HyperConverged\nmetadata: {name: hco}\n"
    "spec:\n  permittedHostDevices:\n"
)
HCO_CASES = [
    # (entries under spec.permittedHostDevices, kubevirtEntries, served names, skipped fragments)
    (
        "    pciHostDevices:\n"
        "    - {pciDeviceSelector: '10DE:1EB8', resourceName: nvidia.com/t4,"
        " externalResourceProvider: true, disabled: true}\n"
        "    - {pciDeviceSelector: '10DE:2184', resourceName: nvidia.com/rtx,"
        " externalResourceProvider: true, disabled: false}\n",
        "external",
        ["nvidia.com/rtx"],
        ["pciHostDevices[0]: skipping nvidia.com/t4: disabled"],
    ),
    (
        "    mediatedDevices:\n"
        "    - {mdevNameSelector: GRID T4-1Q, resourceName: nvidia.com/GRID_T4-1Q,"
        " disabled: true}\n",
        "all",  # never served, whatever kubevirtEntries says
        [],
        ["mediatedDevices[0]: skipping nvidia.com/GRID_T4-1Q: disabled"],
    ),
    (
        # a disabled entry is served by nobody, so its name is free for hostdev
        "    pciHostDevices:\n"
        "    - {pciDeviceSelector: '10DE:1EB8', resourceName: nvidia.com/t4, disabled: true}\n"
        "    - {pciDeviceSelector: '10DE:1EB8', resourceName: nvidia.com/t4,"
        " externalResourceProvider: true}\n",
        "external",
        ["nvidia.com/t4"],
        ["disabled"],
    ),
    (
        "    pciHostDevices:\n"
        "    - {pciDeviceSelector: '10DE:1EB8', resourceName: nvidia.com/t4,"
        " externalResourceProvider: true}\n"
        "    usbHostDevices:\n"
        "    - resourceName: kubevirt.io/storage\n"
        "      selectors: [{vendor: '46f4', product: '0001'}]\n",
        "external",
        ["nvidia.com/t4"],
        ["spec.permittedHostDevices.usbHostDevices: USB devices are not served by hostdev"],
    ),
]


@pytest.mark.parametrize(
    "entries,kubevirt_entries,names,skipped",
    HCO_CASES,
    ids=["pci-disabled", "mdev-disabled-with-all", "disabled-name-free", "usbHostDevices"],
)
def test_hyperconverged_cr_pasted_as_it_is(
    tmp_path: Path,
    entries: str,
    kubevirt_entries: KubeVirtEntries,
    names: list[str],
    skipped: list[str],
) -> None:
    config = load_config(write(tmp_path, HCO + entries), kubevirt_entries=kubevirt_entries)
    assert [r.name for r in config.resources] == names
    for fragment in skipped:
        assert any(fragment in reason for reason in config.skipped), (fragment, config.skipped)


def test_keys_merged_in_may_be_overridden(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        resources:
        - &t4 {name: example.com/t4, selectors: [{device: '10de:1eb8'}], reset: true}
        - <<: *t4
          name: example.com/t4-spare
          exclude: ['0000:65:00.0']
        """,
    )
    spare = load_config(path).resources[1]
    assert (spare.name, spare.options.reset, len(spare.excludes)) == (
        "example.com/t4-spare",
        True,
        1,
    )


def test_native_and_kubevirt_forms_together(tmp_path: Path) -> None:
    text = "resources:\n- {name: example.com/qat, selectors: [{device: '8086:6f54'}]}\n"
    config = load_config(write(tmp_path, text + KUBEVIRT_BLOCK))
    assert config.resources[0].name == "example.com/qat"
    assert len(config.resources) == 3


RES = "resources:\n- name: example.com/x\n  selectors: [{device: '10de:1eb8'}]\n"
BAD = [
    # (file text, field, reason fragment)
    ("[1, 2]\n", "", "expected a mapping"),
    ("", "", "expected a mapping"),
    ("resources: [\n", "", "invalid YAML: line"),
    (
        RES + "resources: []\n",
        "",
        "invalid YAML: line 4: duplicate key 'resources' (first given at line 1)",
    ),
    (
        RES + "  exclude: ['0000:65:00.0']\n  exclude: []\n",
        "",
        "invalid YAML: line 5: duplicate key 'exclude' (first given at line 4)",
    ),
    (
        "resources:\n- {name: example.com/x, selectors: [{vendor: '10de', vendor: '8086'}]}\n",
        "",
        "invalid YAML: line 2: duplicate key 'vendor' (first given at line 2)",
    ),
    ("colour: blue\n", "colour", "unknown key"),
    ("kubevirtEntries: external\n", "", "no resources and no permittedHostDevices"),
    ("resources:\n- selectors: [{device: '10de:1eb8'}]\n", "resources[0].name", "required"),
    (
        "resources:\n- {name: gpu, selectors: [{vendor: '10de'}]}\n",
        "resources[0].name",
        "domain/name",
    ),
    (
        "resources:\n- {name: kubernetes.io/gpu, selectors: [{vendor: '10de'}]}\n",
        "resources[0].name",
        "reserved",
    ),
    (
        "resources:\n- {name: node.kubernetes.io/gpu, selectors: [{vendor: '10de'}]}\n",
        "resources[0].name",
        "reserved",
    ),
    (
        "resources:\n- {name: requests.example.com/gpu, selectors: [{vendor: '10de'}]}\n",
        "resources[0].name",
        "requests.",
    ),
    (
        "resources:\n- {name: EXAMPLE.com/gpu, selectors: [{vendor: '10de'}]}\n",
        "resources[0].name",
        "DNS subdomain",
    ),
    (
        "resources:\n- {name: example.com/-gpu, selectors: [{vendor: '10de'}]}\n",
        "resources[0].name",
        "the name after '/'",
    ),
    (
        "resources:\n- {name: example.com/a/b, selectors: [{vendor: '10de'}]}\n",
        "resources[0].name",
        "exactly one '/'",
    ),
    (
        f"resources:\n- {{name: example.com/{'g' * 64}, selectors: [{{vendor: '10de'}}]}}\n",
        "resources[0].name",
        "the name after '/'",
    ),
    ("resources:\n- {name: example.com/gpu}\n", "resources[0].selectors", "required"),
    (
        "resources:\n- {name: example.com/gpu, selectors: []}\n",
        "resources[0].selectors",
        "at least 1",
    ),
    (
        "resources:\n- {name: example.com/gpu, selectors: [{}]}\n",
        "resources[0].selectors[0]",
        "at least one field",
    ),
    (
        "resources:\n- {name: example.com/gpu, selectors: [{vendorId: '10de'}]}\n",
        "resources[0].selectors[0].vendorId",
        "unknown key",
    ),
    (
        "resources:\n- {name: example.com/gpu, selectors: [{device: '1eb8'}]}\n",
        "resources[0].selectors[0].device",
        "vendor:device pair",
    ),
    (
        "resources:\n- {name: example.com/gpu, selectors: [{vendor: nvidia}]}\n",
        "resources[0].selectors[0].vendor",
        "hex ID",
    ),
    (
        "resources:\n- {name: example.com/gpu, selectors: [{class: '3'}]}\n",
        "resources[0].selectors[0].class",
        "class code prefix",
    ),
    (
        "resources:\n- {name: example.com/gpu, selectors: [{subsystem: 'zz:00'}]}\n",
        "resources[0].selectors[0].subsystem",
        "vendor:device pair",
    ),
    (
        "resources:\n- {name: example.com/gpu, selectors: [{address: '0:0:0:0.0'}]}\n",
        "resources[0].selectors[0].address",
        "address glob",
    ),
    (
        "resources:\n- {name: example.com/gpu, selectors: [{address: '0000:6g:00.0'}]}\n",
        "resources[0].selectors[0].address",
        "bus '6g' is not hex",
    ),
    (
        "resources:\n- {name: example.com/gpu, selectors: [{address: '65:00.9'}]}\n",
        "resources[0].selectors[0].address",
        "function '9' is greater than the maximum allowable value (7)",
    ),
    (
        "resources:\n- {name: example.com/gpu, selectors: [{address: {bus: '6.', port: '1'}}]}\n",
        "resources[0].selectors[0].address",
        "unknown address field(s) port",
    ),
    (
        "resources:\n- {name: example.com/gpu, selectors: [{address: {bus: '(6'}}]}\n",
        "resources[0].selectors[0].address",
        "bus regex '(6' is invalid",
    ),
    (
        "resources:\n- {name: example.com/gpu, selectors: [{address: [65]}]}\n",
        "resources[0].selectors[0].address",
        "valid",
    ),
    (
        "resources:\n- {name: example.com/vf, selectors: [{pfName: 'enp4s0f1#0-x'}]}\n",
        "resources[0].selectors[0].pfName",
        "is not N or N-M",
    ),
    (
        "resources:\n- {name: example.com/vf, selectors: [{pfName: 'enp4s0f1#5-3'}]}\n",
        "resources[0].selectors[0].pfName",
        "runs backwards",
    ),
    (
        "resources:\n- {name: example.com/vf, selectors: [{pfName: 'enp4s0f1#0-30000000'}]}\n",
        "resources[0].selectors[0].pfName",
        "VF index 30000000 is above 65535",
    ),
    (
        "resources:\n- {name: example.com/vf, selectors: [{pfName: [enp4s0f1, 3]}]}\n",
        "resources[0].selectors[0].pfName",
        "expected an interface name or a list of them",
    ),
    (
        "resources:\n- {name: example.com/vf, selectors: [{pfName: 'bad name#1'}]}\n",
        "resources[0].selectors[0].pfName",
        "not a network interface name",
    ),
    (
        "resources:\n- {name: example.com/v,\n"
        "   selectors: [{mdevName: 'GRID T4-1Q', vendor: '10de'}]}\n",
        "resources[0].selectors[0]",
        "cannot be combined",
    ),
    (
        "resources:\n- {name: example.com/v,\n"
        "   selectors: [{mdevName: 'GRID T4-1Q'}, {vendor: '10de'}]}\n",
        "resources[0]",
        "either PCI devices or mdevs",
    ),
    (
        "resources:\n- {name: example.com/v, selectors: [{mdevName: ' '}]}\n",
        "resources[0].selectors[0].mdevName",
        "may not be empty",
    ),
    (RES + "  exclude: ['eth1:0000:07:00']\n", "resources[0].exclude", "full PCI address"),
    (RES + "  exclude: ['1:0:0:07:00.2']\n", "resources[0].exclude", "address glob"),
    (RES + "  exclude: [',']\n", "resources[0].exclude", "may not be empty"),
    (RES + "  exclude: ['0000:0a:100.0']\n", "resources[0].exclude", "slot '100' is greater"),
    (
        "resources:\n- {name: example.com/gpu, selectors: [{address: '10de:1eb8'}]}\n",
        "resources[0].selectors[0].address",
        "looks like a vendor:device pair",
    ),
    (RES + "  env: [kubevirt, cdi]\n", "resources[0].env[1]", "'kubevirt' or 'sriov'"),
    (RES + "  env: []\n", "resources[0].env", "at least 1"),
    (RES + "  bind: always\n", "resources[0].bind", "'none' or 'onStart'"),
    (RES + "  reset: perhaps\n", "resources[0].reset", "valid boolean"),
    (RES + "  reset: 0\n", "resources[0].reset", "valid boolean"),
    (RES + "  reset: 'true'\n", "resources[0].reset", "valid boolean"),
    (
        "permittedHostDevices:\n  pciHostDevices:\n  - {resourceName: example.com/x, "
        "pciVendorSelector: '10de:1eb8', externalResourceProvider: 'yes'}\n",
        "permittedHostDevices.pciHostDevices[0].externalResourceProvider",
        "valid boolean",
    ),
    (
        "permittedHostDevices:\n  mediatedDevices:\n  - {resourceName: example.com/x, "
        "mdevNameSelector: GRID T4-1Q, externalResourceProvider: 1}\n",
        "permittedHostDevices.mediatedDevices[0].externalResourceProvider",
        "valid boolean",
    ),
    (
        "permittedHostDevices:\n  pciHostDevices:\n  - {resourceName: example.com/x, "
        "pciDeviceSelector: '10de:1eb8', disabled: 'false'}\n",
        "permittedHostDevices.pciHostDevices[0].disabled",
        "valid boolean",
    ),
    (RES + RES[len("resources:\n") :], "resources[1]", "already defined at resources[0]"),
    ("kubevirtEntries: some\n" + KUBEVIRT_BLOCK, "kubevirtEntries", "'external' or 'all'"),
    (
        "resources:\n- {name: example.com/t4.a, selectors: [{address: '0000:65:00.0'}]}\n"
        "- {name: example.com/T4_a, selectors: [{address: '0000:b3:00.0'}]}\n",
        "resources[1]",
        "example.com/T4_a and example.com/t4.a (at resources[0]) give the same KubeVirt env "
        "variable ..._RESOURCE_EXAMPLE_COM_T4_A",
    ),
    (
        # PCI_RESOURCE_ and MDEV_PCI_RESOURCE_ differ, but virt-launcher looks a name up in both
        "resources:\n- {name: example.com/t4.a, selectors: [{address: '0000:65:00.0'}]}\n"
        "- {name: example.com/T4_a, selectors: [{mdevName: GRID T4-1Q}]}\n",
        "resources[1]",
        "give the same KubeVirt env variable",
    ),
    (
        "resources:\n- {name: intel.com/QAT, selectors: [{device: '8086:6f54'}]}\n"
        + KUBEVIRT_BLOCK,
        "permittedHostDevices.pciHostDevices[1]",
        "intel.com/qat and intel.com/QAT (at resources[0]) give the same KubeVirt env variable",
    ),
    (
        "resources:\n- {name: intel.com/qat, selectors: [{device: '8086:6f54'}]}\n"
        + KUBEVIRT_BLOCK,
        "resources[0]",
        "also listed at permittedHostDevices.pciHostDevices[1], which KubeVirt serves itself",
    ),
    (
        "permittedHostDevices:\n  pciHostDevices:\n"
        "  - {pciVendorSelector: '10de:1eb8', resourceName: nvidia.com/gpu,"
        " externalResourceProvider: true}\n"
        "  - {pciVendorSelector: '10de:2184', resourceName: nvidia.com/gpu}\n",
        "permittedHostDevices.pciHostDevices[0]",
        "which KubeVirt serves itself",
    ),
    (
        "permittedHostDevices:\n  pciHostDevices:\n"
        "  - {pciVendorSelector: '10de:1eb8', resourceName: nvidia.com/t4}\n"
        "  mediatedDevices:\n"
        "  - {mdevNameSelector: GRID T4-1Q, resourceName: nvidia.com/t4,"
        " externalResourceProvider: true}\n",
        "permittedHostDevices.mediatedDevices[0]",
        "also listed at permittedHostDevices.pciHostDevices[0]",
    ),
    (
        "permittedHostDevices:\n  pciHostDevices:\n  - pciVendorSelector: '10de:1eb8'\n",
        "permittedHostDevices.pciHostDevices[0].resourceName",
        "required",
    ),
    (
        "permittedHostDevices:\n  pciHostDevices:\n  - {resourceName: example.com/x}\n",
        "permittedHostDevices.pciHostDevices[0]",
        "exactly one of",
    ),
    (
        "permittedHostDevices:\n  pciHostDevices:\n  - {resourceName: example.com/x, "
        "pciVendorSelector: '10de:1eb8', pciDeviceSelector: '10de:1eb8'}\n",
        "permittedHostDevices.pciHostDevices[0]",
        "exactly one of",
    ),
    (
        "permittedHostDevices:\n  pciHostDevices:\n  - {resourceName: example.com/x, "
        "pciVendorSelector: '10de'}\n",
        "permittedHostDevices.pciHostDevices[0].pciVendorSelector",
        "vendor:device pair",
    ),
    (
        "permittedHostDevices:\n  pciHostDevices:\n  - {resourceName: example.com/x, "
        "pciVendorSelector: '10de:1eb'}\n",
        "permittedHostDevices.pciHostDevices[0].pciVendorSelector",
        "4 hex digits each",
    ),
    (
        "resources:\n- {name: example.com/gpu, selectors: [{vendor: '86'}]}\n",
        "resources[0].selectors[0].vendor",
        "4 hex digits",
    ),
    (
        "permittedHostDevices:\n  pciHostDevices:\n  - {resourceName: example.com/x, "
        "pciVendorSelector: '10de:*'}\n",
        "permittedHostDevices.pciHostDevices[0].pciVendorSelector",
        "no wildcards",
    ),
    (
        "permittedHostDevices:\n  pciHostDevices:\n  - {resourceName: x, "
        "pciVendorSelector: '10de:1eb8'}\n",
        "permittedHostDevices.pciHostDevices[0].resourceName",
        "domain/name",
    ),
    (
        "permittedHostDevices:\n  pciHostDevices:\n  - {resourceName: example.com/x, "
        "pciVendorSelector: '10de:1eb8', external: true}\n",
        "permittedHostDevices.pciHostDevices[0].external",
        "unknown key",
    ),
    (
        "permittedHostDevices:\n  mediatedDevices:\n  - {resourceName: example.com/x}\n",
        "permittedHostDevices.mediatedDevices[0].mdevNameSelector",
        "required",
    ),
    (
        "permittedHostDevices:\n  mediatedDevices:\n"
        "  - {mdevNameSelector: ' ', resourceName: example.com/x}\n",
        "permittedHostDevices.mediatedDevices[0].mdevNameSelector",
        "may not be empty",
    ),
    (
        "apiVersion: kubevirt.io/v1\nkind: KubeVirt\nspec:\n  configuration:\n"
        "    permittedHostDevices:\n      pciHostDevices:\n"
        "      - {pciVendorSelector: '10de:1eb8', resourceName: nvidia.com/t4, disabled: true}\n",
        "spec.configuration.permittedHostDevices.pciHostDevices[0].disabled",
        "unknown key in a KubeVirt CR",
    ),
    (
        "permittedHostDevices:\n  usbDevices: []\n",
        "permittedHostDevices.usbDevices",
        "unknown key",
    ),
    (
        "permittedHostDevices:\n  pciHostDevices:\n  - {resourceName: example.com/x, "
        "pciVendorSelector: '10de:1eb8', enabled: false}\n",
        "permittedHostDevices.pciHostDevices[0].enabled",
        "unknown key",
    ),
    (
        "permittedHostDevices:\n  hostDevices: []\n",
        "permittedHostDevices.hostDevices",
        "unknown key",
    ),
    (
        "apiVersion: kubevirt.io/v1\nkind: KubeVirt\nspec:\n  configuration: {}\n",
        "spec",
        "has no spec.configuration.permittedHostDevices",
    ),
    (
        "apiVersion: kubevirt.io/v1\nkind: KubeVirt\nspec:\n  configuration:\n"
        "    permittedHostDevices:\n      pciHostDevices:\n"
        "      - {pciVendorSelector: '10de:1eb8'}\n",
        "spec.configuration.permittedHostDevices.pciHostDevices[0].resourceName",
        "required",
    ),
]


@pytest.mark.parametrize(
    "text,field,reason", BAD, ids=[f"{b[1] or 'file'}-{i}" for i, b in enumerate(BAD)]
)
def test_config_errors_name_file_field_and_reason(
    tmp_path: Path, text: str, field: str, reason: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    err = caught.value
    assert (err.file, err.field) == (str(path), field)
    assert reason in err.reason
    assert "\n" not in str(err) and str(err).startswith(str(path))
    assert err.exit_code == 2


EMPTY_SELECTOR_VALUES = [
    ("vendor", "''"),
    ("device", "''"),
    ("address", "''"),
    ("address", "{}"),
    ("address", "{bus: ''}"),
    ("class", "' '"),
    ("subsystem", "''"),
    ("driver", "''"),
    ("pfName", "''"),
    ("pfName", "[]"),
    ("pfName", "['']"),
    ("mdevName", "''"),
    ("novaDeviceSpec", "''"),
    ("novaDeviceSpec", "{}"),
    ("novaDeviceSpec", "[]"),
    ("novaDeviceSpec", "[{}]"),
    ("pfDevice", "''"),
]


@pytest.mark.parametrize(
    "key,value", EMPTY_SELECTOR_VALUES, ids=[f"{k}={v}" for k, v in EMPTY_SELECTOR_VALUES]
)
def test_an_empty_selector_value_is_an_error_not_a_wildcard(
    tmp_path: Path, key: str, value: str
) -> None:
    path = write(
        tmp_path, f"resources:\n- {{name: example.com/x, selectors: [{{{key}: {value}}}]}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.field == f"resources[0].selectors[0].{key}"
    assert "may not be empty" in caught.value.reason


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "absent.yaml")
    assert caught.value.field == "" and "cannot read the file" in caught.value.reason


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)
