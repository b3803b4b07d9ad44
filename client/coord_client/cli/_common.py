"""What every ``coordctl`` command group shares: exit codes, output in text or JSON, argument parsers."""

from __future__ import annotations

import argparse
import base64
import enum
import json
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any, TextIO

import grpc

from .._convert import parse_duration
from ..client import Client
from ..errors import CoordError


class Exit(enum.IntEnum):
    """Process exit codes, the same for every command (listed in ``coordctl --help``)."""

    OK = 0
    NOT_MET = 1  # a miss, a version mismatch, an existing key: the call worked, the answer is "no"
    BAD_INPUT = 2  # usage errors and requests the server refused as invalid
    UNAVAILABLE = 3  # the server or its Redis could not be reached in time
    ERROR = 4  # anything else


EPILOG = """\
exit codes:
  0  success
  1  not found or condition not met (a miss, a version mismatch, an existing key)
  2  bad input: usage errors, and INVALID_ARGUMENT, OUT_OF_RANGE, FAILED_PRECONDITION or
     RESOURCE_EXHAUSTED from the server
  3  unavailable: the server or its Redis did not answer (UNAVAILABLE, DEADLINE_EXCEEDED)
  4  any other error

Errors print one line to stderr. With --json, results print as one JSON object on stdout and errors
as one JSON object on stderr; byte values appear as {"value": ..., "encoding": "utf-8"} when they are
UTF-8 text and {"value": <base64>, "encoding": "base64"} otherwise.
"""

_BAD_INPUT = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
_UNAVAILABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}

# A command handler: (client, parsed arguments, output) -> exit code.
Handler = Callable[[Client, argparse.Namespace, "Output"], int]


def exit_code(error: CoordError) -> Exit:
    if error.code in _BAD_INPUT:
        return Exit.BAD_INPUT
    if error.code in _UNAVAILABLE:
        return Exit.UNAVAILABLE
    return Exit.ERROR


def duration(text: str) -> float:
    """An argparse type: a duration longer than zero in Coord's one syntax (``250ms``, ``10s``,
    ``1h30m``, ``1d`` or bare seconds), for values where zero means nothing (a deadline)."""
    return _parse(text, allow_zero=False)


def duration_or_default(text: str) -> float | None:
    """An argparse type for a duration field the server reads as unset when zero (a cache TTL, a
    session timeout: the server's default): ``0`` is allowed and gives None, the field left unset."""
    return _parse(text, allow_zero=True) or None


def _parse(text: str, *, allow_zero: bool) -> float:
    try:
        return parse_duration(text, allow_zero=allow_zero)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def positive_int(text: str) -> int:
    """An argparse type for versions: an integer >= 1."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 or more")
    return number


def value_json(value: bytes) -> dict[str, str]:
    """Bytes for JSON output: UTF-8 text when it decodes, base64 otherwise (``encoding`` says which)."""
    try:
        return {"value": value.decode("utf-8"), "encoding": "utf-8"}
    except UnicodeDecodeError:
        return {"value": base64.b64encode(value).decode("ascii"), "encoding": "base64"}


def value_text(value: bytes) -> str:
    """Bytes on one line of text output: the text itself, or ``base64:...`` when it is not UTF-8."""
    encoded = value_json(value)
    return encoded["value"] if encoded["encoding"] == "utf-8" else "base64:" + encoded["value"]


def time_text(moment: datetime | None) -> str | None:
    """An expiry as ISO 8601 in UTC with millisecond precision (``2026-01-02T03:04:05.678Z``)."""
    if moment is None:
        return None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Output:
    """Where results and problems go: plain text for people, or one JSON object per command."""

    def __init__(self, as_json: bool, stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
        self.json = as_json
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr

    def result(self, data: dict[str, Any], text: str | None) -> None:
        """Print a result: ``data`` as JSON, or ``text`` (skipped when None) as a line."""
        if self.json:
            print(json.dumps(data, ensure_ascii=False), file=self.stdout)
        elif text is not None:
            print(text, file=self.stdout)

    def note(self, text: str) -> None:
        """A human-only remark on stderr (a miss, a condition not met); silent in JSON mode."""
        if not self.json:
            print(text, file=self.stderr)

    def error(self, error: CoordError) -> None:
        line = " ".join(error.message.split())
        if self.json:
            payload = {
                "code": error.code.name,
                "reason": error.reason,
                "message": line,
                "metadata": error.metadata,
                "field_violations": [{"field": f, "description": d} for f, d in error.field_violations],
                "retry_after": error.retry_after,
            }
            print(json.dumps({"error": payload}, ensure_ascii=False), file=self.stderr)
        else:
            label = error.code.name + (f" ({error.reason})" if error.reason else "")
            print(f"coordctl: {label}: {line}", file=self.stderr)

    def usage_error(self, message: str) -> None:
        line = " ".join(message.split())
        if self.json:
            print(json.dumps({"error": {"code": "USAGE", "message": line}}), file=self.stderr)
        else:
            print(f"coordctl: {line}", file=self.stderr)


def token_arg(text: str) -> str:
    """A secret token argument; ``-`` reads it from stdin instead (so it stays out of ``ps``)."""
    return sys.stdin.readline().strip() if text == "-" else text
