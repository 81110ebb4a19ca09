"""Fixtures for device plugin tests: short socket dirs, example hosts, a fake kubelet, a node."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from fakekubelet import FakeKubelet

from hostdev.config import DEFAULT_CONFIG, Config
from hostdev.daemon.node import Node
from hostdev.kubelet.registration import Backoff
from hostdev.testing.examples import build_example
from hostdev.testing.fakehost import FakeHost

FAST = Backoff(first=0.001, factor=2.0, cap=0.01)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A short /tmp directory: unix socket paths must stay under 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="hd", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def plugin_dir(short_dir: Path) -> Path:
    path = short_dir / "dp"
    path.mkdir()
    return path


@pytest.fixture
def gpu_host(short_dir: Path) -> FakeHost:
    return build_example("gpu-node", short_dir / "host")


@pytest.fixture
async def kubelet(plugin_dir: Path) -> AsyncIterator[FakeKubelet]:
    fake = FakeKubelet(plugin_dir)
    await fake.start()
    yield fake
    await fake.stop()


NodeFactory = Callable[..., Node]


@pytest.fixture
async def make_node(plugin_dir: Path) -> AsyncIterator[NodeFactory]:
    """Build nodes on a fake host; every node built is stopped at the end."""
    nodes: list[Node] = []

    def build(host: FakeHost, config: Config = DEFAULT_CONFIG, **kwargs: object) -> Node:
        kwargs.setdefault("backoff", FAST)
        node = Node(host.fs, config, plugin_dir, plugin_dir / "kubelet.sock", **kwargs)  # type: ignore[arg-type]
        nodes.append(node)
        return node

    yield build
    for node in nodes:
        await node.stop()
