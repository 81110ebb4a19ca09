"""Fixtures for the binding tests: a fake host with devices on host drivers, and its kernel."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from binding_helpers import build_host

from hostdev.binding import BindOptions
from hostdev.binding.guards import no_ipv4_probe
from hostdev.testing.fakehost import FakeHost
from hostdev.testing.fakekernel import FakeKernelWriter


@pytest.fixture
def host(tmp_path: Path) -> FakeHost:
    return build_host(tmp_path / "host")


@pytest.fixture
def kernel(host: FakeHost) -> FakeKernelWriter:
    return FakeKernelWriter(host)


@pytest.fixture
def state_file(tmp_path: Path) -> Path:
    return tmp_path / "state" / "state.json"


@pytest.fixture
def options(state_file: Path, host: FakeHost) -> BindOptions:
    def load(module: str, params: Sequence[str]) -> None:
        host.load_vfio()

    return BindOptions(state_file=state_file, loader=load, ipv4_probe=no_ipv4_probe)
