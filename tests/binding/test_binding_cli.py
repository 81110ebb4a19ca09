"""`hostdev bind|unbind|restore` end to end: exit codes, output formats, dry run, progress."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from binding_helpers import E1000, GPU, GPU_AUDIO, NIC, NVME, RTL, bindings

from hostdev.cli import bind as bind_cli
from hostdev.cli.main import main
from hostdev.host.writer import RecordingWriter
from hostdev.testing.fakehost import FakeHost
from hostdev.testing.fakekernel import FakeKernelWriter


@pytest.fixture
def hostdev(host: FakeHost, state_file: Path, monkeypatch: pytest.MonkeyPatch):
    """Run the CLI against the fake host and its fake kernel; returns the exit code."""
    kernel = FakeKernelWriter(host)
    monkeypatch.setattr(
        bind_cli, "writer_for", lambda args: RecordingWriter() if args.dry_run else kernel
    )
    monkeypatch.setattr(bind_cli, "loader_for", lambda args: lambda module, params: None)
    monkeypatch.delenv("HOSTDEV_STATE_FILE", raising=False)

    def run(*argv: str) -> int:
        extra: Sequence[str] = ("--host-root", str(host.root), "--state-file", str(state_file))
        return main([*argv, *extra])

    run.kernel = kernel  # type: ignore[attr-defined]
    return run


def test_bind_json_result(hostdev, capsys):
    assert hostdev("bind", E1000, "-o", "json") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] is True
    assert [
        {k: d[k] for k in ("address", "from", "to", "action", "companions")}
        for d in document["devices"]
    ] == [
        {
            "address": E1000,
            "from": "e1000",
            "to": "vfio-pci",
            "action": "bound",
            "companions": [RTL],
        },
        {"address": RTL, "from": "8139cp", "to": "vfio-pci", "action": "bound", "companions": []},
    ]


def test_bind_table_and_progress_on_stderr(hostdev, capsys):
    assert hostdev("bind", E1000) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0].split() == ["ADDRESS", "FROM", "TO", "ACTION", "NOTE"]
    assert f"{RTL}   8139cp   vfio-pci   bound    IOMMU group companion of {E1000}" in out
    assert err.splitlines() == [
        f"[1/2] {E1000}: e1000 -> vfio-pci bound",
        f"[2/2] {RTL}: 8139cp -> vfio-pci bound (companion of {E1000})",
    ]


def test_single_device_prints_no_progress(hostdev, capsys):
    assert hostdev("bind", NVME) == 0
    assert capsys.readouterr().err == ""


def test_dry_run_prints_exact_writes(hostdev, host, capsys):
    before = bindings(host)
    assert hostdev("bind", "--dry-run", E1000) == 0
    sys = host.root / "sys"
    assert capsys.readouterr().out.splitlines() == [
        f'{sys}/bus/pci/devices/{E1000}/driver_override <- "vfio-pci"',
        f'{sys}/bus/pci/drivers/e1000/unbind <- "{E1000}"',
        f'{sys}/bus/pci/drivers_probe <- "{E1000}"',
        f'{sys}/bus/pci/devices/{RTL}/driver_override <- "vfio-pci"',
        f'{sys}/bus/pci/drivers/8139cp/unbind <- "{RTL}"',
        f'{sys}/bus/pci/drivers_probe <- "{RTL}"',
    ]
    assert bindings(host) == before
    assert hostdev.kernel.writes == []


def test_dry_run_restore_shows_the_clearing_newline(hostdev, host, capsys):
    hostdev("bind", NVME)
    capsys.readouterr()
    assert hostdev("restore", "--dry-run", NVME) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f'{host.root}/sys/bus/pci/devices/{NVME}/driver_override <- "\\n"'
    assert lines[-1] == f'{host.root}/sys/bus/pci/drivers/nvme/bind <- "{NVME}"'
    assert host.driver_of(NVME) == "vfio-pci"


def test_bind_then_restore_all(hostdev, host, state_file, capsys):
    before = bindings(host)
    assert hostdev("bind", "10de:1eb8", "0000:0a:*") == 0
    capsys.readouterr()
    assert hostdev("restore", "--all", "-o", "json") == 0
    document = json.loads(capsys.readouterr().out)
    assert [(d["address"], d["action"]) for d in document["devices"]] == [
        (NVME, "restored"),
        (GPU, "restored"),
        (GPU_AUDIO, "restored"),
    ]
    assert bindings(host) == before
    assert json.loads(state_file.read_text())["devices"] == {}


def test_restore_named_devices_in_realkernel_spelling(hostdev, host, capsys):
    before = bindings(host)
    assert hostdev("bind", E1000) == 0
    capsys.readouterr()
    assert hostdev("restore", E1000, RTL, "-o", "json") == 0
    document = json.loads(capsys.readouterr().out)
    assert [d["action"] for d in document["devices"]] == ["restored", "restored"]
    assert bindings(host) == before


def test_refused_exits_1_with_reason_on_stderr(hostdev, host, capsys):
    host.set_operstate("eno1", "up").add_route("eno1")
    assert hostdev("bind", NIC) == 1
    err = capsys.readouterr().err
    assert "refused: 0000:01:00.0: interface eno1 is up with a route; use --force" in err
    assert hostdev("bind", "--force", NIC) == 0
    assert "warning: forced:" in capsys.readouterr().err


def test_failure_exits_1_and_rolls_back(hostdev, host, capsys):
    before = bindings(host)
    hostdev.kernel.fail_on["drivers/8139cp/unbind"] = 5  # EIO
    assert hostdev("bind", E1000) == 1
    assert "failed:" in capsys.readouterr().err
    assert bindings(host) == before


@pytest.mark.parametrize(
    "argv",
    [
        ("bind", "nvidia"),
        ("bind", "0000:65:00.8"),
        ("bind", "dead:beef"),
        ("bind", "0000:99:*"),
        ("bind",),
        ("unbind", "10de"),
        ("restore",),
        ("restore", "--all", E1000),
        ("restore", "0000:99:00.0"),
        ("bind", "--driver", "nouveau", E1000),
    ],
    ids=[
        "name",
        "bad-function",
        "unknown-id",
        "glob-no-match",
        "nothing",
        "unbind-bad",
        "restore-nothing",
        "restore-all-and-devices",
        "restore-unknown",
        "driver-not-vfio",
    ],
)
def test_bad_input_exits_2(hostdev, host, capsys, argv):
    before = bindings(host)
    assert hostdev(*argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert bindings(host) == before


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"{", "not JSON"), (b"\x89PNG\r\n\x1a\n\xff\xfe", "not UTF-8 text")],
    ids=["truncated-json", "binary"],
)
def test_broken_state_file_exits_2(hostdev, state_file, capsys, content, reason):
    state_file.parent.mkdir(parents=True)
    state_file.write_bytes(content)
    assert hostdev("bind", NVME) == 2
    err = capsys.readouterr().err
    assert reason in err and len(err.splitlines()) == 1


def _under_a_regular_file(tmp: Path) -> Path:
    (tmp / "file").write_text("")
    return tmp / "file" / "hostdev" / "state.json"


def _beside_a_directory_named_like_its_lock(tmp: Path) -> Path:
    (tmp / "dir" / "state.json.lock").mkdir(parents=True)
    return tmp / "dir" / "state.json"


def _named_too_long_for_its_temporary_files(tmp: Path) -> Path:
    # the lock file's name still fits NAME_MAX (255); ".NAME.XXXXXXXX" for a save does not
    (tmp / "dir").mkdir()
    return tmp / "dir" / ("s" * 250)


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        (_under_a_regular_file, "Not a directory"),
        (_beside_a_directory_named_like_its_lock, "Is a directory"),
        (_named_too_long_for_its_temporary_files, "File name too long"),
    ],
    ids=["under-a-file", "lock-is-a-directory", "name-too-long"],
)
@pytest.mark.parametrize(
    "argv",
    [("bind", E1000), ("unbind", NVME), ("restore", "--all")],
    ids=["bind", "unbind", "restore"],
)
def test_unusable_state_file_location_is_one_error_line_and_changes_nothing(
    hostdev, host, tmp_path, capsys, where, reason, argv
):
    state_file = where(tmp_path)
    before = bindings(host)
    code = main([*argv, "--host-root", str(host.root), "--state-file", str(state_file)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"error: cannot use the state file {state_file}: ")
    assert f"{reason}; use --state-file PATH" in err
    assert hostdev.kernel.writes == []
    assert bindings(host) == before


@pytest.mark.parametrize("dry_run", [(), ("--dry-run",)], ids=["plain", "dry-run"])
def test_bind_with_an_unreadable_group_member_exits_1_and_writes_nothing(
    hostdev, host, capsys, dry_run
):
    (host.device_dir(RTL) / "class").unlink()
    (host.device_dir(RTL) / "uevent").write_text("PCI_ID=10EC:8139\n")
    before = bindings(host)
    assert hostdev("bind", *dry_run, E1000) == 1
    out, err = capsys.readouterr()
    assert f"refused: {RTL} is in the IOMMU group but cannot be read" in err
    assert "--force" not in err and "Traceback" not in err and "<-" not in out
    assert bindings(host) == before and hostdev.kernel.writes == []


def _table_rows(out: str) -> list[list[str]]:
    return [line.split()[:4] for line in out.splitlines()[1:]]


def _json_rows(out: str) -> list[list[str]]:
    devices = json.loads(out)["devices"]
    return [[d["address"], d["from"] or "-", d["to"] or "-", d["action"]] for d in devices]


@pytest.mark.parametrize(
    ("output", "rows"), [((), _table_rows), (("-o", "json"), _json_rows)], ids=["table", "json"]
)
def test_a_failed_rollback_is_reported_per_device_and_exits_1(hostdev, capsys, output, rows):
    hostdev.kernel.fail_on["drivers/8139cp/unbind"] = 5  # EIO: the companion fails
    hostdev.kernel.fail_on["drivers/e1000/bind"] = 5  # and the target cannot be put back
    assert hostdev("bind", E1000, *output) == 1
    out, err = capsys.readouterr()
    assert f"rollback-failed: {E1000} could not be put back: writing" in err
    assert "rollback incomplete: 1 device(s) could not be put back" in err
    assert rows(out) == [
        [E1000, "e1000", "-", "rollback-failed"],
        [RTL, "8139cp", "8139cp", "failed"],
    ]


def test_restoring_a_companion_says_its_group_comes_back_with_it(hostdev, host, capsys):
    before = bindings(host)
    assert hostdev("bind", "06:01.0") == 0
    capsys.readouterr()
    assert hostdev("restore", "06:02.0") == 0
    out, err = capsys.readouterr()
    assert f"note: restoring {RTL} restores {E1000} too" in err
    assert f"{E1000}   vfio-pci   e1000    restored   restored with {RTL} (same IOMMU group)" in out
    assert bindings(host) == before


def test_the_record_of_a_device_that_left_is_dropped_by_naming_it(
    hostdev, host, state_file, capsys
):
    assert hostdev("bind", NVME) == 0
    host.remove_device(NVME)
    capsys.readouterr()
    assert hostdev("restore", "--all") == 1
    assert f"failed: not on this host; record kept: `hostdev restore {NVME}` drops it" in (
        capsys.readouterr().err
    )
    assert hostdev("restore", "0a:00.0") == 0
    assert f"{NVME}   -      -    forgotten   not on this host any more: record dropped" in (
        capsys.readouterr().out
    )
    assert json.loads(state_file.read_text())["devices"] == {}
    assert hostdev("restore", "--all") == 0


def test_a_recorded_device_that_cannot_be_read_keeps_its_record(hostdev, host, state_file, capsys):
    assert hostdev("bind", NVME) == 0
    for name in ("uevent", "vendor", "device"):
        (host.device_dir(NVME) / name).write_text("0xZZZZ\n")
    capsys.readouterr()
    assert hostdev("restore", NVME) == 1
    assert "on this host but cannot be read" in capsys.readouterr().err
    assert NVME in json.loads(state_file.read_text())["devices"]
