"""Rendering of node capacity in the `kubectl describe node` format, and name validation."""

from __future__ import annotations

import pytest

from hostdev.kubelet import devicemanager
from hostdev.kubelet.api import deviceplugin_pb2 as dp
from hostdev.kubelet.resourcename import extended_resource_name_problem


def resource(name: str, healthy: int, unhealthy: int) -> devicemanager.ResourceState:
    health = ["Healthy"] * healthy + ["Unhealthy"] * unhealthy
    devices = {f"d{i}": dp.Device(ID=f"d{i}", health=h) for i, h in enumerate(health)}
    return devicemanager.ResourceState(name, devices)


def test_describe_node_blocks() -> None:
    resources = {
        "devices.kubevirt.io/10de_1eb8": resource("devices.kubevirt.io/10de_1eb8", 2, 0),
        "nvidia.com/TU104GL_Tesla_T4": resource("nvidia.com/TU104GL_Tesla_T4", 1, 1),
    }
    pod = devicemanager.Pod(
        "p",
        "default",
        "uid",
        [devicemanager.Container("c", {}, {"nvidia.com/TU104GL_Tesla_T4": ["d0"]})],
    )
    assert devicemanager.describe_node(resources, [pod]) == (
        "Name:               sim-node\n"
        "Capacity:\n"
        "  devices.kubevirt.io/10de_1eb8:  2\n"
        "  nvidia.com/TU104GL_Tesla_T4:    2\n"
        "Allocatable:\n"
        "  devices.kubevirt.io/10de_1eb8:  2\n"
        "  nvidia.com/TU104GL_Tesla_T4:    1\n"
        "Allocated resources:\n"
        "  (Total limits may be over 100 percent, i.e., overcommitted.)\n"
        "  Resource                       Requests  Limits\n"
        "  --------                       --------  ------\n"
        "  devices.kubevirt.io/10de_1eb8  0         0\n"
        "  nvidia.com/TU104GL_Tesla_T4    1         1\n"
    )


NAMES = [
    ("ok", "example.com/ok", None),
    ("mixed-case-name", "example.com/Foo_Bar.1-x", None),
    ("63-chars", "example.com/" + "a" * 63, None),
    ("no-slash", "foo", "domain/name"),
    ("native", "kubernetes.io/foo", "reserved"),
    ("native-subdomain", "node.kubernetes.io/foo", "reserved"),
    ("quota-prefix", "requests.example.com/foo", "requests."),
    ("empty-name", "example.com/", "must not be empty"),
    ("two-slashes", "example.com/a/b", "exactly one"),
    ("upper-domain", "EXAMPLE.com/x", "DNS subdomain"),
    ("leading-dash", "example.com/-x", "alphanumeric"),
    ("64-chars", "example.com/" + "a" * 64, "at most 63"),
    ("long-domain", "a" * 250 + ".com/x", "DNS subdomain"),
]


@pytest.mark.parametrize(("name", "problem"), [n[1:] for n in NAMES], ids=[n[0] for n in NAMES])
def test_extended_resource_names(name: str, problem: str | None) -> None:
    found = extended_resource_name_problem(name)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found
