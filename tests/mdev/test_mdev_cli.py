"""`hostdev mdev ...` through the real entry point; allocation from a fake PodResources server."""

import json
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from hostdev.allocated import allocated_ids
from hostdev.cli import mdev as mdev_cli
from hostdev.cli import writing
from hostdev.cli.main import main
from hostdev.errors import HostdevError
from hostdev.host.scan import scan_host
from hostdev.kubelet.api import podresources_pb2 as pb
from hostdev.kubelet.api import podresources_pb2_grpc as pb_grpc
from hostdev.testing.examples import gpu_node, vgpu_node
from hostdev.testing.fakehost import FakeHost
from hostdev.testing.fakekernel import FakeKernelWriter

T4_CARD = "0000:3b:00.0"
EXISTING = "4b20d080-1b54-4048-85b3-a6a62d165c01"
NEW = "11111111-2222-4333-8444-555555555555"


class PodResources(pb_grpc.PodResourcesListerServicer):  # type: ignore[misc]
    """Answers List with one pod holding the given device IDs."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids

    def List(self, request: Any, context: Any) -> Any:
        devices = pb.ContainerDevices(resource_name="nvidia.com/GRID_T4-2Q", device_ids=self.ids)
        container = pb.ContainerResources(name="compute", devices=[devices])
        pod = pb.PodResources(name="virt-launcher-vm1", namespace="default", containers=[container])
        return pb.ListPodResourcesResponse(pod_resources=[pod])


@pytest.fixture
def pod_resources(tmp_path: Path) -> Iterator[str]:
    socket = tmp_path / "pod-resources.sock"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    pb_grpc.add_PodResourcesListerServicer_to_server(PodResources([EXISTING]), server)
    server.add_insecure_port(f"unix://{socket}")
    server.start()
    yield str(socket)
    server.stop(None)


@pytest.fixture
def vgpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeHost:
    host = vgpu_node(tmp_path / "host")
    monkeypatch.setattr(writing, "writer_factory", lambda: FakeKernelWriter(host))
    monkeypatch.setattr(mdev_cli, "POD_RESOURCES_SOCKET", str(tmp_path / "no-kubelet.sock"))
    for name in ("KUBERNETES_SERVICE_HOST", "NODE_NAME"):
        monkeypatch.delenv(name, raising=False)
    return host


def run(capsys: pytest.CaptureFixture[str], host: FakeHost, *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "--host-root", str(host.root)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_types_table_wide_and_json(capsys: pytest.CaptureFixture[str], vgpu: FakeHost) -> None:
    code, out, _ = run(capsys, vgpu, "mdev", "types")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == [
        "PARENT",
        "TYPE",
        "NAME",
        "AVAILABLE",
        "DEVICE",
        "API",
    ]
    assert lines[5].split() == [T4_CARD, "nvidia-231", "GRID", "T4-2Q", "7", "vfio-pci"]
    _, out, _ = run(capsys, vgpu, "mdev", "types", "-o", "wide")
    assert "num_heads=4, frl_config=60, framebuffer=2G" in out
    _, out, _ = run(capsys, vgpu, "mdev", "types", "-o", "json")
    types = json.loads(out)["parents"][0]["types"]
    assert types[7] == {
        "type_id": "nvidia-234",
        "name": "GRID T4-16Q",
        "available_instances": 1,
        "device_api": "vfio-pci",
        "description": "num_heads=4, frl_config=60, framebuffer=16G",
    }


def test_list_table_and_yaml(capsys: pytest.CaptureFixture[str], vgpu: FakeHost) -> None:
    code, out, _ = run(capsys, vgpu, "mdev", "list")
    assert code == 0 and out.splitlines()[1].split()[:3] == [EXISTING, "nvidia-231", "GRID"]
    _, out, _ = run(capsys, vgpu, "mdev", "list", "-o", "yaml")
    assert yaml.safe_load(out)["mdevs"][0]["parent"] == T4_CARD


def test_empty_host(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    host = gpu_node(tmp_path / "gpu")
    assert run(capsys, host, "mdev", "types")[1] == "no device offers mediated device types\n"
    assert run(capsys, host, "mdev", "list")[1] == "no mediated devices\n"


def test_create_with_uuid_then_remove(capsys: pytest.CaptureFixture[str], vgpu: FakeHost) -> None:
    code, out, _ = run(capsys, vgpu, "mdev", "create", T4_CARD, "GRID T4-2Q", "--uuid", NEW)
    assert (code, out) == (0, f"created {NEW} (nvidia-231) on {T4_CARD}\n")
    assert NEW in scan_host(vgpu.fs).mdevs_by_uuid
    code, out, err = run(capsys, vgpu, "mdev", "remove", NEW)
    assert (code, out) == (0, f"removed {NEW} (nvidia-231) from {T4_CARD}\n")
    assert "allocation not checked" in err
    assert NEW not in scan_host(vgpu.fs).mdevs_by_uuid


def test_create_generates_a_uuid4(capsys: pytest.CaptureFixture[str], vgpu: FakeHost) -> None:
    code, out, _ = run(capsys, vgpu, "mdev", "create", "3b:00.0", "nvidia-233")
    uuid = out.split()[1]
    assert code == 0 and uuid[14] == "4" and uuid in scan_host(vgpu.fs).mdevs_by_uuid


@pytest.mark.parametrize(
    ("argv", "code", "text"),
    [
        (["create", T4_CARD, "GRID T4-99Q"], 2, "offers no type 'GRID T4-99Q'"),
        (["create", T4_CARD, "nvidia-231", "--uuid", EXISTING], 2, "already exists"),
        (["create", "0000:01:00.0", "nvidia-231"], 2, "offers no mediated device types"),
        (["remove", NEW], 2, "no mdev with UUID"),
    ],
    ids=["unknown-type", "uuid-taken", "not-a-parent", "unknown-uuid"],
)
def test_refusals(
    capsys: pytest.CaptureFixture[str], vgpu: FakeHost, argv: list[str], code: int, text: str
) -> None:
    got, out, err = run(capsys, vgpu, "mdev", *argv)
    assert (got, out) == (code, "") and text in err


def test_create_dry_run(capsys: pytest.CaptureFixture[str], vgpu: FakeHost) -> None:
    code, out, _ = run(
        capsys, vgpu, "mdev", "create", T4_CARD, "nvidia-231", "--uuid", NEW, "--dry-run"
    )
    assert code == 0 and out.startswith(f"would write '{NEW}' to ")
    assert out.rstrip().endswith("mdev_supported_types/nvidia-231/create")
    assert NEW not in scan_host(vgpu.fs).mdevs_by_uuid


def test_remove_refused_while_a_pod_holds_it(
    capsys: pytest.CaptureFixture[str], vgpu: FakeHost, pod_resources: str
) -> None:
    code, _out, err = run(
        capsys, vgpu, "mdev", "remove", EXISTING, "--pod-resources-socket", pod_resources
    )
    assert code == 1 and "is allocated to a pod; refusing to remove it" in err
    assert EXISTING in scan_host(vgpu.fs).mdevs_by_uuid


def test_remove_with_a_silent_socket_fails(
    capsys: pytest.CaptureFixture[str], vgpu: FakeHost, tmp_path: Path
) -> None:
    code, _, err = run(
        capsys,
        vgpu,
        "mdev",
        "remove",
        EXISTING,
        "--pod-resources-socket",
        str(tmp_path / "nobody.sock"),
    )
    assert code == 1 and "did not answer" in err


def test_allocated_ids(pod_resources: str) -> None:
    assert allocated_ids(pod_resources) == frozenset({EXISTING})
    with pytest.raises(HostdevError, match="did not answer"):
        allocated_ids(pod_resources + ".missing", timeout=0.5)


# -- apply ----------------------------------------------------------------------------------
def write(path: Path, data: object) -> str:
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_apply_by_node_labels(
    capsys: pytest.CaptureFixture[str], vgpu: FakeHost, tmp_path: Path
) -> None:
    config = write(
        tmp_path / "mdev.yaml",
        {
            "mediatedDevicesConfiguration": {
                "mediatedDevicesTypes": ["nvidia-231"],
                "nodeMediatedDeviceTypes": [
                    {"mediatedDevicesTypes": ["GRID T4-8Q"], "nodeSelector": {"gpu": "big"}}
                ],
            }
        },
    )
    labels = write(tmp_path / "labels.json", {"gpu": "big"})
    code, out, _ = run(
        capsys, vgpu, "mdev", "apply", "--config", config, "--node-labels", labels, "--dry-run"
    )
    assert code == 0 and "wanted types: GRID T4-8Q" in out
    assert f"would remove {EXISTING}" in out and out.count("would create") == 2
    assert len(scan_host(vgpu.fs).mdevs) == 1
    code, out, _ = run(capsys, vgpu, "mdev", "apply", "--config", config, "--node-labels", labels)
    assert code == 0 and "3 change(s), 0 problem(s)" in out
    assert sorted(m.type_id for m in scan_host(vgpu.fs).mdevs) == ["nvidia-233"] * 2


def test_apply_global_list_without_labels(
    capsys: pytest.CaptureFixture[str], vgpu: FakeHost, tmp_path: Path
) -> None:
    config = write(tmp_path / "mdev.yaml", {"mediatedDevicesTypes": ["nvidia-231"]})
    code, out, err = run(capsys, vgpu, "mdev", "apply", "--config", config)
    assert code == 0 and "nodeMediatedDeviceTypes entries do not apply" in err
    assert len(scan_host(vgpu.fs).mdevs) == 8
    code, out, _ = run(capsys, vgpu, "mdev", "apply", "--config", config, "--dry-run")
    assert "nothing to do" in out


def test_apply_keeps_allocated_and_reports(
    capsys: pytest.CaptureFixture[str], vgpu: FakeHost, tmp_path: Path, pod_resources: str
) -> None:
    config = write(tmp_path / "mdev.yaml", {"mediatedDevicesTypes": []})
    code, out, _ = run(
        capsys, vgpu, "mdev", "apply", "--config", config, "--pod-resources-socket", pod_resources
    )
    assert code == 0 and "no longer wanted but in use" in out
    assert EXISTING in scan_host(vgpu.fs).mdevs_by_uuid


@pytest.mark.parametrize(
    ("content", "text"),
    [
        ("mediatedDevicesTypes: nvidia-231\n", "must be a list"),
        ("a: [\n", "invalid YAML"),
        (
            "mediatedDevicesTypes: [nvidia-231]\nmediatedDevicesTypes: []\n",
            "line 2: duplicate key 'mediatedDevicesTypes' (first given at line 1)",
        ),
    ],
    ids=["schema", "yaml", "duplicate-key"],
)
def test_apply_bad_config(
    capsys: pytest.CaptureFixture[str], vgpu: FakeHost, tmp_path: Path, content: str, text: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    code, _, err = run(capsys, vgpu, "mdev", "apply", "--config", str(path))
    assert code == 2 and text in err and str(path) in err


@pytest.mark.parametrize(
    "content",
    ["a: [\n", "a: b: c\n", "a: 1\n\x00\n"],
    ids=["unclosed", "mapping-in-scalar", "control-character"],
)
def test_apply_reports_invalid_yaml_in_one_line_like_config_check(
    capsys: pytest.CaptureFixture[str], vgpu: FakeHost, tmp_path: Path, content: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    code, _, err = run(capsys, vgpu, "mdev", "apply", "--config", str(path))
    assert main(["config", "check", str(path)]) == 2
    assert (code, err) == (2, capsys.readouterr().err)
    assert err.startswith(f"error: {path}: invalid YAML: ") and err.count("\n") == 1


def test_apply_missing_config(
    capsys: pytest.CaptureFixture[str], vgpu: FakeHost, tmp_path: Path
) -> None:
    code, _, err = run(capsys, vgpu, "mdev", "apply", "--config", str(tmp_path / "none.yaml"))
    assert code == 2 and "cannot read the file" in err


@pytest.mark.parametrize("content", ["lots\n", None], ids=["garbage", "unreadable"])
def test_unknown_available_instances_is_an_error_not_zero(
    capsys: pytest.CaptureFixture[str], vgpu: FakeHost, tmp_path: Path, content: str | None
) -> None:
    instances = vgpu.device_dir(T4_CARD) / "mdev_supported_types/nvidia-233/available_instances"
    if content is None:
        instances.unlink()
    else:
        instances.write_text(content)
    code, out, err = run(capsys, vgpu, "mdev", "create", T4_CARD, "nvidia-233")
    assert (code, out) == (1, "") and "cannot tell whether nvidia-233" in err
    assert "available_instances is 0" not in err
    config = write(tmp_path / "mdev.yaml", {"mediatedDevicesTypes": ["nvidia-233"]})
    for dry_run in (["--dry-run"], []):
        code, out, err = run(capsys, vgpu, "mdev", "apply", "--config", config, *dry_run)
        assert code == 1, dry_run
        assert f"error: {T4_CARD}: no nvidia-233 mdevs created: " in err
        assert "mdev_supported_types/nvidia-233/available_instances" in err
