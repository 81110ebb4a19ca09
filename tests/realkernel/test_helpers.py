"""The pure parts of the real-kernel suite, tested anywhere: parsers, kernel unpacker, harness."""

from __future__ import annotations

import importlib.util
import lzma
import os
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from .guest import LspciDevice, hex_id, parse_lspci, parse_node_resources

HARNESS = Path(__file__).parent / "harness"

LSPCI_SAMPLE = (Path(__file__).parent / "data" / "lspci-Dnnk-sample.txt").read_text()


def test_parse_lspci_reads_ids_class_and_driver() -> None:
    assert parse_lspci(LSPCI_SAMPLE) == {
        "0000:00:00.0": LspciDevice("0000:00:00.0", "0600", "8086", "29c0", None),
        "0000:00:1f.2": LspciDevice("0000:00:1f.2", "0106", "8086", "2922", "ahci"),
        "0000:05:02.0": LspciDevice("0000:05:02.0", "0200", "10ec", "8139", "8139cp"),
    }


@pytest.mark.parametrize(
    "text",
    ["00:01.0 Host bridge [0600]: Intel [8086:29c0]", "0000:00:01.0 no ids at all"],
    ids=["short-address", "no-ids"],
)
def test_parse_lspci_rejects_lines_it_does_not_understand(text: str) -> None:
    with pytest.raises(ValueError, match="unexpected lspci line"):
        parse_lspci(text)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0x8086", "8086"), ("10EC", "10ec"), (0x1B36, "1b36"), (0x10, "0010"), ("020000", "020000")],
    ids=["0x-prefix", "upper", "int", "small-int", "class"],
)
def test_hex_id(value: object, expected: str) -> None:
    assert hex_id(value) == expected


def test_parse_node_resources_keeps_the_last_blocks() -> None:
    text = """\
Capacity:
  devices.kubevirt.io/8086_10d3:  3
Allocatable:
  devices.kubevirt.io/8086_10d3:  3
event: device 0000:01:00.0 Unhealthy
Capacity:
  devices.kubevirt.io/8086_10d3:  3
  devices.kubevirt.io/10ec_8139:  1
Allocatable:
  devices.kubevirt.io/8086_10d3:  2
"""
    assert parse_node_resources(text) == {
        "Capacity": {"devices.kubevirt.io/8086_10d3": 3, "devices.kubevirt.io/10ec_8139": 1},
        "Allocatable": {"devices.kubevirt.io/8086_10d3": 2},
    }


@pytest.fixture(scope="module")
def kernel_elf() -> ModuleType:
    """harness/kernel_elf.py, which is a script rather than a package module."""
    spec = importlib.util.spec_from_file_location("kernel_elf", HARNESS / "kernel_elf.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (
            b"setup code" + lzma.compress(b"\x7fELF kernel", format=lzma.FORMAT_XZ),
            b"\x7fELF kernel",
        ),
        (b"setup code" + lzma.compress(b"not an elf", format=lzma.FORMAT_XZ), None),
        (b"setup code without any payload", None),
        (b"setup code\xfd7zXZ\x00 broken stream", None),
    ],
    ids=["elf-payload", "non-elf-payload", "no-xz", "corrupt-xz"],
)
def test_kernel_elf_payload(kernel_elf: ModuleType, image: bytes, expected: bytes | None) -> None:
    assert kernel_elf.elf_payload(image) == expected


def test_kernel_elf_main_writes_the_payload(kernel_elf: ModuleType, tmp_path: Path) -> None:
    image = tmp_path / "vmlinuz"
    image.write_bytes(b"MZ" + lzma.compress(b"\x7fELF body", format=lzma.FORMAT_XZ))
    assert kernel_elf.main([str(image), str(tmp_path / "vmlinux")]) == 0
    assert (tmp_path / "vmlinux").read_bytes() == b"\x7fELF body"
    assert kernel_elf.main([str(tmp_path / "vmlinux"), str(tmp_path / "again")]) == 1
    assert kernel_elf.main([]) == 2


def run_harness(
    *args: str,
    as_nobody: bool = False,
    env: dict[str, str] | None = None,
    script: str = "run-in-guest",
) -> subprocess.CompletedProcess[str]:
    """Run a harness script with arguments that make it stop before doing anything."""
    command = [str(HARNESS / script), *args]
    if as_nobody:
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False, env=env)


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv"
)
@pytest.mark.parametrize(
    ("script", "args"),
    [("run-in-guest", ("--setup",)), ("build-iommufd-kernel", ())],
    ids=["run-in-guest", "build-iommufd-kernel"],
)
def test_harness_refuses_to_run_without_root(script: str, args: tuple[str, ...]) -> None:
    result = run_harness(*args, as_nobody=True, script=script)
    assert result.returncode == 2
    assert "must run as root" in result.stderr


def _built_kernel(cache: Path, features: str) -> dict[str, str]:
    """A cache holding a kernel built with `features`; the environment that points at it."""
    (cache / "kernel").mkdir()
    (cache / "kernel" / ".version").write_text("6.12.107-iommufd\n")
    (cache / "kernel" / ".features").write_text(features + "\n")
    return {**os.environ, "HOSTDEV_REALKERNEL_CACHE": str(cache)}


def _wanted_features() -> str:
    script = (HARNESS / "build-iommufd-kernel").read_text()
    match = re.search(r"^FEATURES=\((.*)\)$", script, re.MULTILINE)
    assert match is not None
    return match[1]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
@pytest.mark.parametrize("args", [(), ("--check",)], ids=["build", "check"])
def test_kernel_build_leaves_a_built_kernel_alone(tmp_path: Path, args: tuple[str, ...]) -> None:
    """A cache that holds a kernel built with the script's options is used as it is: nothing
    installed, fetched or built."""
    env = _built_kernel(tmp_path, _wanted_features())
    result = run_harness(*args, env=env, script="build-iommufd-kernel")
    assert result.returncode == 0, result.stderr
    assert "already built: 6.12.107-iommufd" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kernel"]


def test_kernel_check_says_a_kernel_built_with_other_options_needs_a_build(
    tmp_path: Path,
) -> None:
    env = _built_kernel(tmp_path, "CONFIG_IOMMUFD=m CONFIG_VFIO_DEVICE_CDEV=y")
    result = run_harness("--check", env=env, script="build-iommufd-kernel")
    assert result.returncode == 1
    assert f"no kernel built with {_wanted_features()}" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kernel"]


def test_harness_rejects_unknown_arguments() -> None:
    result = run_harness("--bogus")
    assert result.returncode == 2
    assert "unknown argument '--bogus'" in result.stderr


def test_harness_rejects_a_suite_that_is_not_a_name() -> None:
    """The suite names a cache folder and an apt source: nothing else may pass."""
    result = run_harness("--setup", env={**os.environ, "HOSTDEV_REALKERNEL_SUITE": "../x"})
    assert result.returncode == 2
    assert "'../x' is not a suite name" in result.stderr
