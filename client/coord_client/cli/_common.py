"""What every ``coordctl`` command group shares: exit codes, output in text or JSON, argument parsers."""

from __future__ import annotations

import argparse
import base64
import enum
import json
import os
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any, TextIO

import grpc

from .._convert import parse_duration
from .._tls import TLSConfig
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


def add_security_arguments(parser: argparse.ArgumentParser) -> None:
    """The global TLS and credential flags. Each has an environment variable; no flag takes a
    secret itself: the token is read from a file (or stdin), so it stays out of ``ps`` and history."""
    env = os.environ.get
    group = parser.add_argument_group("TLS and credentials")
    group.add_argument(
        "--tls",
        action="store_true",
        default=env("COORD_TLS", "").lower() in ("1", "true", "yes", "on"),
        help="use TLS, checking the server against the system's CA roots (env COORD_TLS=1); implied "
        "by --tls-ca and --tls-cert",
    )
    group.add_argument(
        "--tls-ca",
        default=env("COORD_TLS_CA") or None,
        metavar="FILE",
        help="PEM CA bundle that signed the server's certificate (env COORD_TLS_CA)",
    )
    group.add_argument(
        "--tls-cert",
        default=env("COORD_TLS_CERT") or None,
        metavar="FILE",
        help="PEM client certificate, for servers that require one (mTLS; env COORD_TLS_CERT)",
    )
    group.add_argument(
        "--tls-key",
        default=env("COORD_TLS_KEY") or None,
        metavar="FILE",
        help="PEM private key of --tls-cert (env COORD_TLS_KEY)",
    )
    group.add_argument(
        "--token-file",
        default=env("COORD_TOKEN_FILE") or None,
        metavar="FILE",
        help="file holding the API key or JWT sent as a bearer token; - reads it from the first line "
        "of stdin (env COORD_TOKEN_FILE)",
    )


def read_token_file(path: str) -> str:
    """The token in the file ``path`` (``-``: the first line of stdin), without surrounding
    whitespace; ValueError names the file, never its content."""
    if path == "-":
        token = token_arg("-")
    else:
        try:
            with open(path, encoding="utf-8") as handle:
                token = handle.read().strip()
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
            raise ValueError(f"--token-file: cannot read {path}: {reason or error}") from None
    if not token:
        raise ValueError(f"--token-file: {'stdin' if path == '-' else path} holds no token")
    return token


def security_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """``tls=`` and ``token=`` for :class:`Client`, from the flags of :func:`add_security_arguments`."""
    tls = None
    if args.tls or args.tls_ca or args.tls_cert or args.tls_key:
        tls = TLSConfig(ca=args.tls_ca, cert=args.tls_cert, key=args.tls_key)
    token = read_token_file(args.token_file) if args.token_file else None
    return {"tls": tls, "token": token}
