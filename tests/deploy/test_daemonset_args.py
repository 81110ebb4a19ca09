"""The DaemonSet's command line is one `hostdev serve` accepts, and it reads the mounts."""

from __future__ import annotations

import pytest
from checks import container
from deploytools import chart_manifests_subset, kustomize_here, only
from test_helm_chart import SCENARIOS

from hostdev.cli.main import build_parser

# Flags that come with the live-node work (metrics, /healthz, logs, rescans).
LIVE_FLAGS = {"--metrics-address", "--log-format", "--rescan-interval"}


def _command_lines() -> list[tuple[str, list[str]]]:
    found = [
        (f"kustomize-{v}", container(only(kustomize_here(v), "DaemonSet"))["args"])
        for v in ("discovery-only", "full")
    ]
    for name, values, _ in SCENARIOS:
        daemonset = only(chart_manifests_subset(values), "DaemonSet")
        found.append((f"helm-{name}", container(daemonset)["args"]))
    return found


COMMAND_LINES = _command_lines()


@pytest.mark.parametrize("args", [c[1] for c in COMMAND_LINES], ids=[c[0] for c in COMMAND_LINES])
def test_serve_accepts_the_daemonset_command_line(args: list[str]) -> None:
    namespace, unknown = build_parser().parse_known_args(args)
    assert namespace.command == "serve"
    unknown_flags = {arg.split("=", 1)[0] for arg in unknown}
    assert unknown_flags <= LIVE_FLAGS, f"hostdev serve does not know {sorted(unknown_flags)}"
    if unknown_flags:
        pytest.skip(f"{sorted(unknown_flags)} arrive with the live-node flags")
    assert namespace.sysfs_root == "/host/sys"
    assert namespace.dev_root == "/host/dev"
    assert namespace.plugin_dir == "/var/lib/kubelet/device-plugins"
