"""The node-feature-discovery rules: well-formed NodeFeatureRule objects NFD will accept."""

from __future__ import annotations

import re

import pytest
from deploytools import DEPLOY, Manifest, load_yaml_docs

RULES_FILE = DEPLOY / "nfd" / "hostdev-features.yaml"
# Attributes of NFD's pci.device feature (NFD source/pci) and the operators NFD knows.
PCI_ATTRIBUTES = {
    "class",
    "vendor",
    "device",
    "subsystem_vendor",
    "subsystem_device",
    "sriov_totalvfs",
    "iommu_group/type",
}
OPERATORS = {
    "In",
    "NotIn",
    "InRegexp",
    "Exists",
    "DoesNotExist",
    "Gt",
    "Lt",
    "GtLt",
    "IsTrue",
    "IsFalse",
}
WITHOUT_VALUE = {"Exists", "DoesNotExist", "IsTrue", "IsFalse"}
HEX4 = re.compile(r"^[0-9a-f]{4}$")


def rules() -> list[Manifest]:
    """The rules of the single NodeFeatureRule in the file."""
    (document,) = load_yaml_docs(RULES_FILE.read_text())
    assert document["apiVersion"] == "nfd.k8s-sigs.io/v1alpha1"
    assert document["kind"] == "NodeFeatureRule"
    found: list[Manifest] = document["spec"]["rules"]
    return found


def test_labels_are_in_a_namespace_nfd_allows_by_default() -> None:
    labels = [label for rule in rules() for label in rule["labels"]]
    assert "feature.node.kubernetes.io/hostdev-gpu-vfio" in labels
    assert "feature.node.kubernetes.io/hostdev-iommu" in labels
    assert "feature.node.kubernetes.io/hostdev-sriov-nic" in labels
    for rule in rules():
        for label, value in rule["labels"].items():
            assert label.split("/")[0].endswith("feature.node.kubernetes.io"), label
            assert isinstance(value, str), label
    assert len({r["name"] for r in rules()}) == len(rules())


def _expressions() -> list[tuple[str, str, str, Manifest]]:
    return [
        (rule["name"], match["feature"], attribute, expression)
        for rule in rules()
        for match in rule["matchFeatures"]
        for attribute, expression in match["matchExpressions"].items()
    ]


@pytest.mark.parametrize(
    ("feature", "attribute", "expression"),
    [e[1:] for e in _expressions()],
    ids=[f"{e[0]}:{e[2]}" for e in _expressions()],
)
def test_expression_uses_known_features_attributes_and_operators(
    feature: str, attribute: str, expression: Manifest
) -> None:
    assert feature in {"pci.device", "kernel.loadedmodule"}
    if feature == "pci.device":
        assert attribute in PCI_ATTRIBUTES
    assert expression["op"] in OPERATORS
    if expression["op"] in WITHOUT_VALUE:
        assert "value" not in expression
        return
    values = expression["value"]
    assert values and all(isinstance(v, str) for v in values)
    if attribute in {"vendor", "class", "device"}:
        assert all(HEX4.match(v) for v in values), values
