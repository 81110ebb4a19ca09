"""Log formats: JSON lines with structured fields, text with key=value extras."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from hostdev.daemon.logs import configure_logging


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_json_lines(restore_root: None) -> None:
    out = io.StringIO()
    configure_logging("json", "info", out)
    log = logging.getLogger("hostdev.test")
    log.info("device %s is unhealthy", "0000:65:00.0", extra={"event": "health", "n": 2})
    log.debug("per RPC")  # below the default level
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    lines = out.getvalue().splitlines()
    first = json.loads(lines[0])
    assert first["level"] == "info" and first["logger"] == "hostdev.test"
    assert first["message"] == "device 0000:65:00.0 is unhealthy"
    assert (first["event"], first["n"]) == ("health", 2)
    assert first["time"].endswith("Z")
    second = json.loads(lines[1])
    assert second["level"] == "error" and "ValueError: boom" in second["exception"]
    assert len(lines) == 2


def test_text_lines(restore_root: None) -> None:
    out = io.StringIO()
    configure_logging("text", "debug", out)
    logging.getLogger("hostdev.x").info("applied", extra={"file": "/etc/a b.yaml", "k": ""})
    line = out.getvalue().strip()
    assert line.endswith('INFO hostdev.x: applied file="/etc/a b.yaml" k=""')
