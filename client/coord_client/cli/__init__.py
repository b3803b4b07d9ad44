"""``coordctl``: Coord from the command line, one command group per service.

    coordctl [--target HOST:PORT] [--timeout S] [--json] [--tls-ca F] [--tls-cert F --tls-key F]
             [--token-file F|-] GROUP COMMAND ...

A service adds its group by appending its module to :data:`GROUPS`; the module exposes
``register(subparsers)``, which adds one parser per command with ``set_defaults(handler=...)``.
A handler takes ``(client, args, output)`` and returns an exit code from :class:`~._common.Exit`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from .._base import DEFAULT_TARGET, DEFAULT_TIMEOUT
from ..client import Client
from ..errors import CoordError
from . import auth, cache, collections, election, events, lock, ratelimit, session, stats
from ._common import (
    EPILOG,
    Exit,
    Output,
    add_security_arguments,
    duration,
    exit_code,
    security_arguments,
)

# One module per service; each has register(subparsers).
GROUPS: list[ModuleType] = [cache, collections, lock, election, ratelimit, session, events, auth, stats]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coordctl",
        description="Command-line client for Coord (cache, locks, rate limits, sessions, events).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--target",
        default=os.environ.get("COORD_TARGET") or DEFAULT_TARGET,
        metavar="HOST:PORT",
        help=f"the Coord server (env COORD_TARGET; default {DEFAULT_TARGET})",
    )
    parser.add_argument(
        "--timeout",
        type=duration,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help=f"deadline of each call, retries included: 2.5, 500ms, 10s (default {DEFAULT_TIMEOUT:g}s)",
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    add_security_arguments(parser)
    groups = parser.add_subparsers(title="command groups", dest="group", metavar="GROUP")
    groups.required = True
    for module in GROUPS:
        module.register(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run coordctl; returns the exit code (argparse itself exits with 2 on usage errors)."""
    args = build_parser().parse_args(argv)
    out = Output(args.json)
    if hasattr(args, "offline_handler"):  # a command that needs no server (coordctl auth new-key)
        offline: int = args.offline_handler(args, out)
        return offline
    try:
        with Client(args.target, timeout=args.timeout, **security_arguments(args)) as client:
            code: int = args.handler(client, args, out)
            return code
    except CoordError as error:
        out.error(error)
        return exit_code(error)
    except ValueError as error:  # arguments the client refused before sending
        out.usage_error(str(error))
        return Exit.BAD_INPUT
    except BrokenPipeError:  # the reader went away (coordctl ... | head): not our failure
        sys.stderr.close()
        return Exit.OK


__all__ = ["GROUPS", "build_parser", "main"]
