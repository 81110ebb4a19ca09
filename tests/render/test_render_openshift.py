"""`hostdev render`: the seed files exactly, Ignition schema validity, data: URL round trips."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from hostdev.cli.main import main
from hostdev.render import openshift
from hostdev.render.files import modprobe_conf, modules_load_conf
from hostdev.testing.examples import gpu_node, kitchen_sink
from hostdev.testing.fakehost import FakeHost

SCHEMAS = Path(__file__).parent.parent / "data" / "ignition"
SEED_MODPROBE = "options vfio-pci ids=10de:1eb8\n"
SEED_BUTANE = """\
variant: openshift
version: 4.20.0
metadata:
  name: 100-worker-vfiopci
  labels:
    machineconfiguration.openshift.io/role: worker
storage:
  files:
  - path: /etc/modprobe.d/vfio.conf
    mode: 0644
    overwrite: true
    contents:
      inline: |
        options vfio-pci ids=10de:1eb8
  - path: /etc/modules-load.d/vfio-pci.conf
    mode: 0644
    overwrite: true
    contents:
      inline: vfio-pci
"""


@pytest.fixture
def host(tmp_path: Path) -> FakeHost:
    return kitchen_sink(tmp_path / "host")


def render(capsys: pytest.CaptureFixture[str], host: FakeHost, *argv: str) -> str:
    assert main(["render", *argv, "--host-root", str(host.root)]) == 0
    return capsys.readouterr().out


def schema_for(ignition_version: str) -> dict[str, object]:
    name = "ignition-v" + "_".join(ignition_version.split(".")[:2]) + ".json"
    return json.loads((SCHEMAS / name).read_text())  # type: ignore[no-any-return]


def test_modprobe_without_softdep_is_the_seed_file(capsys, host):
    assert render(capsys, host, "modprobe", "--no-softdep", "10de:1eb8") == SEED_MODPROBE


def test_butane_without_softdep_is_the_seed_config(capsys, host):
    assert render(capsys, host, "butane", "--no-softdep", "10de:1eb8") == SEED_BUTANE


@pytest.mark.parametrize(
    ("cluster", "butane_version"),
    [("4.20", "4.20.0"), ("4.20.0", "4.20.0"), ("4.20.3", "4.20.0"), ("4.14.27", "4.14.0")],
    ids=["minor", "dot-zero", "z-stream", "older-z-stream"],
)
def test_butane_version_is_the_cluster_minor_with_dot_zero(capsys, host, cluster, butane_version):
    text = render(capsys, host, "butane", "--openshift-version", cluster, "10de:1eb8")
    assert yaml.safe_load(text)["version"] == butane_version


def test_butane_parses_with_octal_mode_and_role(capsys, host):
    text = render(
        capsys, host, "butane", "--role", "gpu", "--openshift-version", "4.16", "10de:1eb8"
    )
    document = yaml.safe_load(text)
    assert document["version"] == "4.16.0"
    assert document["metadata"] == {
        "name": "100-gpu-vfiopci",
        "labels": {openshift.ROLE_LABEL: "gpu"},
    }
    files = document["storage"]["files"]
    assert [(f["path"], f["mode"], f["overwrite"]) for f in files] == [
        ("/etc/modprobe.d/vfio.conf", 420, True),
        ("/etc/modules-load.d/vfio-pci.conf", 420, True),
    ]
    assert files[1]["contents"]["inline"] == "vfio-pci"


@pytest.mark.parametrize(
    ("selectors", "expected"),
    [
        (
            ["10de:1eb8"],
            "options vfio-pci ids=10de:1eb8\nsoftdep nvidia pre: vfio-pci\n"
            "softdep nouveau pre: vfio-pci\n",
        ),
        (
            ["0000:17:00.*"],
            "options vfio-pci ids=10de:2184,10de:1aeb\n"
            "softdep nouveau pre: vfio-pci\nsoftdep nvidia pre: vfio-pci\n"
            "softdep snd_hda_intel pre: vfio-pci\n",
        ),
        (
            ["1002:73bf"],
            "options vfio-pci ids=1002:73bf\nsoftdep amdgpu pre: vfio-pci\n"
            "softdep radeon pre: vfio-pci\n",
        ),
        (["8086:6f54"], "options vfio-pci ids=8086:6f54\n"),
        (["0000:06:01.0"], "options vfio-pci ids=8086:100e\nsoftdep e1000 pre: vfio-pci\n"),
        (
            ["0000:0[56]:*"],
            "options vfio-pci ids=8086:100e,10ec:8139\n"
            "softdep e1000 pre: vfio-pci\nsoftdep 8139cp pre: vfio-pci\n",
        ),
        (
            ["10de:1*"],  # the audio function and the T4s, not the GeForce (2184)
            "options vfio-pci ids=10de:1aeb,10de:1eb8\nsoftdep snd_hda_intel pre: vfio-pci\n"
            "softdep nvidia pre: vfio-pci\nsoftdep nouveau pre: vfio-pci\n",
        ),
    ],
    ids=[
        "t4-one-on-nvidia",
        "gpu-and-audio-by-glob",
        "literal-amd-gpu",
        "qat-no-native",
        "nic-current-driver",
        "glob-leaves-out-its-bridge",
        "id-glob-takes-the-hosts-ids",
    ],
)
def test_modprobe_softdeps(capsys, host, selectors, expected):
    assert render(capsys, host, "modprobe", *selectors) == expected


@pytest.mark.parametrize(
    ("vendor_device", "class_code", "driver", "module", "softdeps"),
    [
        ("8086:37c8", "0b4000", "c6xx", "qat_c62x", ["qat_c62x"]),
        ("8086:a36d", "0c0330", "xhci_hcd", "xhci_pci", ["xhci_pci"]),
        ("8086:a323", "0c0500", "i801_smbus", "i2c_i801", ["i2c_i801"]),
        ("8086:10d3", "020000", "e1000e", None, ["e1000e"]),
    ],
    ids=["qat-c6xx", "usb-xhci-hcd", "smbus-i801", "built-in"],
)
def test_softdep_names_the_drivers_module(
    capsys, tmp_path, vendor_device, class_code, driver, module, softdeps
):
    host = FakeHost(tmp_path / "host")
    vendor, device = vendor_device.split(":")
    host.add_device("0000:3d:00.0", vendor, device, class_code, driver=driver, iommu_group=3)
    if module is not None:
        host.add_driver(driver, module)
    else:  # a built-in driver has no module link
        (host.root / "sys/bus/pci/drivers" / driver / "module").unlink()
    expected = [f"options vfio-pci ids={vendor_device}"]
    expected += [f"softdep {name} pre: vfio-pci" for name in softdeps]
    assert render(capsys, host, "modprobe", "0000:3d:00.0").splitlines() == expected


def test_modprobe_defaults_to_devices_on_vfio(capsys, tmp_path):
    host = gpu_node(tmp_path / "gpu")
    out = render(capsys, host, "modprobe", "--no-softdep")
    assert out == "options vfio-pci ids=10de:2184,10de:1aeb,10de:1eb8\n"


def test_modules_load(capsys, host):
    assert render(capsys, host, "modules-load") == "vfio-pci\n"


@pytest.mark.parametrize(
    ("version", "ignition"),
    [("4.12", "3.2.0"), ("4.16", "3.4.0"), ("4.20", "3.5.0"), ("4.21.0", "3.5.0")],
    ids=["4.12", "4.16", "4.20", "4.21.0"],
)
def test_machineconfig_is_valid_ignition_and_round_trips(capsys, host, version, ignition):
    text = render(capsys, host, "machineconfig", "--openshift-version", version, "10de:1eb8")
    document = yaml.safe_load(text)
    assert document["apiVersion"] == "machineconfiguration.openshift.io/v1"
    assert document["kind"] == "MachineConfig"
    assert document["metadata"] == {
        "labels": {openshift.ROLE_LABEL: "worker"},
        "name": "100-worker-vfiopci",
    }
    config = document["spec"]["config"]
    assert config["ignition"]["version"] == ignition
    jsonschema.Draft4Validator(schema_for(ignition)).validate(config)
    files = {f["path"]: f for f in config["storage"]["files"]}
    conf = modprobe_conf(["10de:1eb8"], ["nvidia", "nouveau"])
    assert openshift.decode_data_url(files[conf.path]["contents"]["source"]) == conf.contents
    load = modules_load_conf()
    assert openshift.decode_data_url(files[load.path]["contents"]["source"]) == load.contents
    assert {f["mode"] for f in files.values()} == {420}


def test_schema_catches_a_broken_config():
    config = {
        "ignition": {"version": "3.5.0"},
        "storage": {"files": [{"path": "/etc/x", "mode": "0644"}]},
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(schema_for("3.5.0")).validate(config)


@pytest.mark.parametrize(
    "text",
    ["", "a b\n", "x=1,y:2\n%percent%\n", "ünïcode\n"],
    ids=["empty", "space", "reserved", "unicode"],
)
def test_data_url_round_trip(text):
    url = openshift.data_url(text)
    assert url.startswith("data:,")
    assert " " not in url and "\n" not in url
    assert openshift.decode_data_url(url) == text


@pytest.mark.parametrize(
    ("cpu", "flags", "arguments"),
    [
        ("GenuineIntel", [], ["intel_iommu=on"]),
        ("AuthenticAMD", [], ["amd_iommu=on"]),
        ("HygonGenuine", ["--iommu-pt"], ["amd_iommu=on", "iommu=pt"]),
        ("AuthenticAMD", ["--cpu-vendor", "intel"], ["intel_iommu=on"]),
        ("ARM", ["--cpu-vendor", "amd"], ["amd_iommu=on"]),
    ],
    ids=["intel", "amd", "hygon-pt", "override", "unknown-overridden"],
)
def test_kernel_args(capsys, host, cpu, flags, arguments):
    host.set_cpu_vendor(cpu)
    document = yaml.safe_load(render(capsys, host, "kernel-args", *flags))
    assert document["metadata"]["name"] == "100-worker-iommu"
    assert document["spec"]["kernelArguments"] == arguments
    assert document["spec"]["config"] == {"ignition": {"version": "3.5.0"}}
    jsonschema.Draft4Validator(schema_for("3.5.0")).validate(document["spec"]["config"])


@pytest.mark.parametrize(
    "argv",
    [
        ("kernel-args",),
        ("butane", "--openshift-version", "4.7", "10de:1eb8"),
        ("butane", "--openshift-version", "5", "10de:1eb8"),
        ("butane", "--openshift-version", "4.\u0662\u0660", "10de:1eb8"),
        ("butane", "--openshift-version", "4.20.0-rc.1", "10de:1eb8"),
        ("machineconfig", "--role", "Worker!", "10de:1eb8"),
        ("butane", "--role", "gpu\n", "10de:1eb8"),
        ("kernel-args", "--cpu-vendor", "intel", "--role", "gpu\n"),
        ("modprobe", "nvidia"),
        ("modprobe", "0000:99:*"),
        ("modprobe", "dead:*"),
        ("modprobe", "0000:00:*"),
        ("machineconfig", "0000:00:03.0"),
        ("butane", "1b36:000c"),
    ],
    ids=[
        "cpu-unknown",
        "version-too-old",
        "version-garbage",
        "version-non-ascii-digits",
        "version-pre-release",
        "bad-role",
        "role-with-newline",
        "kernel-args-role-with-newline",
        "bad-selector",
        "no-match",
        "id-glob-without-match",
        "glob-of-bridges-only",
        "root-port-address",
        "root-port-id-on-host",
    ],
)
def test_bad_input_exits_2(capsys, host, argv):
    host.set_cpu_vendor("SomethingElse")
    assert main(["render", *argv, "--host-root", str(host.root)]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_nothing_on_vfio_and_no_selector_exits_2(capsys, tmp_path):
    host = FakeHost(tmp_path / "empty")
    assert main(["render", "modprobe", "--host-root", str(host.root)]) == 2
    assert "name vendor:device IDs" in capsys.readouterr().err


def test_literal_ids_need_no_host(capsys, tmp_path):
    argv = ["render", "modprobe", "10de:1eb8", "--sysfs-root", str(tmp_path / "nowhere")]
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith("options vfio-pci ids=10de:1eb8\n")


def test_kernel_args_for_4_12_is_the_seed_machineconfig(capsys, host):
    host.set_cpu_vendor("GenuineIntel")
    text = render(capsys, host, "kernel-args", "--openshift-version", "4.12")
    assert yaml.safe_load(text) == {
        "apiVersion": "machineconfiguration.openshift.io/v1",
        "kind": "MachineConfig",
        "metadata": {
            "labels": {"machineconfiguration.openshift.io/role": "worker"},
            "name": "100-worker-iommu",
        },
        "spec": {
            "config": {"ignition": {"version": "3.2.0"}},
            "kernelArguments": ["intel_iommu=on"],
        },
    }


@pytest.mark.parametrize(
    ("selectors", "warned"),
    [
        ([], ["0000:3b:00.0 (on nvidia)"]),
        (["0000:65:00.0"], ["0000:3b:00.0 (on nvidia)"]),
        (["10de:1eb8"], []),
        (["0000:3b:00.0", "0000:65:00.0"], []),
    ],
    ids=["default-ids", "address-of-one-t4", "literal-id-asks-for-all", "every-t4-named"],
)
def test_warns_of_functions_the_ids_take_unasked(capsys, host, selectors, warned):
    assert main(["render", "modprobe", *selectors, "--host-root", str(host.root)]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"warning: ids=10de:1eb8 also gives {w} to vfio-pci at boot" for w in warned]
