"""Every path a command takes, given wrong (missing, a directory where a file belongs, a file
where a directory belongs, binary, empty): one `error:` line on stderr, exit 2, no traceback."""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostdev.cli import writing
from hostdev.cli.main import main
from hostdev.testing.examples import vgpu_node

# Placeholders in the cases; the fixture below makes each of them.
PATHS = {
    "missing": None,
    "dir": None,
    "file": b"data\n",
    "binary": b"\x89PNG\r\n\x1a\n\xff\xfe",
    "control": b"a: 1\n\x00b: 2\n",
    "empty": b"",
    "invalid": b"a: [\n",
    "mdev": b"mediatedDevicesTypes: [nvidia-231]\n",
}
SERVE = "serve --host-root {host} --no-uevents --pod-resources-socket {missing}"
SIM = "kubelet-sim --duration 0"
APPLY = "mdev apply --host-root {host} --config"
LABELS = "mdev apply --host-root {host} --config {mdev} --node-labels"

CASES = {
    "config-check-missing": "config check {missing}",
    "config-check-dir": "config check {dir}",
    "config-check-under-file": "config check {file}/x",
    "config-check-binary": "config check {binary}",
    "config-check-control-character": "config check {control}",
    "config-check-empty": "config check {empty}",
    "config-check-invalid-yaml": "config check {invalid}",
    "serve-config-binary": f"{SERVE} --config {{binary}}",
    "render-kubevirt-config-dir": "render kubevirt --host-root {host} --config {dir}",
    "status-config-control-character": "status --host-root {host} --config {control}",
    "serve-plugin-dir-file": f"{SERVE} --plugin-dir {{file}}",
    "serve-plugin-dir-under-file": f"{SERVE} --plugin-dir {{file}}/x",
    "serve-plugin-dir-binary": f"{SERVE} --plugin-dir {{binary}}",
    "serve-metrics-address-not-here": f"{SERVE} --plugin-dir {{dir}} "
    "--metrics-address 192.0.2.1:9477",
    "kubelet-sim-plugin-dir-file": f"{SIM} --plugin-dir {{file}}",
    "kubelet-sim-plugin-dir-under-file": f"{SIM} --plugin-dir {{file}}/x",
    "kubelet-sim-pod-resources-socket-dir": f"{SIM} --plugin-dir {{dir}} "
    "--pod-resources-socket {dir}",
    "kubelet-sim-pod-resources-socket-file": f"{SIM} --plugin-dir {{dir}} "
    "--pod-resources-socket {file}",
    "kubelet-sim-pod-resources-socket-under-file": f"{SIM} --plugin-dir {{dir}} "
    "--pod-resources-socket {file}/x",
    "kubelet-sim-script-missing": f"{SIM} --plugin-dir {{dir}} --script {{missing}}",
    "kubelet-sim-script-dir": f"{SIM} --plugin-dir {{dir}} --script {{dir}}",
    "kubelet-sim-script-binary": f"{SIM} --plugin-dir {{dir}} --script {{binary}}",
    "kubelet-sim-script-control-character": f"{SIM} --plugin-dir {{dir}} --script {{control}}",
    "kubelet-sim-script-empty": f"{SIM} --plugin-dir {{dir}} --script {{empty}}",
    "inspect-socket-missing": "inspect --socket {missing}",
    "inspect-socket-dir": "inspect --socket {dir}",
    "inspect-socket-file": "inspect --socket {file}",
    "mdev-apply-config-missing": f"{APPLY} {{missing}}",
    "mdev-apply-config-dir": f"{APPLY} {{dir}}",
    "mdev-apply-config-under-file": f"{APPLY} {{file}}/x",
    "mdev-apply-config-binary": f"{APPLY} {{binary}}",
    "mdev-apply-config-control-character": f"{APPLY} {{control}}",
    "mdev-apply-config-invalid-yaml": f"{APPLY} {{invalid}}",
    "mdev-apply-node-labels-missing": f"{LABELS} {{missing}}",
    "mdev-apply-node-labels-dir": f"{LABELS} {{dir}}",
    "mdev-apply-node-labels-binary": f"{LABELS} {{binary}}",
    "mdev-apply-node-labels-control-character": f"{LABELS} {{control}}",
    "mdev-apply-node-labels-invalid-yaml": f"{LABELS} {{invalid}}",
    "example-into-file": "example gpu-node {file}",
    "example-under-file": "example gpu-node {file}/x",
    "example-name-too-long": "example gpu-node {long}",
    "list-sysfs-root-missing": "list --sysfs-root {missing}",
    "list-sysfs-root-file": "list --sysfs-root {file}",
    "list-sysfs-root-name-too-long": "list --sysfs-root {long}",
    "list-host-root-name-too-long": "list --host-root {long}",
    "doctor-host-root-under-file": "doctor --host-root {file}/x",
    "list-dev-root-missing": "list --host-root {host} --dev-root {missing}",
    "list-proc-root-file": "list --host-root {host} --proc-root {file}",
    "list-dev-root-name-too-long": "list --host-root {host} --dev-root {long}",
    "doctor-proc-root-name-too-long": "doctor --host-root {host} --proc-root {long}",
    "doctor-proc-root-missing": "doctor --host-root {host} --proc-root {missing}",
    "status-dev-root-under-file": "status --host-root {host} --dev-root {file}/x",
    "bind-dev-root-missing": "bind 0000:3b:00.0 --dry-run --host-root {host} --dev-root {missing}",
    "serve-dev-root-missing": f"{SERVE} --plugin-dir {{dir}} --dev-root {{missing}}",
    "serve-proc-root-missing": f"{SERVE} --plugin-dir {{dir}} --proc-root {{missing}}",
    "restore-state-file-empty": "restore --all --host-root {host} --state-file {empty}",
    "unbind-state-file-control-character": "unbind 0000:3b:00.0 --host-root {host} "
    "--state-file {control}",
}


