"""`hostdev list`, `hostdev doctor` and `hostdev example` through the real entry point."""

import json
from pathlib import Path

import pytest

from hostdev.cli.main import main
from hostdev.host import pciids
from hostdev.testing.examples import build_example

PCI_IDS = str(Path(__file__).parent.parent / "data" / "pci.ids")


@pytest.fixture
def sink(tmp_path: Path) -> Path:
    build_example("kitchen-sink", tmp_path / "host")
    return tmp_path / "host"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_list_json_schema(sink: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "list", "--host-root", str(sink), "-o", "json", "--pci-ids", PCI_IDS)
    assert code == 0
    doc = json.loads(out)
    by_address = {d["address"]: d for d in doc["devices"]}
    t4 = by_address["0000:65:00.0"]
    assert {
        k: t4[k]
        for k in (
            "vendor",
            "device",
            "class",
            "driver",
            "iommu_group",
            "numa_node",
            "physfn",
            "vfs",
            "netdevs",
        )
    } == {
        "vendor": "10de",
        "device": "1eb8",
        "class": "030200",
        "driver": "vfio-pci",
        "iommu_group": 11,
        "numa_node": 0,
        "physfn": None,
        "vfs": [],
        "netdevs": [],
    }
    assert t4["device_name"] == "TU104GL [Tesla T4]"
    assert t4["readiness"]["state"] == "ready"
    assert by_address["0000:08:00.0"]["iommu_group"] is None
    assert by_address["0000:04:10.1"]["physfn"] == "0000:04:00.1"
    assert len(by_address["0000:04:00.1"]["vfs"]) == 7
    assert by_address["0000:06:02.0"]["readiness"]["state"] == "needs-bind"


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--selector", "10de:1eb8"], {"0000:65:00.0", "0000:b3:00.0", "0000:3b:00.0"}),
        (["--selector", "10DE:*", "--driver", "nvidia"], {"0000:3b:00.0"}),
        (["--address", "0000:17:*"], {"0000:17:00.0", "0000:17:00.1"}),
        (["--driver", "none", "--address", "0000:0*"], {"0000:00:00.0", "0000:05:00.0"}),
    ],
    ids=["vendor-device", "wildcard-and-driver", "address-glob", "no-driver"],
)
def test_list_filters(
    sink: Path, capsys: pytest.CaptureFixture[str], flags: list[str], expected: set[str]
) -> None:
    code, out, _ = run(capsys, "list", "--host-root", str(sink), "-o", "json", *flags)
    assert code == 0
    assert {d["address"] for d in json.loads(out)["devices"]} == expected


@pytest.mark.parametrize("fmt", ["table", "wide", "yaml"])
def test_list_formats(sink: Path, capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    code, out, _ = run(capsys, "list", "--host-root", str(sink), "-o", fmt, "--pci-ids", PCI_IDS)
    assert code == 0 and "0000:65:00.0" in out
    if fmt != "yaml":
        assert "TU104GL [Tesla T4] [10de:1eb8]" in out
        assert "VF 3 of 0000:04:00.1" in out and "32 (+2)" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["list", "--selector", "10de"],
        ["list", "--selector", "10de:1eb8:1"],
        ["list", "--sysfs-root", "/nonexistent"],
        ["doctor", "--selector", "xyz"],
    ],
    ids=["selector-no-device", "selector-extra", "bad-root", "doctor-bad-selector"],
)
def test_bad_input_is_one_line_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1


@pytest.mark.parametrize(
    "name",
    ["missing.ids", "a-directory", "corrupt.ids.gz"],
    ids=["missing", "directory", "corrupt"],
)
def test_bad_pci_ids_flag_is_one_line_exit_2(
    sink: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    (tmp_path / "a-directory").mkdir()
    (tmp_path / "corrupt.ids.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    path = str(tmp_path / name)
    code, out, err = run(capsys, "list", "--host-root", str(sink), "--pci-ids", path)
    assert code == 2 and out == ""
    assert err.startswith(f"error: cannot read pci.ids file {path}: ") and err.count("\n") == 1


def test_unreadable_system_pci_ids_falls_back_to_hex(
    sink: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    corrupt = tmp_path / "pci.ids.gz"
    corrupt.write_bytes(b"\x1f\x8b\x08\x00garbage")
    monkeypatch.setattr(pciids, "SEARCH_PATHS", (str(corrupt),))
    code, out, err = run(capsys, "list", "--host-root", str(sink), "--selector", "10de:1eb8")
    assert code == 0 and "[10de:1eb8]" in out and "Tesla" not in out
    assert err.startswith(f"warning: cannot read pci.ids file {corrupt}: ")
    assert err.endswith("; showing hex IDs\n") and err.count("\n") == 1


def test_doctor_exit_codes(sink: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "doctor", "--host-root", str(sink))
    assert code == 0 and "[PASS] interrupt-remapping" in out
    code, out, _ = run(
        capsys, "doctor", "--host-root", str(sink), "--selector", "8086:100e", "-o", "json"
    )
    doc = json.loads(out)
    assert code == 1 and doc["result"] == "FAIL"
    device = next(c for c in doc["checks"] if c["name"] == "device 0000:06:01.0")
    assert "0000:06:02.0 on 8139cp" in device["message"]
    assert "hostdev bind" in device["fix"]


def test_example_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "example", "gpu-node", str(tmp_path / "g"))
    assert code == 0 and "hostdev list --host-root" in out
    code, _, err = run(capsys, "example", "gpu-node", str(tmp_path / "g"))
    assert code == 2 and "not empty" in err
