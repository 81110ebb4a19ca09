"""The command table: every command maps to the module that registers it, and only it loads."""

import argparse
import importlib
import subprocess
import sys

import pytest

from hostdev.cli.main import COMMANDS, build_parser, command_of, terminal_columns


def _registered(module_name: str) -> set[str]:
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers()
    importlib.import_module(module_name).register(subparsers)
    return set(subparsers.choices)


def test_table_matches_what_modules_register() -> None:
    by_module: dict[str, set[str]] = {}
    for command, module in COMMANDS.items():
        by_module.setdefault(module, set()).add(command)
    for module, commands in by_module.items():
        assert _registered(module) == commands, module


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["list", "-o", "json"], "list"),
        (["-v", "serve"], "serve"),
        (["--version"], None),
        ([], None),
    ],
    ids=["plain", "after-global-option", "only-options", "empty"],
)
def test_command_of(argv: list[str], command: str | None) -> None:
    assert command_of(argv) == command


def test_full_parser_for_help() -> None:
    assert set(build_parser().parse_args(["doctor"]).__dict__) >= {"command", "handler"}


def test_list_does_not_load_grpc() -> None:
    script = (
        "import sys\n"
        "from hostdev.cli import main as m\n"
        "m.main(['list', '--sysfs-root', '/nonexistent'])\n"
        "print('grpc' in sys.modules, 'pydantic' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.parametrize(
    ("columns", "expected"),
    [("120", 120), ("", 80), ("0", 80), ("wide", 80)],
    ids=["set", "unset", "zero", "garbage"],
)
def test_terminal_columns(monkeypatch: pytest.MonkeyPatch, columns: str, expected: int) -> None:
    """$COLUMNS when it is a width; else the terminal's (none under pytest), else 80."""
    monkeypatch.setenv("COLUMNS", columns)
    assert terminal_columns() == expected


def test_help_wraps_at_the_terminal_width(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    with pytest.raises(SystemExit):
        build_parser("doctor").parse_args(["doctor", "--help"])
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines if not line.lstrip().startswith("-")) <= 58
