"""`hostdev sriov` and `hostdev sriov set` through the real entry point, on fake hosts."""

import errno
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from hostdev.binding import BindOptions, bind_devices
from hostdev.binding.guards import no_ipv4_probe
from hostdev.cli import writing
from hostdev.cli.main import main
from hostdev.host.model import VFIO_PCI, PciAddress
from hostdev.host.scan import scan_host
from hostdev.testing.examples import gpu_node
from hostdev.testing.fakehost import FakeHost
from hostdev.testing.fakekernel import FakeKernelWriter

NVME_PF = "0000:06:00.0"  # the NVMe PF of the nvme fixture (as in the real-kernel guest)


def run(capsys: pytest.CaptureFixture[str], host: FakeHost, *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "--host-root", str(host.root)])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(autouse=True)
def no_real_writes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOSTDEV_STATE_FILE", str(tmp_path / "state.json"))

    def refuse() -> None:
        raise AssertionError("a test tried to write to the real sysfs")

    monkeypatch.setattr(writing, "writer_factory", refuse)


def fake_kernel(monkeypatch: pytest.MonkeyPatch, host: FakeHost) -> FakeKernelWriter:
    kernel = FakeKernelWriter(host)
    monkeypatch.setattr(writing, "writer_factory", lambda: kernel)
    return kernel


def num_vfs(host: FakeHost, pf: str) -> int:
    sriov = scan_host(host.fs).devices[PciAddress.parse(pf)].sriov
    assert sriov is not None
    return sriov.num_vfs


def test_list_json_contract(capsys: pytest.CaptureFixture[str], nic: FakeHost) -> None:
    code, out, _ = run(capsys, nic, "sriov", "-o", "json")
    assert code == 0
    pfs = json.loads(out)["pfs"]
    assert [p["address"] for p in pfs] == ["0000:04:00.0", "0000:04:00.1"]
    pf = pfs[1]
    assert {k: pf[k] for k in ("interface", "driver", "num_vfs", "total_vfs", "link")} == {
        "interface": "enp4s0f1",
        "driver": "igb",
        "num_vfs": 7,
        "total_vfs": 7,
        "link": "down",
    }
    assert pf["vfs"][0] == {
        "address": "0000:04:10.1",
        "index": 0,
        "driver": VFIO_PCI,
        "iommu_group": 40,
    }
    assert {"address", "driver", "iommu_group"} <= set(pf["vfs"][6])


def test_list_mid_teardown_keeps_virtfn_numbers(
    capsys: pytest.CaptureFixture[str], nic: FakeHost
) -> None:
    for index in (0, 1, 2):
        nic.remove_vf("0000:04:00.1", index)
    code, out, _ = run(capsys, nic, "sriov", "-o", "json")
    assert code == 0
    vfs = json.loads(out)["pfs"][1]["vfs"]
    assert [(v["address"], v["index"]) for v in vfs][:2] == [
        ("0000:04:10.7", 3),
        ("0000:04:11.1", 4),
    ]


def test_list_yaml_and_interface_null(capsys: pytest.CaptureFixture[str], nvme: FakeHost) -> None:
    code, out, _ = run(capsys, nvme, "sriov", "-o", "yaml")
    (pf,) = yaml.safe_load(out)["pfs"]
    assert code == 0 and pf["interface"] is None and pf["link"] is None
    assert (pf["address"], pf["driver"], pf["total_vfs"], pf["vfs"]) == (NVME_PF, "nvme", 4, [])


def test_list_table_and_wide(capsys: pytest.CaptureFixture[str], nic: FakeHost) -> None:
    code, out, _ = run(capsys, nic, "sriov")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == [
        "PF",
        "INTERFACE",
        "DRIVER",
        "VFS",
        "LINK",
        "AUTOPROBE",
    ]
    assert lines[2].split() == ["0000:04:00.1", "enp4s0f1", "igb", "7/7", "down", "yes"]
    code, out, _ = run(capsys, nic, "sriov", "-o", "wide")
    assert "0000:04:11.5   0000:04:00.1   6       vfio-pci   46" in out


def test_list_without_pfs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    host = gpu_node(tmp_path / "host")
    assert run(capsys, host, "sriov")[1] == "no SR-IOV physical functions found\n"
    assert json.loads(run(capsys, host, "sriov", "-o", "json")[1]) == {"pfs": []}


