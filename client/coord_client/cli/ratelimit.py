"""``coordctl ratelimit ...``: check and reset rate limits from the shell.

coordctl ratelimit check user:42 --rate 10/s            # exit 0 allowed, 1 denied
coordctl ratelimit check login:alice --policy login --dry-run
coordctl ratelimit reset login:alice
"""

from __future__ import annotations

import argparse
from typing import Any

from ..client import Client
from ..ratelimit import ALGORITHMS, Decision
from ._common import Exit, Output, positive_int, time_text


def register(subparsers: Any) -> None:
    """Add the ``ratelimit`` group and its commands."""
    group = subparsers.add_parser("ratelimit", help="check and reset rate limits", description=__doc__)
    commands = group.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    commands.required = True

    check = commands.add_parser("check", help="decide (and consume) one key (exit 1 when denied)")
    check.add_argument("key")
    source = check.add_mutually_exclusive_group(required=True)
    source.add_argument("--rate", help="LIMIT/PERIOD: 10/s, 100/m, 5/15m, 1000/d")
    source.add_argument("--policy", help="a named policy of the server's policy file")
    check.add_argument("--burst", type=positive_int, default=0, help="token bucket capacity (default LIMIT)")
    check.add_argument("--algorithm", choices=sorted(ALGORITHMS), default="token_bucket")
    check.add_argument("--fail-open", action="store_true", help="allow when Redis is unavailable")
    check.add_argument("--cost", type=positive_int, default=1, help="units to consume (default 1)")
    check.add_argument("--dry-run", action="store_true", help="decide without consuming")
    check.add_argument("--scope", default="", help="the scope the key is checked under")
    check.set_defaults(handler=_check)

    reset = commands.add_parser("reset", help="clear a key's state (exit 1 if it had none)")
    reset.add_argument("key")
    reset.add_argument("--scope", default="", help="the scope the key is checked under")
    reset.set_defaults(handler=_reset)


def _json(decision: Decision) -> dict[str, Any]:
    return {
        "allowed": decision.allowed,
        "limit": decision.limit,
        "remaining": decision.remaining,
        "reset_after": decision.reset_after,
        "retry_after": decision.retry_after,
        "backend_unavailable": decision.backend_unavailable,
        "decide_time": time_text(decision.decide_time),
        "headers": decision.headers,
        "statuses": [vars(s) for s in decision.statuses],
    }


def _check(client: Client, args: argparse.Namespace, out: Output) -> int:
    decision = client.ratelimit.limit(
        args.key,
        args.rate,
        burst=args.burst,
        algorithm=args.algorithm,
        policy=args.policy,
        on_backend_error="open" if args.fail_open else "closed",
        cost=args.cost,
        dry_run=args.dry_run,
        scope=args.scope,
    )
    verdict = "allowed" if decision.allowed else f"denied, retry after {decision.retry_after:g}s"
    text = (
        f"{verdict} (remaining {decision.remaining} of {decision.limit}, reset in {decision.reset_after:g}s)"
    )
    if decision.backend_unavailable:
        text = f"{'allowed' if decision.allowed else 'denied'}: Redis unavailable, decided by the fail mode"
    out.result(_json(decision), text)
    return Exit.OK if decision.allowed else Exit.NOT_MET


def _reset(client: Client, args: argparse.Namespace, out: Output) -> int:
    existed = client.ratelimit.reset(args.key, scope=args.scope)
    out.result({"key": args.key, "existed": existed}, f"reset {args.key}" if existed else None)
    if not existed:
        out.note(f"{args.key}: had no state")
    return Exit.OK if existed else Exit.NOT_MET
