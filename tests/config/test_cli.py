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


def test_config_check_says_what_it_leaves_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "hco.yaml"
    path.write_text(
        "apiVersion: hco.kubevirt.io/v1beta1\nkind: HyperConverged\nmetadata: {name: hco}\n"
        "spec:\n  permittedHostDevices:\n    pciHostDevices:\n"
        "    - {pciDeviceSelector: '10DE:1EB8', resourceName: nvidia.com/t4,"
        " externalResourceProvider: true, disabled: true}\n"
        "    usbHostDevices:\n    - {resourceName: kubevirt.io/storage, selectors: []}\n"
    )
    assert main(["config", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: valid, 0 resource(s)" in out
    assert (
        "skipped: spec.permittedHostDevices.pciHostDevices[0]: skipping nvidia.com/t4: disabled"
        in out
    )
    assert "skipped: spec.permittedHostDevices.usbHostDevices: USB devices are not served" in out


@pytest.mark.parametrize(
    "target,key", [("kubevirt", "pciVendorSelector"), ("hyperconverged", "pciDeviceSelector")]
)
def test_render_for_each_custom_resource(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str, key: str
) -> None:
    build_example("gpu-node", tmp_path / "host")
    args = ["render", "kubevirt", "--for", target, "--host-root", str(tmp_path / "host")]
    assert main(args) == 0
    (first, *_) = yaml.safe_load(capsys.readouterr().out)["permittedHostDevices"]["pciHostDevices"]
    assert first == {
        key: "10DE:1AEB",
        "resourceName": "devices.kubevirt.io/10de_1aeb",
        "externalResourceProvider": True,
    }


SPLIT_T4S = (  # two resources sharing one vendor:device
    "resources:\n- {name: example.com/t4-a, selectors: [{address: '0000:65:00.0'}]}\n"
    "- {name: example.com/t4-b, selectors: [{address: '0000:b3:00.0'}]}\n"
)


@pytest.mark.parametrize("target,code", [("kubevirt", 0), ("hyperconverged", 2)])
def test_render_refuses_what_the_hyperconverged_cr_cannot_hold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str, code: int
) -> None:
    build_example("gpu-node", tmp_path / "host")
    (tmp_path / "c.yaml").write_text(SPLIT_T4S)
    args = ["render", "kubevirt", "--for", target, "--config", str(tmp_path / "c.yaml")]
    assert main([*args, "--host-root", str(tmp_path / "host")]) == code
    if code:
        err = capsys.readouterr().err
        assert "lists each pciDeviceSelector once, but 10DE:1EB8 is served as" in err
        assert "example.com/t4-a, example.com/t4-b" in err and err.count("\n") == 1
