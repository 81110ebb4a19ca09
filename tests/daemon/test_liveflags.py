"""`hostdev serve` live flags: durations, the metrics address, bad values."""

from __future__ import annotations

import pytest

from hostdev.cli.liveflags import live_options
from hostdev.cli.main import build_parser, main


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("60", 60.0),
        ("30s", 30.0),
        ("1.5m", 90.0),
        ("500ms", 0.5),
        ("1h", 3600.0),
        ("0", 0.0),
    ],
    ids=["bare", "s", "m", "ms", "h", "off"],
)
def test_durations(text: str, seconds: float) -> None:
    args = build_parser().parse_args(["serve", "--rescan-interval", text])
    assert args.rescan_interval == seconds
    assert live_options(args).rescan_interval == (seconds or None)


def test_defaults() -> None:
    options = live_options(build_parser().parse_args(["serve"]))
    assert (options.rescan_interval, options.metrics_address, options.kernel_uevents) == (
        60.0, None, True)  # fmt: skip


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "--rescan-interval", "-1"],
        ["serve", "--rescan-interval", "soon"],
        ["serve", "--log-format", "xml"],
    ],
    ids=["negative", "words", "log-format"],
)
def test_bad_flags_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "invalid" in capsys.readouterr().err


def test_bad_metrics_address(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--metrics-address", "nowhere"]) == 2
    assert "invalid --metrics-address 'nowhere'" in capsys.readouterr().err