def test_set_and_unset_like_the_real_kernel_test(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, nvme: FakeHost
) -> None:
    fake_kernel(monkeypatch, nvme)
    code, out, err = run(capsys, nvme, "sriov", "set", NVME_PF, "3")
    assert code == 0, err
    assert "0000:06:00.0: sriov_numvfs = 3" in out and "PF 0000:06:00.0: 3 VFs" in out
    assert "VFs 3/3 present, 3 with a driver" in err
    assert num_vfs(nvme, NVME_PF) == 3
    code, out, _ = run(capsys, nvme, "sriov", "set", NVME_PF, "0")
    assert code == 0 and num_vfs(nvme, NVME_PF) == 0


def test_removing_bound_vfs_forgets_their_binding_records(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    nvme: FakeHost,
    tmp_path: Path,
) -> None:
    """`restore --all` must not fail for ever on VFs that no longer exist."""
    fake_kernel(monkeypatch, nvme)
    code, _, err = run(capsys, nvme, "sriov", "set", NVME_PF, "2", "--bind", VFIO_PCI)
    assert code == 0, err
    state = tmp_path / "state.json"
    assert len(json.loads(state.read_text())["devices"]) == 2
    code, out, err = run(capsys, nvme, "sriov", "set", NVME_PF, "0")
    assert code == 0, err
    assert "forgot the binding records of 2 removed VFs" in out
    assert json.loads(state.read_text())["devices"] == {}
    assert run(capsys, nvme, "restore", "--all")[0] == 0


class BindingEachNewVf(FakeKernelWriter):
    """Another hostdev run (the daemon's `bind: onStart`) binds the VFs as soon as they appear."""

    state_file = Path()

    def write(self, path: str, value: str) -> None:
        super().write(path, value)
        if path.endswith("/sriov_numvfs") and value != "0":
            vfs = [PciAddress.parse(vf) for vf in self.host.vfs_of(NVME_PF)]
            options = BindOptions(state_file=self.state_file, ipv4_probe=no_ipv4_probe)
            assert bind_devices(self.host.fs, self, vfs, options).ok


def test_records_of_new_vfs_made_meanwhile_are_not_forgotten(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    nvme: FakeHost,
    tmp_path: Path,
) -> None:
    """Only the records of the VFs removed are dropped, and before new VFs can be recorded."""
    fake_kernel(monkeypatch, nvme)
    assert run(capsys, nvme, "sriov", "set", NVME_PF, "2", "--bind", VFIO_PCI)[0] == 0
    kernel = BindingEachNewVf(nvme)
    kernel.state_file = tmp_path / "state.json"
    monkeypatch.setattr(writing, "writer_factory", lambda: kernel)
    code, out, err = run(capsys, nvme, "sriov", "set", NVME_PF, "3")
    assert code == 0, err
    assert "forgot the binding records of 2 removed VFs" in out
    recorded = json.loads(kernel.state_file.read_text())["devices"]
    assert sorted(recorded) == nvme.vfs_of(NVME_PF)
    assert [nvme.driver_of(vf) for vf in recorded] == [VFIO_PCI] * 3


@dataclass
class InterruptedKernel(FakeKernelWriter):
    """The fake kernel, with Ctrl-C arriving just after the write at `interrupt_after`."""

    interrupt_after: int | None = None

    def write(self, path: str, value: str) -> None:
        """Apply the write, then raise KeyboardInterrupt when it is the chosen one."""
        super().write(path, value)
        if len(self.writes) - 1 == self.interrupt_after:
            raise KeyboardInterrupt


@pytest.mark.parametrize(
    ("fail_at", "interrupt_after", "flags", "code", "kept"),
    [
        ({1: errno.ENOMEM}, None, [], 1, 0),
        ({}, None, ["--timeout", "0"], 1, 0),
        ({}, 0, [], 130, 0),
        ({}, 1, [], 130, 0),
        ({0: errno.EBUSY}, None, [], 1, 3),
    ],
    ids=[
        "new-count-refused",
        "timed-out",
        "interrupted-after-0",
        "interrupted-after-2",
        "0-refused-vfs-stay",
    ],
)
def test_a_failed_set_forgets_the_records_of_vfs_already_removed(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    nvme: FakeHost,
    tmp_path: Path,
    fail_at: dict[int, int],
    interrupt_after: int | None,
    flags: list[str],
    code: int,
    kept: int,
) -> None:
    """Once the kernel removed the VFs their records go, whatever happens next."""
    fake_kernel(monkeypatch, nvme)
    assert run(capsys, nvme, "sriov", "set", NVME_PF, "3", "--bind", VFIO_PCI)[0] == 0
    kernel = InterruptedKernel(nvme, fail_at=fail_at, interrupt_after=interrupt_after)
    monkeypatch.setattr(writing, "writer_factory", lambda: kernel)
    got, out, _ = run(capsys, nvme, "sriov", "set", NVME_PF, "2", *flags)
    state = json.loads((tmp_path / "state.json").read_text())
    assert (got, len(state["devices"])) == (code, kept)
    assert ("forgot the binding records of 3 removed VFs" in out) == (kept == 0)


