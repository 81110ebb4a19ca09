"""Socket names: one per resource name, bounded in length, the same on every start; a plugin
dir too long for them is refused, and a server that cannot start leaves the others served.

Every node here serves from a plugin dir exactly as long as hostdev accepts."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import NodeFactory
from fakekubelet import FakeKubelet, Registration

from hostdev.config import load_config
from hostdev.config.model import Config
from hostdev.errors import BadInputError
from hostdev.host.scan import scan_host
from hostdev.kubelet import plugin
from hostdev.kubelet.plugin import (
    SOCKET_NAME_MAX,
    SOCKET_PATH_MAX,
    DevicePluginService,
    PluginServeError,
    PluginServer,
    check_plugin_dir,
    fnv1a_64,
    socket_name,
)
from hostdev.kubelet.resourcename import is_extended_resource_name
from hostdev.kubelet.state import DeviceTable
from hostdev.testing.fakehost import FakeHost

ROOM = SOCKET_PATH_MAX - 1 - SOCKET_NAME_MAX  # the longest plugin dir accepted
LONGEST_DOMAIN = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 52])  # 244: `requests.` + it fits
LONGEST = f"{LONGEST_DOMAIN}/{'n' * 63}"


@pytest.fixture
def plugin_dir(short_dir: Path) -> Path:
    """A plugin dir of exactly ROOM bytes (the fake kubelet and the nodes use it)."""
    path = short_dir / ("p" * (ROOM - len(str(short_dir)) - 1))
    path.mkdir()
    assert len(str(path)) == ROOM
    return path


def write_config(path: Path, *resources: tuple[str, str]) -> Path:
    """A config file serving each (resource name, vendor:device)."""
    lines = [f"- {{name: {r}, selectors: [{{device: '{d}'}}]}}\n" for r, d in resources]
    path.write_text("resources:\n" + "".join(lines))
    return path


def config(directory: Path, name: str, *resources: tuple[str, str]) -> Config:
    """The config of a file called name serving each (resource name, vendor:device)."""
    return load_config(write_config(directory / name, *resources))


async def registrations(kubelet: FakeKubelet, count: int) -> dict[str, Registration]:
    found = [await kubelet.accepted.get() for _ in range(count)]
    return {r.request.resource_name: r for r in found}


@pytest.mark.parametrize(
    "data,expected",
    [(b"", 0xCBF29CE484222325), (b"a", 0xAF63DC4C8601EC8C), (b"foobar", 0x85944171F73967E8)],
    ids=["empty", "a", "foobar"],
)
def test_fnv1a_64_matches_the_published_test_vectors(data: bytes, expected: int) -> None:
    assert fnv1a_64(data) == expected


@pytest.mark.parametrize(
    "name,expected",
    [
        ("devices.kubevirt.io/10de_1eb8", "hostdev-10de_1eb8-83f2218bb9.sock"),
        ("nvidia.com/TU104GL_Tesla_T4", "hostdev-TU104GL_Tesla_T4-a390229418.sock"),
        ("example.com/t4.vf", "hostdev-t4.vf-c6048ff25a.sock"),
        (LONGEST, "hostdev-nnnnnnnnnnnnnnnnnnnnnnnn-04043357b5.sock"),
    ],
    ids=["kubevirt-default", "upper-case", "dot", "longest-valid"],
)
def test_socket_name_is_readable_bounded_and_stable(name: str, expected: str) -> None:
    assert is_extended_resource_name(name)
    assert socket_name(name) == expected  # the same on every start and every release
    assert len(socket_name(name)) <= SOCKET_NAME_MAX


@pytest.mark.parametrize(
    "first,second",
    [
        ("example.com/t4.vf", "example.com/t4-vf"),
        ("a.example.com/gpu", "b.example.com/gpu"),
        (LONGEST, LONGEST[:-1] + "m"),
    ],
    ids=["dot-or-dash", "same-name-other-domain", "same-readable-prefix"],
)
def test_distinct_resource_names_get_distinct_sockets(first: str, second: str) -> None:
    assert is_extended_resource_name(first) and is_extended_resource_name(second)
    assert socket_name(first) != socket_name(second)


async def test_names_that_once_shared_a_socket_are_served_apart(
    kubelet: FakeKubelet, make_node: NodeFactory, gpu_host: FakeHost, short_dir: Path
) -> None:
    pair = (("example.com/t4.vf", "10de:1eb8"), ("example.com/t4-vf", "10de:1aeb"))
    node = make_node(gpu_host, config(short_dir, "pair.yaml", *pair))
    await node.start()
    regs = await registrations(kubelet, 2)
    listed = {name: [d.ID for d in (await r.lists.get()).devices] for name, r in regs.items()}
    assert listed == {
        "example.com/t4.vf": ["0000:65:00.0", "0000:b3:00.0"],
        "example.com/t4-vf": ["0000:17:00.1"],
    }


async def test_the_longest_valid_name_is_served_from_the_longest_plugin_dir(
    kubelet: FakeKubelet, make_node: NodeFactory, gpu_host: FakeHost, short_dir: Path
) -> None:
    node = make_node(gpu_host, config(short_dir, "long.yaml", (LONGEST, "10de:1eb8")))
    await node.start()
    regs = await registrations(kubelet, 1)
    assert [d.ID for d in (await regs[LONGEST].lists.get()).devices] == [
        "0000:65:00.0",
        "0000:b3:00.0",
    ]


def test_check_plugin_dir_accepts_the_longest_dir_and_refuses_one_byte_more(
    plugin_dir: Path,
) -> None:
    check_plugin_dir(plugin_dir)
    with pytest.raises(BadInputError, match=f"is {ROOM + 1} bytes long, over the {ROOM}"):
        check_plugin_dir(plugin_dir.with_name(plugin_dir.name + "p"))


async def test_serve_refuses_a_plugin_dir_too_long_with_one_line(
    gpu_host: FakeHost, plugin_dir: Path, short_dir: Path
) -> None:
    too_long = plugin_dir.with_name(plugin_dir.name + "p")
    path = write_config(short_dir / "long.yaml", (LONGEST, "10de:1eb8"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hostdev.cli.main", "serve", "--config", str(path),
        "--host-root", str(gpu_host.root), "--plugin-dir", str(too_long),
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await proc.communicate()
    assert proc.returncode == 2
    (line,) = stderr.decode().splitlines()
    assert line.startswith(f"error: plugin directory {too_long} is {ROOM + 1} bytes long")
    assert not too_long.exists()


def directory_in_the_way(plugin_dir: Path) -> Path:
    (plugin_dir / socket_name(LONGEST)).mkdir()
    return plugin_dir


def plugin_dir_missing(plugin_dir: Path) -> Path:
    return plugin_dir.with_name("missing")


def plugin_dir_too_long(plugin_dir: Path) -> Path:
    (plugin_dir / "q").mkdir()  # two bytes past ROOM
    return plugin_dir / "q"


@pytest.mark.parametrize(
    "prepare,reason",
    [
        (directory_in_the_way, "Is a directory"),
        (plugin_dir_missing, "gRPC could not listen there"),
        (plugin_dir_too_long, f"over the unix socket limit of {SOCKET_PATH_MAX}"),
    ],
    ids=["directory-in-the-way", "plugin-dir-missing", "path-too-long"],
)
async def test_a_server_that_cannot_listen_raises_one_typed_error(
    gpu_host: FakeHost,
    short_dir: Path,
    plugin_dir: Path,
    prepare: Callable[[Path], Path],
    reason: str,
) -> None:
    served = config(short_dir, "one.yaml", (LONGEST, "10de:1eb8"))
    table = DeviceTable(served, scan_host(gpu_host.fs))
    server = PluginServer(DevicePluginService(table, LONGEST), prepare(plugin_dir))
    with pytest.raises(PluginServeError, match=reason) as caught:
        await server.start()
    assert str(caught.value).startswith(f"{LONGEST}: cannot serve on {server.socket_path}: ")
    assert not server.running


async def test_a_reload_goes_on_past_a_resource_whose_server_cannot_start(
    kubelet: FakeKubelet,
    make_node: NodeFactory,
    gpu_host: FakeHost,
    short_dir: Path,
    plugin_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    kept, blocked, later = (
        ("example.com/t4", "10de:1eb8"),
        ("example.com/geforce", "10de:2184"),
        ("example.com/audio", "10de:1aeb"),
    )
    before = config(short_dir, "before.yaml", kept)
    node = make_node(gpu_host, before)
    await node.start()
    await registrations(kubelet, 1)
    (plugin_dir / socket_name(blocked[0])).mkdir()  # nothing can listen there
    caplog.set_level(logging.ERROR)
    changes = await node.reload(config(short_dir, "after.yaml", kept, blocked, later))
    assert changes.added == (blocked[0], later[0])
    assert list(await registrations(kubelet, 1)) == [later[0]]
    assert sorted(node.registrars) == sorted([kept[0], later[0]])
    changes = await node.reload(before)  # the revert removes what was never served too
    assert sorted(changes.removed) == sorted([blocked[0], later[0]])
    assert list(node.registrars) == [kept[0]]
    assert not (plugin_dir / socket_name(later[0])).exists()
    (failure,) = [r.getMessage() for r in caplog.records if blocked[0] in r.getMessage()]
    assert "Is a directory" in failure and "not served" in failure


async def test_names_whose_sockets_coincide_leave_the_first_served(
    kubelet: FakeKubelet,
    make_node: NodeFactory,
    gpu_host: FakeHost,
    short_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # no two names with equal digests are known, so the digest is made to coincide here
    monkeypatch.setattr(plugin, "socket_name", lambda name: "hostdev-same-0000000000.sock")
    first, second = ("example.com/t4", "10de:1eb8"), ("example.com/audio", "10de:1aeb")
    node = make_node(gpu_host, config(short_dir, "one.yaml", first))
    await node.start()
    await registrations(kubelet, 1)
    with pytest.raises(
        PluginServeError, match=r"example\.com/audio: its socket \S+ is example\.com/t4.s"
    ):
        await node._add(second[0])
    assert list(node.registrars) == [first[0]]


async def test_a_server_that_cannot_start_at_start_fails_the_start(
    make_node: NodeFactory, gpu_host: FakeHost, short_dir: Path, plugin_dir: Path
) -> None:
    (plugin_dir / socket_name("example.com/t4")).mkdir()
    node = make_node(gpu_host, config(short_dir, "one.yaml", ("example.com/t4", "10de:1eb8")))
    with pytest.raises(PluginServeError, match="Is a directory"):
        await node.start()
