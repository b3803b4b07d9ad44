"""Coord's log output: plain text or one JSON object per line, and no flood during an outage.

``COORD_LOG_FORMAT=text`` (the default) writes ``time level logger: message``; ``json`` writes one
object per line with ``time`` (UTC, ISO 8601, milliseconds), ``level``, ``logger``, ``message`` and,
where the record knows them, the RPC's ``method``, ``code``, ``duration_ms``, ``tenant``, ``reason``
and ``trace_id`` (when tracing is on, that of the span current where the line is written:
tracing/), and ``exception`` (the traceback) for a failure. Collectors (Loki, Elasticsearch,
Cloud Logging) read it without a parsing rule.

During a Redis outage every call fails with the same error. The first such line is written; the
others of the same reason are counted and folded into the next one written after ``FOLD_SECONDS``
("... and 2,311 more like it in 10s"), so an outage costs a line every few seconds, not one per call.
The health monitor logs the state changes themselves (NOT_SERVING, then serving again).
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

FOLD_SECONDS = 10.0

# Attributes a record may carry (``extra=``) that the JSON form writes under these names.
RPC_FIELDS = ("method", "code", "duration_ms", "tenant", "reason", "trace_id", "peer")
# A record with this attribute is one of a flood (its value says which): see OutageFilter.
FOLD_KEY = "coord_fold"

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


# Where the JSON form reads the current trace id from, once tracing is on in this process
# (tracing/spans.py); None until then, so that a process without tracing never asks.
_trace_id: Callable[[], str | None] | None = None


def trace_ids(source: Callable[[], str | None] | None) -> None:
    """Have the JSON form write ``trace_id`` (from ``source``, the current span's) on records that
    do not carry one; None stops it."""
    global _trace_id
    _trace_id = source


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in a message or traceback are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        out: dict[str, Any] = {
            "time": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in RPC_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        if _trace_id is not None and "trace_id" not in out:
            # Formatted in the logging call's own thread and task: the current span is the RPC's.
            trace_id = _trace_id()
            if trace_id is not None:
                out["trace_id"] = trace_id
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        return json.dumps(out, ensure_ascii=False, default=str)


class OutageFilter(logging.Filter):
    """Lets the first record of each fold key through, then one per ``window`` seconds, each telling
    how many it stood for; records without the key pass untouched."""

    def __init__(self, window: float = FOLD_SECONDS) -> None:
        super().__init__()
        self.window = window
        self._lock = threading.Lock()  # handlers may be called from gRPC's threads too
        self._state: dict[str, tuple[float, int]] = {}  # key -> (when one was last let through, folded)

    def filter(self, record: logging.LogRecord) -> bool:
        key = getattr(record, FOLD_KEY, None)
        if key is None:
            return True
        now = time.monotonic()
        with self._lock:
            last, folded = self._state.get(key, (-float("inf"), 0))
            if now - last < self.window:
                self._state[key] = (last, folded + 1)
                return False
            self._state[key] = (now, 0)
        if folded:
            seconds = min(now - last, 10 * self.window)
            record.msg = f"{record.msg} (and {folded:,} more like it in the last {seconds:.0f}s)"
        return True

    def folded(self, key: str) -> int:
        """How many records of ``key`` were held back since the last one let through (for tests)."""
        with self._lock:
            return self._state.get(key, (0.0, 0))[1]


def configure(level: str, fmt: str = "text", *, stream: Any = None) -> logging.Handler:
    """Install Coord's handler on the root logger: the format, and the outage folding."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(_TEXT_FORMAT))
    handler.addFilter(OutageFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