@pytest.fixture
def paths() -> Iterator[dict[str, str]]:
    """The placeholders' paths, in a short directory (unix socket paths are limited)."""
    root = Path(tempfile.mkdtemp(prefix="hdp", dir="/tmp"))
    made = {"host": str(vgpu_node(root / "host").root), "long": str(root / ("x" * 300))}
    for name, content in PATHS.items():
        path = root / name
        if name == "dir":
            path.mkdir()
        elif content is not None:
            path.write_bytes(content)
        made[name] = str(path)
    yield made
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No write reaches a real sysfs, no state file a real one; serve's logging is undone."""

    def refuse() -> None:
        raise AssertionError("a test tried to write to sysfs")

    monkeypatch.setattr(writing, "writer_factory", refuse)
    monkeypatch.setenv("HOSTDEV_STATE_FILE", str(tmp_path / "state.json"))
    for name in ("KUBERNETES_SERVICE_HOST", "NODE_NAME", "HOSTDEV_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:], root.level = handlers, level


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("template", CASES.values(), ids=CASES.keys())
def test_a_wrong_path_is_one_error_line(
    capsys: pytest.CaptureFixture[str], paths: dict[str, str], template: str
) -> None:
    argv = template.format(**paths).split()
    try:
        code = main(argv)
    except Exception:  # what a user would see as a traceback
        code = -1
        print(traceback.format_exc(), file=sys.stderr)
    lines = capsys.readouterr().err.splitlines()
    assert "Traceback" not in "\n".join(lines)
    assert (code, len(lines)) == (2, 1), lines
    assert lines[0].startswith("error: ")


EMPTY_PATH_CASES = {
    "kubelet-sim-plugin-dir": ["kubelet-sim", "--duration", "0", "--plugin-dir", ""],
    "kubelet-sim-pod-resources-socket": [
        *SIM.split(),
        "--plugin-dir",
        "{dir}",
        "--pod-resources-socket",
        "",
    ],
    "kubelet-sim-script": [*SIM.split(), "--plugin-dir", "{dir}", "--script", ""],
    "inspect-socket": ["inspect", "--socket", ""],
    "serve-plugin-dir": [*SERVE.split(), "--plugin-dir", ""],
}


@pytest.mark.parametrize("argv", EMPTY_PATH_CASES.values(), ids=EMPTY_PATH_CASES.keys())
def test_an_empty_path_is_a_usage_error_not_the_working_directory(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    paths: dict[str, str],
    argv: list[str],
) -> None:
    """ "" would be the working directory, whose files kubelet-sim deletes like a kubelet."""
    workdir = Path(paths["dir"]) / "work"
    workdir.mkdir()
    (workdir / "notes.txt").write_text("kept\n")
    monkeypatch.chdir(workdir)
    with pytest.raises(SystemExit) as exit_:
        main([word.format(**paths) for word in argv])
    assert exit_.value.code == 2
    assert "an empty path" in capsys.readouterr().err
    assert sorted(p.name for p in workdir.iterdir()) == ["notes.txt"]


def test_a_dev_root_without_vfio_is_no_error(
    capsys: pytest.CaptureFixture[str], paths: dict[str, str]
) -> None:
    argv = f"list --host-root {paths['host']} --dev-root {paths['dir']}".split()
    assert main(argv) == 0
    assert capsys.readouterr().err == ""