def test_set_without_pf_driver_exits_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, nvme: FakeHost
) -> None:
    kernel = fake_kernel(monkeypatch, nvme)
    nvme.unbind(NVME_PF)
    code, out, err = run(capsys, nvme, "sriov", "set", NVME_PF, "3")
    assert code == 1 and out == ""
    assert err == (
        "error: PF 0000:06:00.0 has no driver: bind it to its driver (e.g. nvme) "
        "first; the kernel needs the PF driver to create VFs\n"
    )
    assert kernel.writes == []


@pytest.mark.parametrize(
    ("argv", "code", "text"),
    [
        (["enp4s0f0", "8"], 2, "supports at most 7 VFs"),
        (["eth9", "1"], 2, "neither a network interface nor a PCI address"),
        (["0000:04:10.1", "1"], 2, "is a VF of 0000:04:00.1"),
        (["eno1", "1"], 2, "is not an SR-IOV PF"),
    ],
    ids=["too-many", "unknown-pf", "a-vf", "not-sriov"],
)
def test_set_refusals(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    nic: FakeHost,
    argv: list[str],
    code: int,
    text: str,
) -> None:
    kernel = fake_kernel(monkeypatch, nic)
    got, out, err = run(capsys, nic, "sriov", "set", *argv)
    assert (got, out) == (code, "") and text in err and err.startswith("error: ")
    assert kernel.writes == []


@pytest.mark.parametrize("count", ["-1", "three"], ids=["negative", "not-a-number"])
def test_set_bad_count_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], nic: FakeHost, count: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        run(capsys, nic, "sriov", "set", "enp4s0f0", count)
    assert exit_.value.code == 2


def test_set_changes_a_count_through_zero(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, nic: FakeHost
) -> None:
    kernel = fake_kernel(monkeypatch, nic)
    code, _out, _ = run(capsys, nic, "sriov", "set", "enp4s0f1", "2")
    assert code == 0 and num_vfs(nic, "0000:04:00.1") == 2
    assert [v for p, v in kernel.writes if p.endswith("sriov_numvfs")] == ["0", "2"]


def test_set_with_bind(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    nic: FakeHost,
    tmp_path: Path,
) -> None:
    fake_kernel(monkeypatch, nic)
    state = tmp_path / "state.json"
    code, out, err = run(capsys, nic, "sriov", "set", "enp4s0f0", "3", "--bind", "vfio-pci")
    assert code == 0 and "bound 3 VFs to vfio-pci" in out
    assert "[3/3] 0000:04:10.4: igbvf -> vfio-pci" in err
    host = scan_host(nic.fs)
    vfs = host.devices[PciAddress.parse("0000:04:00.0")].sriov.vfs  # type: ignore[union-attr]
    assert [host.devices[v].driver for v in vfs] == [VFIO_PCI] * 3
    recorded = json.loads(state.read_text())["devices"]
    assert recorded["0000:04:10.0"]["driver"] == "igbvf"
    code, out, _ = run(capsys, nic, "sriov", "set", "enp4s0f0", "3", "--bind", "vfio-pci")
    assert "already has 3 VFs" in out and "all VFs already on vfio-pci" in out


def test_set_with_bind_to_a_vfio_variant_driver(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, nic: FakeHost
) -> None:
    fake_kernel(monkeypatch, nic)
    nic.add_driver("mlx5_vfio_pci")  # loaded: nothing for modprobe to do
    code, out, _ = run(capsys, nic, "sriov", "set", "enp4s0f0", "2", "--bind", "mlx5_vfio_pci")
    assert code == 0 and "bound 2 VFs to mlx5_vfio_pci" in out
    host = scan_host(nic.fs)
    vfs = host.devices[PciAddress.parse("0000:04:00.0")].sriov.vfs  # type: ignore[union-attr]
    assert [host.devices[v].driver for v in vfs] == ["mlx5_vfio_pci"] * 2


