"""``coordctl stats``: what Coord keeps in Redis, and how the server is set up.

coordctl stats                      # tables: Redis, keys per tenant and service, the server
coordctl stats --json               # the same as one JSON object
coordctl stats --scan-budget 5s     # give SCAN longer on a large Redis (at most 30s)
coordctl stats --settings           # also list every effective setting (secrets removed)

Needs the ``admin`` permission when the server has authentication on.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from ..admin import Stats
from ..client import Client
from ._common import Exit, Output, duration


def register(subparsers: Any) -> None:
    """Add the ``stats`` command (a group of its own, with no subcommands)."""
    stats = subparsers.add_parser(
        "stats",
        help="Redis version, mode, memory and eviction policy; keys per tenant and service; the server",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # Also accepted after the command; SUPPRESS keeps a global --json from being reset to False.
    stats.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    stats.add_argument(
        "--scan-budget", type=duration, default=None, metavar="S", help="longest SCAN (default: 1s)"
    )
    stats.add_argument(
        "--sample", type=int, default=0, metavar="N", help="keys measured per tenant and service (200)"
    )
    stats.add_argument("--settings", action="store_true", help="also list the effective settings")
    stats.set_defaults(handler=_stats)


def _stats(client: Client, args: argparse.Namespace, out: Output) -> int:
    if getattr(args, "json", False):
        out.json = True
    stats = client.admin.get_stats(scan_budget=args.scan_budget, sample_size=args.sample)
    out.result(stats.to_json(), None if out.json else render(stats, settings=args.settings))
    return Exit.OK


def render(stats: Stats, *, settings: bool = False) -> str:
    """The human-readable tables."""
    redis = stats.redis
    limit = size(redis.max_memory) if redis.max_memory else "no limit"
    lines = [
        f"Redis {redis.version} ({redis.mode}), maxmemory-policy {redis.eviction_policy}, "
        f"used {size(redis.used_memory)} of {limit}",
        "",
        *table(
            ("node", "version", "used", "peak", "rss", "maxmemory", "policy", "frag"),
            [
                (
                    n.address,
                    n.version,
                    size(n.used_memory),
                    size(n.used_memory_peak),
                    size(n.used_memory_rss),
                    size(n.max_memory) if n.max_memory else "-",
                    n.eviction_policy,
                    f"{n.fragmentation_ratio:.2f}",
                )
                for n in redis.nodes
            ],
        ),
        "",
    ]
    scan = stats.scan
    state = "complete" if scan.complete else "partial: the scan budget ran out, counts are lower bounds"
    lines.append(f"Keys ({scan.scanned_keys} scanned on {scan.nodes} node(s), {state})")
    if stats.keys:
        rows = [
            (k.tenant, k.service, str(k.keys), f"~{size(k.estimated_bytes)}", str(k.sampled_keys))
            for k in stats.keys
        ]
        lines += table(("tenant", "service", "keys", "memory", "sampled"), rows)
    else:
        lines.append("(no Coord keys)")
    server = stats.server
    lines += ["", f"Coord {server.version}, up {uptime(server.uptime)}"]
    if settings:
        lines += table(("setting", "value"), list(server.settings))
    return "\n".join(lines)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell; text left-aligned."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    return [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]


def size(count: int) -> str:
    """Bytes as people read them: 512B, 1.5KiB, 3.2MiB, 1.0GiB."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{count}B"  # pragma: no cover - the loop always returns


def uptime(seconds: float) -> str:
    """``1d2h3m4s`` (whole seconds)."""
    left = int(seconds)
    parts: list[str] = []
    for unit, span in (("d", 86400), ("h", 3600), ("m", 60)):
        count, left = divmod(left, span)
        if count or parts:
            parts.append(f"{count}{unit}")
    parts.append(f"{left}s")
    return "".join(parts)
