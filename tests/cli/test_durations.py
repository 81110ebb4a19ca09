"""Durations on the command line: one parser for every flag that takes a time."""

from __future__ import annotations

import argparse

import pytest

from hostdev.cli.common import parse_duration
from hostdev.cli.main import main


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("60", 60.0), ("2.5", 2.5), ("500ms", 0.5), ("30s", 30.0), ("1.5m", 90.0), ("1h", 3600.0)],
    ids=["plain", "fraction", "ms", "s", "m", "h"],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text",
    ["nan", "inf", "-1", "1e3", "", "5 min", "\u0663s", "1.s"],
    ids=["nan", "inf", "negative", "exponent", "empty", "spelled", "non-ascii", "bare-point"],
)
def test_what_is_no_duration(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    "argv",
    [
        ("kubelet-sim", "--plugin-dir", "/nonexistent", "--duration", "nan"),
        ("kubelet-sim", "--plugin-dir", "/nonexistent", "--duration", "-1"),
        ("inspect", "--socket", "/nonexistent.sock", "--timeout", "inf"),
        ("sriov", "set", "enp4s0f0", "2", "--timeout", "nan"),
    ],
    ids=["kubelet-sim-duration", "kubelet-sim-negative", "inspect-timeout", "sriov-set-timeout"],
)
def test_a_time_that_is_no_duration_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(list(argv))
    assert exit_.value.code == 2
    assert "invalid duration" in capsys.readouterr().err
