"""This node's Kubernetes labels: from a YAML/JSON file, or from the API server in a cluster.

In a pod, the service account's token and CA sit under
/var/run/secrets/kubernetes.io/serviceaccount and KUBERNETES_SERVICE_HOST/PORT name the
API server; `GET /api/v1/nodes/$NODE_NAME` returns the Node whose metadata.labels we want
(the pod's service account needs `get` on nodes). The HTTP call is injectable for tests.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from hostdev.config.yamlfile import read_yaml_file
from hostdev.errors import ConfigError, HostdevError

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# (url, headers, CA file, timeout) -> response body
HttpGet = Callable[[str, Mapping[str, str], str, float], bytes]


def load_labels_file(path: str) -> dict[str, str]:
    """Labels from a YAML or JSON map file (label: value)."""
    data = read_yaml_file(path)
    if isinstance(data, Mapping) and isinstance(data.get("metadata"), Mapping):
        data = data["metadata"].get("labels", {})  # a whole Node object works too
    return _as_labels(data, path)


def _as_labels(data: object, where: str) -> dict[str, str]:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(where, "labels", "must be a map of label: value")
    labels: dict[str, str] = {}
    for key, value in data.items():
        if not isinstance(key, str) or isinstance(value, Mapping | list):
            raise ConfigError(where, str(key), "label values must be strings")
        labels[key] = _label_value(value)
    return labels


def _label_value(value: object) -> str:
    """A label value as the API spells it: an unquoted YAML `true` is the label "true"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


@dataclass(frozen=True)
class InCluster:
    """Where the in-cluster API credentials and this node's name come from."""

    host: str
    port: str
    node_name: str
    account_dir: Path = SERVICE_ACCOUNT_DIR

    @classmethod
    def from_env(
        cls, env: Mapping[str, str], account_dir: Path = SERVICE_ACCOUNT_DIR
    ) -> InCluster | None:
        """The in-cluster settings, or None when not running in a pod with NODE_NAME."""
        host, node = env.get("KUBERNETES_SERVICE_HOST"), env.get("NODE_NAME")
        if not host or not node:
            return None
        return cls(host, env.get("KUBERNETES_SERVICE_PORT", "443"), node, account_dir)

    @property
    def url(self) -> str:
        """GET /api/v1/nodes/<name> on the API server (IPv6 hosts get brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}/api/v1/nodes/{self.node_name}"


def fetch_node_labels(
    cluster: InCluster, http_get: HttpGet | None = None, timeout: float = 10.0
) -> dict[str, str]:
    """This node's labels from the API server, with the service account's token and CA."""
    try:
        token = (cluster.account_dir / "token").read_text().strip()
    except OSError as err:
        raise HostdevError(f"cannot read the service account token: {err}") from err
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    body = (http_get or https_get)(
        cluster.url, headers, str(cluster.account_dir / "ca.crt"), timeout
    )
    try:
        node = json.loads(body)
    except ValueError as err:
        raise HostdevError(
            f"the API server's answer for node {cluster.node_name} is not JSON"
        ) from err
    labels = node.get("metadata", {}).get("labels", {}) if isinstance(node, dict) else None
    return _as_labels(labels, cluster.url)


def https_get(url: str, headers: Mapping[str, str], ca_file: str, timeout: float) -> bytes:
    """GET over TLS verified against ca_file; errors become one HostdevError line."""
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as err:
        raise HostdevError(f"cannot load the cluster CA {ca_file}: {err}") from err
    request = urllib.request.Request(url, headers=dict(headers))
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            body: bytes = response.read()
            return body
    except urllib.error.HTTPError as err:
        raise HostdevError(
            f"GET {url}: HTTP {err.code} {err.reason} (does the service account may get nodes?)"
        ) from err
    except (urllib.error.URLError, OSError) as err:
        raise HostdevError(f"GET {url}: {err}") from err


def node_labels(
    labels_file: str | None,
    env: Mapping[str, str],
    http_get: HttpGet | None = None,
    account_dir: Path = SERVICE_ACCOUNT_DIR,
) -> dict[str, str] | None:
    """Labels from the file when given, else from the API in a cluster, else None."""
    if labels_file:
        return load_labels_file(labels_file)
    cluster = InCluster.from_env(env, account_dir)
    return fetch_node_labels(cluster, http_get) if cluster else None
