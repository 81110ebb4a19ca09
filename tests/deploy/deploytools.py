"""Rendering helpers for the deployment tests: the Helm chart (with helm, or with the subset
renderer in gotemplate.py) and the kustomize variants (with kubectl, or by applying their
JSON 6902 patches here)."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml
from gotemplate import Renderer, parse

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CHART = DEPLOY / "helm" / "hostdev"
KUSTOMIZE = DEPLOY / "kustomize"
RELEASE = "hostdev"
NAMESPACE = "hostdev-system"

Manifest = dict[str, Any]


def load_yaml_docs(text: str) -> list[Manifest]:
    """Every non-empty YAML document of a multi-document text."""
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def merge_values(base: Any, override: Any) -> Any:
    """Helm's value coalescing: maps merge key by key, null deletes, anything else replaces."""
    if not isinstance(base, dict) or not isinstance(override, dict):
        return copy.deepcopy(override)
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_values(merged.get(key), value)
    return merged


def _chart_context(values: Manifest) -> Manifest:
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    return {
        "Values": merge_values(yaml.safe_load((CHART / "values.yaml").read_text()), values),
        "Release": {
            "Name": RELEASE,
            "Namespace": NAMESPACE,
            "Service": "Helm",
            "IsInstall": True,
            "IsUpgrade": False,
            "Revision": 1,
        },
        "Chart": {
            "Name": meta["name"],
            "Version": meta["version"],
            "AppVersion": meta["appVersion"],
        },
    }


def render_chart_subset(values: Manifest) -> dict[str, str]:
    """Render every template with the subset renderer: {template file name: text}."""
    files = sorted((CHART / "templates").iterdir())
    defines: dict[str, Any] = {}
    parsed = {}
    for path in files:
        nodes, found = parse(path.read_text())
        defines.update(found)
        parsed[path.name] = nodes
    renderer = Renderer(defines)
    context = _chart_context(values)
    return {
        name: renderer.render(nodes, context)
        for name, nodes in parsed.items()
        if not name.startswith("_")
    }


def chart_manifests_subset(values: Manifest) -> list[Manifest]:
    """The chart's objects as rendered by the subset renderer (NOTES.txt left out)."""
    rendered = render_chart_subset(values)
    return [
        doc
        for name, text in sorted(rendered.items())
        if name.endswith(".yaml")
        for doc in load_yaml_docs(text)
    ]


def helm_binary() -> str | None:
    """The helm executable on PATH, if any."""
    return shutil.which("helm")


def chart_manifests_helm(values: Manifest, tmp_path: Path) -> list[Manifest]:
    """The chart's objects as rendered by `helm template`."""
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    command = [
        str(helm_binary()),
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "-f",
        str(values_file),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"helm template failed: {result.stderr.strip()}")
    return load_yaml_docs(result.stdout)


def kubectl_binary() -> str | None:
    """The kubectl executable on PATH, if any (it embeds kustomize)."""
    return shutil.which("kubectl")


def kustomize_with_kubectl(variant: str) -> list[Manifest]:
    """`kubectl kustomize deploy/kustomize/VARIANT`."""
    command = [str(kubectl_binary()), "kustomize", str(KUSTOMIZE / variant)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize failed: {result.stderr.strip()}")
    return load_yaml_docs(result.stdout)


def kustomize_here(variant: str) -> list[Manifest]:
    """Build a variant without kubectl: resources, namespace, labels and JSON 6902 patches.

    Only the kustomization features the variants use are implemented; anything else is an
    error, so the fallback cannot silently drift from what kustomize would produce.
    """
    root = KUSTOMIZE / variant
    spec = yaml.safe_load((root / "kustomization.yaml").read_text())
    known = {"apiVersion", "kind", "namespace", "labels", "resources", "patches", "images"}
    if set(spec) - known:
        raise ValueError(f"{variant}: unsupported kustomization fields {set(spec) - known}")
    objects: list[Manifest] = []
    for resource in spec.get("resources", []):
        path = root / resource
        if path.is_dir():
            objects += kustomize_here(str(path.relative_to(KUSTOMIZE)))
        else:
            objects += load_yaml_docs(path.read_text())
    for obj in objects:
        _apply_common(obj, spec)
    for patch in spec.get("patches", []):
        operations = yaml.safe_load((root / patch["path"]).read_text())
        target = patch["target"]
        matches = [
            o
            for o in objects
            if o["kind"] == target["kind"] and o["metadata"]["name"] == target["name"]
        ]
        if len(matches) != 1:
            raise ValueError(f"{variant}: patch {patch['path']} matches {len(matches)} objects")
        apply_json_patch(matches[0], operations)
    return objects


def _apply_common(obj: Manifest, spec: Manifest) -> None:
    """kustomize's namespace, labels (no selectors) and images transformers."""
    if "namespace" in spec and obj["kind"] not in {
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
    }:
        obj["metadata"]["namespace"] = spec["namespace"]
    for subject in obj.get("subjects", []):
        if "namespace" in spec:
            subject["namespace"] = spec["namespace"]
    for entry in spec.get("labels", []):
        obj["metadata"].setdefault("labels", {}).update(entry["pairs"])
    pod = obj.get("spec", {}).get("template", {}).get("spec", {})
    for image in spec.get("images", []):
        for container in pod.get("containers", []):
            if container["image"] == image["name"]:
                container["image"] = f"{image['newName']}:{image['newTag']}"


def _pointer(document: Any, path: str) -> tuple[Any, str]:
    """The parent container and last key of a JSON pointer."""
    parts = [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]
    parent = document
    for part in parts[:-1]:
        parent = parent[int(part)] if isinstance(parent, list) else parent[part]
    return parent, parts[-1]


def apply_json_patch(document: Manifest, operations: list[Manifest]) -> None:
    """RFC 6902 add, replace, remove and test (what the overlays use), in place."""
    for operation in operations:
        parent, key = _pointer(document, operation["path"])
        op = operation["op"]
        if isinstance(parent, list):
            index = len(parent) if key == "-" else int(key)
            if op == "add":
                parent.insert(index, copy.deepcopy(operation["value"]))
                continue
            if index >= len(parent):
                raise KeyError(operation["path"])
            key_or_index: Any = index
        else:
            if op != "add" and key not in parent:
                raise KeyError(operation["path"])
            key_or_index = key
        if op in {"add", "replace"}:
            parent[key_or_index] = copy.deepcopy(operation["value"])
        elif op == "remove":
            del parent[key_or_index]
        elif op == "test":
            if parent[key_or_index] != operation["value"]:
                raise ValueError(f"test failed at {operation['path']}")
        else:
            raise ValueError(f"unsupported patch op {op!r}")


def find(objects: list[Manifest], kind: str) -> list[Manifest]:
    """Objects of one kind."""
    return [o for o in objects if o.get("kind") == kind]


def only(objects: list[Manifest], kind: str) -> Manifest:
    """The single object of a kind."""
    found = find(objects, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]
