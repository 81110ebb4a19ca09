"""OpenShift renderings: the Butane config, the MachineConfig it compiles to, the IOMMU one.

Butane's openshift variant takes the cluster's version with ``.0`` (4.20, 4.20.3 → 4.20.0) and
compiles to a MachineConfig whose Ignition spec version depends on it (Butane's own table):
4.8–4.13 → 3.2.0, 4.14–4.18 → 3.4.0, 4.19–4.21 → 3.5.0, 4.22 → 3.6.0. File contents become
RFC 2397 ``data:`` URLs (percent-encoded, uncompressed) and the mode 0644 becomes 420.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Sequence
from typing import Any

import yaml

from hostdev.errors import BadInputError
from hostdev.render.files import HostFile

ROLE_LABEL = "machineconfiguration.openshift.io/role"
MC_API_VERSION = "machineconfiguration.openshift.io/v1"
_IGNITION_BY_MINOR = {
    **dict.fromkeys(range(8, 14), "3.2.0"),
    **dict.fromkeys(range(14, 19), "3.4.0"),
    **dict.fromkeys(range(19, 22), "3.5.0"),
    22: "3.6.0",
}
_VERSION = re.compile(r"^4\.([0-9]+)(?:\.[0-9]+)?$")  # a cluster's z-stream: 4.20.3
_ROLE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_URL_SAFE = "-_.!~*'()"
IOMMU_ARGS = {"intel": "intel_iommu=on", "amd": "amd_iommu=on"}


def openshift_minor(version: str) -> int:
    """The minor of "4.20", "4.20.0" or "4.20.3"; BadInputError for versions Butane lacks."""
    match = _VERSION.match(version.strip())
    if match is None or int(match[1]) not in _IGNITION_BY_MINOR:
        known = f"4.{min(_IGNITION_BY_MINOR)}–4.{max(_IGNITION_BY_MINOR)}"
        raise BadInputError(
            f"unsupported OpenShift version {version!r}: expected {known} (X.Y or X.Y.Z)"
        )
    return int(match[1])


def ignition_version(version: str) -> str:
    """The Ignition spec version Butane targets for this OpenShift version."""
    return _IGNITION_BY_MINOR[openshift_minor(version)]


def check_role(role: str) -> str:
    """A machine config pool role must be a DNS-label-like name ("worker", "gpu-worker")."""
    if not _ROLE.fullmatch(role) or len(role) > 63:  # match's $ lets "worker\n" through
        raise BadInputError(f"invalid role {role!r}: use lower-case letters, digits and '-'")
    return role


def data_url(contents: str) -> str:
    """An RFC 2397 data URL of the text, percent-encoded like Butane's small files."""
    return "data:," + urllib.parse.quote(contents, safe=_URL_SAFE)


def decode_data_url(url: str) -> str:
    """The text of a percent-encoded `data:,` URL (the inverse of data_url)."""
    if not url.startswith("data:,"):
        raise ValueError(f"not a plain data URL: {url[:20]!r}")
    return urllib.parse.unquote(url[len("data:,") :])


def butane(files: Sequence[HostFile], role: str, version: str) -> str:
    """The Butane config (100-<role>-vfiopci.bu) as the OpenShift documentation writes it."""
    minor = openshift_minor(version)
    lines = [
        "variant: openshift",
        f"version: 4.{minor}.0",
        "metadata:",
        f"  name: 100-{check_role(role)}-vfiopci",
        "  labels:",
        f"    {ROLE_LABEL}: {role}",
        "storage:",
        "  files:",
    ]
    for file in files:
        lines += [
            f"  - path: {file.path}",
            f"    mode: 0{file.mode:o}",
            "    overwrite: true",
            "    contents:",
            *_inline(file.contents),
        ]
    return "\n".join(lines) + "\n"


def _inline(contents: str) -> list[str]:
    if "\n" not in contents:
        return [f"      inline: {contents}"]
    body = contents.removesuffix("\n").split("\n")
    return ["      inline: |", *(f"        {line}" for line in body)]


def _metadata(name: str, role: str) -> dict[str, Any]:
    return {"labels": {ROLE_LABEL: check_role(role)}, "name": name}


def machineconfig(files: Sequence[HostFile], role: str, version: str) -> dict[str, Any]:
    """The MachineConfig that `butane 100-<role>-vfiopci.bu` produces."""
    entries = [
        {
            "contents": {"compression": "", "source": data_url(f.contents)},
            "mode": f.mode,
            "overwrite": True,
            "path": f.path,
        }
        for f in files
    ]
    config = {"ignition": {"version": ignition_version(version)}, "storage": {"files": entries}}
    return {
        "apiVersion": MC_API_VERSION,
        "kind": "MachineConfig",
        "metadata": _metadata(f"100-{role}-vfiopci", role),
        "spec": {"config": config},
    }


def kernel_args_machineconfig(
    cpu_vendor: str, role: str, version: str, *, iommu_pt: bool = False
) -> dict[str, Any]:
    """The 100-<role>-iommu MachineConfig: intel_iommu=on or amd_iommu=on (and iommu=pt)."""
    arguments = [IOMMU_ARGS[cpu_vendor], *(["iommu=pt"] if iommu_pt else [])]
    return {
        "apiVersion": MC_API_VERSION,
        "kind": "MachineConfig",
        "metadata": _metadata(f"100-{role}-iommu", role),
        "spec": {
            "config": {"ignition": {"version": ignition_version(version)}},
            "kernelArguments": arguments,
        },
    }


def to_yaml(document: dict[str, Any]) -> str:
    """YAML with the keys in the order given (Kubernetes manifests read top-down)."""
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False)


def cpu_vendor_from_cpuinfo(text: str | None) -> str | None:
    """ "intel" or "amd" from /proc/cpuinfo's vendor_id, or None when it says neither."""
    for line in (text or "").splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "vendor_id":
            vendor = value.strip()
            if vendor == "GenuineIntel":
                return "intel"
            if vendor in ("AuthenticAMD", "HygonGenuine"):
                return "amd"
            return None
    return None