def test_set_with_bind_to_a_driver_that_is_no_vfio_driver_is_bad_input(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, nic: FakeHost
) -> None:
    kernel = fake_kernel(monkeypatch, nic)
    with pytest.raises(SystemExit) as exit_:
        run(capsys, nic, "sriov", "set", "enp4s0f0", "2", "--bind", "igbvf")
    assert exit_.value.code == 2
    assert "'igbvf' is not a VFIO driver" in capsys.readouterr().err
    assert kernel.writes == []


def test_set_with_bind_reports_a_failed_bind(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, nic: FakeHost
) -> None:
    kernel = fake_kernel(monkeypatch, nic)
    kernel.fail_on["drivers_probe"] = 19  # ENODEV
    code, _, err = run(capsys, nic, "sriov", "set", "enp4s0f0", "2", "--bind", "vfio-pci")
    assert code == 1 and "error: 0000:04:10.0" in err


def test_set_without_autoprobe(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, nic: FakeHost
) -> None:
    fake_kernel(monkeypatch, nic)
    code, out, err = run(capsys, nic, "sriov", "set", "enp4s0f0", "2", "--no-autoprobe")
    assert code == 0 and "sriov_drivers_autoprobe = 0" in out
    assert "VFs 2/2 present, 0 with a driver" in err
    pf = scan_host(nic.fs).devices[PciAddress.parse("0000:04:00.0")]
    assert pf.sriov is not None and pf.sriov.drivers_autoprobe is False


def test_set_turns_autoprobe_back_on(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, nic: FakeHost
) -> None:
    fake_kernel(monkeypatch, nic)
    run(capsys, nic, "sriov", "set", "enp4s0f0", "1", "--no-autoprobe")
    code, out, err = run(capsys, nic, "sriov", "set", "enp4s0f0", "2", "--autoprobe")
    assert code == 0 and "sriov_drivers_autoprobe = 1" in out
    assert "VFs 2/2 present, 2 with a driver" in err


def test_set_dry_run_changes_nothing(capsys: pytest.CaptureFixture[str], nic: FakeHost) -> None:
    code, out, _ = run(
        capsys, nic, "sriov", "set", "enp4s0f1", "3", "--bind", "vfio-pci", "--dry-run"
    )
    assert code == 0 and num_vfs(nic, "0000:04:00.1") == 7
    lines = out.splitlines()
    assert lines[0].startswith("would write '0' to ") and lines[0].endswith("/sriov_numvfs")
    assert lines[1].startswith("would write '3' to ")
    assert "would then bind the VFs to vfio-pci" in lines[2]
    code, out, _ = run(capsys, nic, "sriov", "set", "enp4s0f1", "7", "--dry-run")
    assert out == "nothing to do\n"


def test_set_reports_a_kernel_refusal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, nic: FakeHost
) -> None:
    kernel = fake_kernel(monkeypatch, nic)
    kernel.fail_on["0000:04:00.1/sriov_numvfs"] = 16  # EBUSY: a VF still in use
    code, _, err = run(capsys, nic, "sriov", "set", "enp4s0f1", "0")
    assert code == 1 and "refused sriov_numvfs=0: device or resource busy" in err


def test_set_with_bind_and_an_unusable_state_file_writes_nothing(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    nvme: FakeHost,
    tmp_path: Path,
) -> None:
    kernel = fake_kernel(monkeypatch, nvme)
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("HOSTDEV_STATE_FILE", str(tmp_path / "file" / "state.json"))
    code, _, err = run(capsys, nvme, "sriov", "set", NVME_PF, "2", "--bind", VFIO_PCI)
    assert code == 2
    assert err.startswith(f"error: cannot use the state file {tmp_path}/file/state.json")
    assert kernel.writes == []


def test_set_with_a_state_file_that_cannot_be_looked_up_writes_nothing(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    nvme: FakeHost,
    tmp_path: Path,
) -> None:
    kernel = fake_kernel(monkeypatch, nvme)
    state_file = tmp_path / ("x" * 300)
    monkeypatch.setenv("HOSTDEV_STATE_FILE", str(state_file))
    code, _, err = run(capsys, nvme, "sriov", "set", NVME_PF, "2")
    assert code == 2
    assert err.startswith(f"error: cannot use the state file {state_file}")
    assert len(err.splitlines()) == 1 and "File name too long" in err
    assert kernel.writes == []
