"""Structured logging for Lambda: one JSON object per line on stdout.

Every line has ``level``, ``message``, ``timestamp`` (UTC, ISO 8601, milliseconds) and
``logger``, then the keys appended for the invocation (``append_keys(request_id=...)``),
then the record's ``extra`` fields (``binding``, ``status``...), then ``exception`` when
there is one. Standard library only::

    log = logs.setup()
    logs.append_keys(request_id=context.aws_request_id)
    log.info("binding synced", extra={"binding": "orders-primary", "status": "changed"})

``setup()`` is idempotent: it configures the ``cachebridge`` logger once (one handler, no
propagation to the root logger the Lambda runtime configures, so no duplicate lines) and
only adjusts the level on later calls.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
import traceback
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import IO, Any

from .redact import redact

__all__ = [
    "LOGGER_NAME",
    "JsonFormatter",
    "setup",
    "append_keys",
    "remove_keys",
    "clear_keys",
    "current_keys",
]

LOGGER_NAME = "cachebridge"
DEFAULT_LEVEL = "INFO"
# The first of these that is set chooses the level when setup() is not given one.
LEVEL_ENV = ("CACHEBRIDGE_LOG_LEVEL", "AWS_LAMBDA_LOG_LEVEL")

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
_FIRST = ("level", "message", "timestamp", "logger")

_keys: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar("cachebridge_log_keys", default={})


def append_keys(**keys: Any) -> None:
    """Add keys to every following line (a value of ``None`` removes the key)."""
    merged = {**_keys.get(), **keys}
    _keys.set({k: v for k, v in merged.items() if v is not None})


def remove_keys(*names: str) -> None:
    _keys.set({k: v for k, v in _keys.get().items() if k not in names})


def clear_keys() -> None:
    _keys.set({})


def current_keys() -> dict[str, Any]:
    return dict(_keys.get())


def _timestamp(created: float) -> str:
    return datetime.fromtimestamp(created, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object (never more than one line), URL passwords redacted."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "level": record.levelname,
            "message": record.getMessage(),
            "timestamp": _timestamp(record.created),
            "logger": record.name,
        }
        for key, value in _keys.get().items():
            if key not in _FIRST:
                entry[key] = value
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and key not in _FIRST and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception_name"] = record.exc_info[0].__name__
            entry["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        # Passwords in URLs (redis://:secret@..., AWS_ENDPOINT_URL with user:pass@) never
        # reach the log, whichever field or traceback carries them.
        return redact(json.dumps(entry, default=str, ensure_ascii=False, separators=(",", ":")))


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stdout`` is at the time of the call (test capture swaps it)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        super().__init__(stream)
        self._fixed = stream

    @property  # type: ignore[override]
    def stream(self) -> IO[str]:
        return self._fixed if self._fixed is not None else sys.stdout

    @stream.setter
    def stream(self, value: IO[str] | None) -> None:
        self._fixed = value


def _level_from_env() -> str:
    for name in LEVEL_ENV:
        value = os.environ.get(name, "").strip().upper()
        if value:
            return value
    return DEFAULT_LEVEL


def setup(level: str | int | None = None, *, stream: IO[str] | None = None) -> logging.Logger:
    """Configure and return the ``cachebridge`` logger. Safe to call on every invocation.

    ``level`` defaults to ``CACHEBRIDGE_LOG_LEVEL``, then ``AWS_LAMBDA_LOG_LEVEL``, then
    INFO. ``stream`` defaults to the current ``sys.stdout``."""
    logger = logging.getLogger(LOGGER_NAME)
    handler = next((h for h in logger.handlers if isinstance(h, _StdoutHandler)), None)
    if handler is None:
        handler = _StdoutHandler(stream)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
    elif stream is not None:
        handler.stream = stream
    chosen = level if level is not None else _level_from_env()
    try:
        logger.setLevel(chosen.upper() if isinstance(chosen, str) else chosen)
    except ValueError:
        logger.setLevel(DEFAULT_LEVEL)
        logger.warning("unknown log level %r; using %s", chosen, DEFAULT_LEVEL)
    logger.propagate = False
    return logger
