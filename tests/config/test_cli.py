"""`hostdev config check` and `hostdev render kubevirt`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hostdev.cli.main import main
from hostdev.testing.examples import build_example

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_config_check_summarises_a_valid_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "resources:\n- {name: example.com/gpu, selectors: [{device: '10de:1eb8'},"
        " {class: '0302'}], exclude: ['0000:65:00.0']}\n"
        "permittedHostDevices:\n  pciHostDevices:\n"
        "  - {pciVendorSelector: '8086:6F54', resourceName: intel.com/qat}\n"
    )
    assert main(["config", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: valid, 1 resource(s)" in out
    assert "example.com/gpu" in out and "device=10de:1eb8 | class=0302" in out
    assert "skipped: permittedHostDevices.pciHostDevices[0]: skipping intel.com/qat" in out


def test_config_check_rejects_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("resources:\n- {name: example.com/gpu, selectors: [{colour: red}]}\n")
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {path}: resources[0].selectors[0].colour: unknown key\n"


def test_shipped_example_config_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(EXAMPLES / "gpu-node.yaml")]) == 0
    assert "nvidia.com/TU104GL_Tesla_T4" in capsys.readouterr().out


@pytest.mark.parametrize(
    "config,expected",
    [
        (
            None,
            {
                "pciHostDevices": [
                    {
                        "pciVendorSelector": "10DE:1AEB",
                        "resourceName": "devices.kubevirt.io/10de_1aeb",
                        "externalResourceProvider": True,
                    },
                    {
                        "pciVendorSelector": "10DE:1EB8",
                        "resourceName": "devices.kubevirt.io/10de_1eb8",
                        "externalResourceProvider": True,
                    },
                    {
                        "pciVendorSelector": "10DE:2184",
                        "resourceName": "devices.kubevirt.io/10de_2184",
                        "externalResourceProvider": True,
                    },
                ]
            },
        ),
        (
            "resources:\n- {name: example.com/gpu, selectors: [{vendor: '10de', class: '03'}]}\n"
            "- {name: nvidia.com/GRID_T4-2Q, selectors: [{mdevName: GRID T4-2Q}]}\n",
            {
                "pciHostDevices": [
                    {
                        "pciVendorSelector": "10DE:2184",
                        "resourceName": "example.com/gpu",
                        "externalResourceProvider": True,
                    },
                    {
                        "pciVendorSelector": "10DE:1EB8",
                        "resourceName": "example.com/gpu",
                        "externalResourceProvider": True,
                    },
                ],
                "mediatedDevices": [
                    {
                        "mdevNameSelector": "GRID T4-2Q",
                        "resourceName": "nvidia.com/GRID_T4-2Q",
                        "externalResourceProvider": True,
                    }
                ],
            },
        ),
    ],
    ids=["default", "config-with-mdev"],
)
def test_render_kubevirt(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    config: str | None,
    expected: dict[str, object],
) -> None:
    build_example("kitchen-sink" if config else "gpu-node", tmp_path / "host")
    args = ["render", "kubevirt", "--host-root", str(tmp_path / "host")]
    if config:
        (tmp_path / "c.yaml").write_text(config)
        args += ["--config", str(tmp_path / "c.yaml")]
    assert main(args) == 0
    assert yaml.safe_load(capsys.readouterr().out) == {"permittedHostDevices": expected}
