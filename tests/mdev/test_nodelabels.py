"""Node labels from a file and from the API server (the HTTP call replaced by a fake)."""

import json
import socket
from collections.abc import Mapping
from pathlib import Path

import pytest

from hostdev.errors import ConfigError, HostdevError
from hostdev.nodelabels import (
    InCluster,
    fetch_node_labels,
    https_get,
    load_labels_file,
    node_labels,
)

NODE = {
    "kind": "Node",
    "metadata": {
        "name": "node-11",
        "labels": {"kubernetes.io/hostname": "node-11.redhat.com", "gpu": "t4"},
    },
}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("gpu: t4\nzone: a\n", {"gpu": "t4", "zone": "a"}),
        ('{"gpu": "t4", "count": 2, "empty": null}', {"gpu": "t4", "count": "2", "empty": ""}),
        (json.dumps(NODE), NODE["metadata"]["labels"]),  # type: ignore[index]
        ("", {}),
        ("gpu: true\nmig: false\n", {"gpu": "true", "mig": "false"}),
        ('{"gpu": true}', {"gpu": "true"}),
    ],
    ids=["yaml", "json", "node-object", "empty", "yaml-booleans", "json-boolean"],
)
def test_labels_file(tmp_path: Path, content: str, expected: dict[str, str]) -> None:
    path = tmp_path / "labels"
    path.write_text(content)
    assert load_labels_file(str(path)) == expected


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("- a\n", "must be a map"),
        ("a: {b: c}\n", "label values must be strings"),
        ("a: [\n", "invalid YAML: line 2"),
    ],
    ids=["list", "nested", "syntax"],
)
def test_labels_file_errors(tmp_path: Path, content: str, reason: str) -> None:
    path = tmp_path / "labels"
    path.write_text(content)
    with pytest.raises(ConfigError, match=reason):
        load_labels_file(str(path))


def test_labels_file_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_labels_file(str(tmp_path / "none"))


@pytest.fixture
def account(tmp_path: Path) -> Path:
    (tmp_path / "token").write_text("secret-token\n")
    (tmp_path / "ca.crt").write_text("not really a certificate")
    return tmp_path


ENV = {
    "KUBERNETES_SERVICE_HOST": "10.96.0.1",
    "KUBERNETES_SERVICE_PORT": "6443",
    "NODE_NAME": "node-11",
}


def test_in_cluster_settings(account: Path) -> None:
    cluster = InCluster.from_env(ENV, account)
    assert cluster is not None
    assert cluster.url == "https://10.96.0.1:6443/api/v1/nodes/node-11"
    six = InCluster.from_env({"KUBERNETES_SERVICE_HOST": "fd00::1", "NODE_NAME": "n"}, account)
    assert six is not None and six.url == "https://[fd00::1]:443/api/v1/nodes/n"
    assert InCluster.from_env({"NODE_NAME": "n"}, account) is None
    assert InCluster.from_env({"KUBERNETES_SERVICE_HOST": "h"}, account) is None


def test_fetch_sends_the_token_and_reads_labels(account: Path) -> None:
    calls: list[tuple[str, Mapping[str, str], str]] = []

    def fake_get(url: str, headers: Mapping[str, str], ca: str, timeout: float) -> bytes:
        calls.append((url, headers, ca))
        return json.dumps(NODE).encode()

    labels = node_labels(None, ENV, fake_get, account)
    assert labels == {"kubernetes.io/hostname": "node-11.redhat.com", "gpu": "t4"}
    ((url, headers, ca),) = calls
    assert url.endswith("/api/v1/nodes/node-11") and ca == str(account / "ca.crt")
    assert headers["Authorization"] == "Bearer secret-token"


def test_fetch_errors(account: Path, tmp_path: Path) -> None:
    cluster = InCluster("10.96.0.1", "443", "node-11", account)
    with pytest.raises(HostdevError, match="is not JSON"):
        fetch_node_labels(cluster, lambda *a: b"<html>")
    missing = InCluster("10.96.0.1", "443", "node-11", tmp_path / "nowhere")
    with pytest.raises(HostdevError, match="service account token"):
        fetch_node_labels(missing, lambda *a: b"{}")
    assert fetch_node_labels(cluster, lambda *a: b'{"metadata": {}}') == {}


def test_outside_a_cluster_there_are_no_labels(account: Path) -> None:
    assert node_labels(None, {}, None, account) is None


def test_https_get_bad_ca(account: Path) -> None:
    with pytest.raises(HostdevError, match="cannot load the cluster CA"):
        https_get("https://127.0.0.1:1/", {}, str(account / "ca.crt"), 1.0)


def test_https_get_unreachable(tmp_path: Path) -> None:
    import ssl

    ca = ssl.get_default_verify_paths().cafile
    if ca is None:
        pytest.skip("no system CA bundle to load")
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(HostdevError, match=f"GET https://127.0.0.1:{port}/"):
        https_get(f"https://127.0.0.1:{port}/", {}, ca, 1.0)
