"""--noiommu: vfio's enable_unsafe_noiommu_mode is journaled, rolled back and restored like the
device bindings: hostdev leaves it as it found it once nothing it bound needs it."""

from __future__ import annotations

import errno
import json
from dataclasses import replace
from pathlib import Path

import pytest

from hostdev.binding import BindOptions, bind_devices, restore_devices
from hostdev.host.model import PciAddress
from hostdev.testing.examples import no_iommu
from hostdev.testing.fakehost import FakeHost
from hostdev.testing.fakekernel import FakeKernelWriter

GPU = "0000:65:00.0"  # nouveau
NIC = "0000:01:00.0"  # e1000e, eno1 down
PARAM = "sys/module/vfio/parameters/enable_unsafe_noiommu_mode"


@pytest.fixture
def host(tmp_path: Path) -> FakeHost:
    return no_iommu(tmp_path / "host")


@pytest.fixture
def noiommu(options: BindOptions) -> BindOptions:
    return replace(options, noiommu=True)


def mode(host: FakeHost) -> str:
    return (host.root / PARAM).read_text().strip()


def state(state_file: Path) -> dict[str, object]:
    return json.loads(state_file.read_text()) if state_file.exists() else {}


def bind(host: FakeHost, options: BindOptions, *addresses: str, **fail: dict[str, int]):  # type: ignore[no-untyped-def]
    kernel = FakeKernelWriter(host, **fail)
    return bind_devices(host.fs, kernel, [PciAddress.parse(a) for a in addresses], options)


def restore(host: FakeHost, options: BindOptions, *addresses: str):  # type: ignore[no-untyped-def]
    named = [PciAddress.parse(a) for a in addresses] or None
    return restore_devices(host.fs, FakeKernelWriter(host), named, options)


def test_bind_records_the_mode_before_turning_it_on(host, noiommu, state_file):
    assert bind(host, noiommu, GPU).ok
    assert mode(host) == "1"
    document = state(state_file)
    assert document["noiommu"]["previous"] == "N"  # type: ignore[index]
    assert document["devices"][GPU]["noiommu"] is True  # type: ignore[index]


@pytest.mark.parametrize(
    "fail",
    [{"fail_on": {"drivers_probe": errno.EIO}}, {"fail_at": {0: errno.EIO}}],
    ids=["device-write-fails", "mode-write-fails"],
)
def test_a_failed_run_puts_the_mode_back(host, noiommu, state_file, fail):
    result = bind(host, noiommu, GPU, **fail)
    assert not result.ok
    assert mode(host) == "N"
    assert host.driver_of(GPU) == "nouveau"
    assert state(state_file) in ({}, {"version": 1, "devices": {}})


@pytest.mark.parametrize(
    ("restores", "modes"),
    [
        ([()], ["N"]),
        ([(GPU,), (NIC,)], ["1", "N"]),
        ([(NIC,), (GPU,)], ["1", "N"]),
    ],
    ids=["restore-all", "gpu-then-nic", "nic-then-gpu"],
)
def test_restore_puts_the_mode_back_with_the_last_record_that_needed_it(
    host, noiommu, options, state_file, restores, modes
):
    assert bind(host, noiommu, GPU).ok
    assert bind(host, noiommu, NIC).ok
    seen = []
    for addresses in restores:
        result = restore(host, options, *addresses)
        assert result.ok, result.to_json()
        seen.append(mode(host))
    assert seen == modes
    assert any("enable_unsafe_noiommu_mode back to N" in n for n in result.notes)
    assert "noiommu" not in state(state_file)


def test_a_mode_that_was_on_already_stays_on(host, noiommu, options, state_file):
    (host.root / PARAM).write_text("Y\n")
    assert bind(host, noiommu, GPU).ok
    assert "noiommu" not in state(state_file)
    assert restore(host, options).ok
    assert mode(host) == "Y"


def test_a_mode_turned_on_by_loading_vfio_is_turned_off_by_restore(
    tmp_path, noiommu, options, state_file
):
    host = FakeHost(tmp_path / "bare")
    host.add_driver("nouveau")
    host.add_device(GPU, "10de", "1eb8", "030200", driver="nouveau")

    def load(module: str, params: object) -> None:
        if module != "vfio":
            host.load_vfio()
        host.load_module("vfio", enable_unsafe_noiommu_mode="Y")  # loaded with the mode on

    assert bind(host, replace(noiommu, loader=load), GPU).ok
    assert mode(host) == "Y"
    assert state(state_file)["noiommu"]["previous"] is None  # type: ignore[index]
    assert restore(host, options).ok
    assert mode(host) == "N"
