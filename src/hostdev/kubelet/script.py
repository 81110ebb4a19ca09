"""The kubelet-sim script language: a YAML list of steps played against the simulator.

    - wait-registered: devices.kubevirt.io/10de_1eb8      # or {resource: R, timeout: 30}
    - wait-devices: {resource: devices.kubevirt.io/10de_1eb8, healthy: 2}
    - print-capacity
    - create-pod:
        name: vm-a
        namespace: default                              # optional
        containers: {compute: {devices.kubevirt.io/10de_1eb8: 1}}
        expect-rejected: false                          # optional
    - list-pods
    - delete-pod: vm-a                                  # or {name: vm-a, namespace: ns}
    - restart
    - sleep: 2

Steps run in order; a rejected pod is reported and makes the run fail unless the step says
expect-rejected: true.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from hostdev.config.yamlfile import read_yaml_file
from hostdev.errors import ConfigError, HostdevError
from hostdev.kubelet.devicemanager import Pod
from hostdev.kubelet.simulator import AllocationError, KubeletSimulator

DEFAULT_STEP_TIMEOUT_S = 60.0


class ScriptError(HostdevError):
    """A script step could not complete (a wait timed out)."""


@dataclass(frozen=True)
class Step:
    """One parsed script step."""

    action: str
    resource: str = ""
    name: str = ""
    namespace: str = "default"
    containers: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    count: int = 0
    seconds: float = 0.0
    expect_rejected: bool = False


def load_script(path: Path) -> list[Step]:
    """Parse a script file; any problem is a ConfigError naming the step and field."""
    data = read_yaml_file(path)
    if not isinstance(data, list):
        raise ConfigError(str(path), "", "a script is a YAML list of steps")
    return [_parse_step(str(path), i, item) for i, item in enumerate(data)]


def _parse_step(file: str, index: int, item: Any) -> Step:
    where = f"steps[{index}]"
    if isinstance(item, str):
        action, value = item, None
    elif isinstance(item, dict) and len(item) == 1:
        ((action, value),) = item.items()
    else:
        raise ConfigError(file, where, "a step is an action name or a one-key mapping")
    parser = _PARSERS.get(str(action))
    if parser is None:
        raise ConfigError(file, where, f"unknown action {action!r}; known: {', '.join(_PARSERS)}")
    try:
        return parser(value)
    except (TypeError, ValueError, KeyError) as err:
        raise ConfigError(file, f"{where}.{action}", str(err).strip("'\"")) from err


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string")
    return value


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{what} must be a number >= 0")
    return float(value)


def _resource_step(action: str) -> Callable[[Any], Step]:
    def parse(value: Any) -> Step:
        spec = value if isinstance(value, dict) else {"resource": value}
        timeout = _number(spec.get("timeout", DEFAULT_STEP_TIMEOUT_S), "timeout")
        healthy = int(_number(spec.get("healthy", 0), "healthy"))
        return Step(
            action, resource=_text(spec.get("resource"), "resource"), count=healthy, seconds=timeout
        )

    return parse


def _create_pod(value: Any) -> Step:
    if not isinstance(value, dict):
        raise ValueError("needs name and containers")
    containers = value.get("containers")
    if not isinstance(containers, dict) or not containers:
        raise ValueError("containers must map container names to {resource: count}")
    for name, requests in containers.items():
        if not isinstance(requests, dict):
            raise ValueError(f"container {name!r} must map resource names to counts")
        for count in requests.values():
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ValueError(f"container {name!r}: counts must be whole numbers >= 0")
    return Step(
        "create-pod",
        name=_text(value.get("name"), "name"),
        namespace=_text(value.get("namespace", "default"), "namespace"),
        containers=containers,
        expect_rejected=bool(value.get("expect-rejected", False)),
    )


def _delete_pod(value: Any) -> Step:
    spec = value if isinstance(value, dict) else {"name": value}
    namespace = _text(spec.get("namespace", "default"), "namespace")
    return Step("delete-pod", name=_text(spec.get("name"), "name"), namespace=namespace)


def _no_argument(action: str) -> Callable[[Any], Step]:
    def parse(value: Any) -> Step:
        if value is not None:
            raise ValueError("takes no argument")
        return Step(action)

    return parse


_PARSERS: dict[str, Callable[[Any], Step]] = {
    "wait-registered": _resource_step("wait-registered"),
    "wait-devices": _resource_step("wait-devices"),
    "create-pod": _create_pod,
    "delete-pod": _delete_pod,
    "restart": _no_argument("restart"),
    "print-capacity": _no_argument("print-capacity"),
    "list-pods": _no_argument("list-pods"),
    "sleep": lambda value: Step("sleep", seconds=_number(value, "sleep")),
}


async def run_script(sim: KubeletSimulator, steps: list[Step], out: TextIO) -> bool:
    """Play steps in order; False when a pod was rejected unexpectedly (or admitted against
    expectation). A wait that times out raises ScriptError."""
    ok = True
    for index, step in enumerate(steps):
        try:
            ok = await _run_step(sim, step, out) and ok
        except TimeoutError:
            raise ScriptError(
                f"steps[{index}] ({step.action} {step.resource}): timed out after {step.seconds:g}s"
            ) from None
        out.flush()
    return ok


async def _run_step(sim: KubeletSimulator, step: Step, out: TextIO) -> bool:
    if step.action == "wait-registered":
        await sim.wait_registered(step.resource, timeout=step.seconds)
        out.write(f"registered: {step.resource}\n")
    elif step.action == "wait-devices":
        await sim.wait_devices(step.resource, step.count, timeout=step.seconds)
        out.write(f"{step.resource}: {step.count} healthy\n")
    elif step.action == "create-pod":
        return await _create(sim, step, out)
    elif step.action == "delete-pod":
        await sim.delete_pod(step.name, step.namespace)
        out.write(f"pod {step.namespace}/{step.name} deleted\n")
    elif step.action == "restart":
        await sim.restart()
        out.write("kubelet restarted: plugin sockets removed, waiting for re-registration\n")
    elif step.action == "print-capacity":
        out.write(sim.describe_node())
    elif step.action == "list-pods":
        out.write(render_pods(sim.pods))
    elif step.action == "sleep":
        await asyncio.sleep(step.seconds)  # the user asked to pause the script
    return True


async def _create(sim: KubeletSimulator, step: Step, out: TextIO) -> bool:
    try:
        pod = await sim.create_pod(step.name, step.containers, step.namespace)
    except AllocationError as err:
        out.write(f"pod {step.namespace}/{step.name} rejected: {err}\n")
        return step.expect_rejected
    out.write(render_admitted(pod))
    return not step.expect_rejected


def render_admitted(pod: Pod) -> str:
    """A readable account of what each container got from Allocate."""
    lines = [f"pod {pod.namespace}/{pod.name} admitted"]
    for container in pod.containers:
        for resource, ids in container.devices.items():
            lines.append(f"  container {container.name}: {resource} -> {', '.join(ids)}")
            lines += [f"    {line}" for line in _response_lines(container.responses[resource])]
        if container.start_error:
            lines.append(f"  container {container.name} failed to start: {container.start_error}")
    return "\n".join(lines) + "\n"


def _response_lines(response: Any) -> list[str]:
    lines = [f"env {k}={v}" for k, v in sorted(response.envs.items())]
    lines += [
        f"device {d.host_path} -> {d.container_path} ({d.permissions})" for d in response.devices
    ]
    lines += [
        f"mount {m.host_path} -> {m.container_path}{' (ro)' if m.read_only else ''}"
        for m in response.mounts
    ]
    lines += [f"annotation {k}={v}" for k, v in sorted(response.annotations.items())]
    lines += [f"cdi {c.name}" for c in response.cdi_devices]
    return lines


def render_pods(pods: list[Pod]) -> str:
    """Pods and their devices, one line per container and resource."""
    if not pods:
        return "no pods\n"
    lines = []
    for pod in pods:
        for container in pod.containers:
            for resource, ids in container.devices.items():
                lines.append(
                    f"{pod.namespace}/{pod.name} {container.name} {resource} {','.join(ids)}"
                )
            if not container.devices:
                lines.append(f"{pod.namespace}/{pod.name} {container.name} -")
    return "\n".join(lines) + "\n"
