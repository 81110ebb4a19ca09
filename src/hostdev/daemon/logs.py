"""Log set-up for the daemon: one line per event that matters, as text or as JSON.

Text: ``2026-11-22T10:00:00.123Z INFO hostdev.daemon.live: message key=value ...``.
JSON (``--log-format json``): one object per line with time, level, logger, message and every
structured field passed through ``extra=``, ready for Loki or Elasticsearch. Per-RPC lines are
DEBUG, so the default level (INFO) never logs per call.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any, TextIO

FORMATS = ("text", "json")
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys() | {"message", "asctime"}
)


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields a caller attached with extra=."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


def _timestamp(record: logging.LogRecord) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{stamp}.{int(record.msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, extra fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        """Render a record as one JSON line."""
        document: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in fields_of(record).items():
            document.setdefault(key, value)
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """Time, level, logger and message, then the extra fields as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        """Render a record as one text line (plus a traceback when there is one)."""
        line = f"{_timestamp(record)} {record.levelname} {record.name}: {record.getMessage()}"
        extra = fields_of(record)
        if extra:
            line += " " + " ".join(f"{k}={_text(v)}" for k, v in extra.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _text(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if (not text or " " in text or '"' in text) else text


def add_log_flags(parser: argparse.ArgumentParser) -> None:
    """--log-format text|json and --log-level for long-running commands."""
    parser.add_argument(
        "--log-format", choices=FORMATS, default="text", help="log line format (default text)"
    )
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="lowest level logged (default info; debug adds one line per RPC)",
    )


def configure_logging(fmt: str = "text", level: str = "info", stream: TextIO | None = None) -> None:
    """Replace the root logger's handlers with one that writes the chosen format."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("grpc").setLevel(logging.WARNING)
