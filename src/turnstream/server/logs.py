"""Log formats: a line for people (the default) or one JSON object per line for machines.

The per-request line (`turnstream.requests`, written by `access.py`) carries its
fields in `record.fields`; the JSON format puts them at the top level of the object,
the text format appends them as `key=value`. Every other record renders as before.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Literal

__all__ = ["LOG_FORMATS", "REQUEST_LOGGER", "JSONFormatter", "LogFormat", "configure_logging"]

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")

REQUEST_LOGGER = "turnstream.requests"

TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"


class JSONFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, then the fields."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            body.update(fields)
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The people's format, with a request line's fields as `key=value`."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "fields", None)
        if not isinstance(fields, dict):
            return line
        shown = " ".join(f"{k}={_short(v)}" for k, v in fields.items() if v is not None)
        return f"{line} {shown}"


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return json.dumps(text) if " " in text else text


def create_formatter(log_format: LogFormat) -> logging.Formatter:
    return JSONFormatter() if log_format == "json" else TextFormatter()


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]  # generic only in typeshed
    """Writes to whatever `sys.stderr` is at the time of each record, not the one of
    its creation: a process that swaps stderr (a test runner, an embedding app)
    never leaves the root logger writing to a closed stream."""

    @property  # read-only: always the current stderr
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure_logging(level: str, log_format: LogFormat) -> None:
    """Configure the root logger: one stderr handler in the chosen format (replacing
    one an earlier call installed; other handlers are left alone)."""
    handler = _StderrHandler()
    handler.setFormatter(create_formatter(log_format))
    root = logging.getLogger()
    for old in list(root.handlers):
        if isinstance(old, _StderrHandler):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


def uvicorn_log_config(log_format: LogFormat) -> dict[str, Any] | None:
    """What `uvicorn.run(log_config=...)` gets: uvicorn's own set-up for people; for
    machines none, so uvicorn's loggers reach the root's JSON handler."""
    if log_format == "json":
        return None
    from uvicorn.config import LOGGING_CONFIG

    return LOGGING_CONFIG
