"""``coordctl cache ...``: every CacheService call from the shell.

coordctl cache set greeting hello --ttl 10m
coordctl cache get greeting                  # prints: hello
coordctl --json cache mget a b c
coordctl cache set user:7 '{...}' --tag user:7 --tag users
coordctl cache invalidate-tags users         # every entry tagged "users" is now a miss
coordctl cache invalidate-prefix user:7:     # every key under user:7: is now a miss
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..cache import Entry, SetResult
from ..client import Client
from ._common import Exit, Output, duration_or_default, positive_int, time_text, value_json, value_text


def register(subparsers: Any) -> None:
    """Add the ``cache`` group and its commands."""
    group = subparsers.add_parser("cache", help="read and write cache entries", description=__doc__)
    commands = group.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    commands.required = True

    get = commands.add_parser("get", help="print a value (exit 1 on a miss)")
    get.add_argument("key")
    get.set_defaults(handler=_get)

    mget = commands.add_parser("mget", help="print KEY<TAB>VALUE per hit (exit 1 if any key missed)")
    mget.add_argument("keys", nargs="+", metavar="KEY")
    mget.set_defaults(handler=_mget)

    put = commands.add_parser("set", help="write a value (exit 1 if its condition did not hold)")
    put.add_argument("key")
    put.add_argument("value", nargs="?", help="the value, as UTF-8 text (or use --stdin)")
    put.add_argument("--stdin", action="store_true", help="read the value's bytes from stdin")
    # A TTL of zero means the server's default, as an unset one does (cache.proto).
    ttl_help = "time to live: 500ms, 10s, 5m, 1h30m, 1d (0 or omitted: the server's default)"
    put.add_argument("--ttl", type=duration_or_default, help=ttl_help)
    condition = put.add_mutually_exclusive_group()
    condition.add_argument("--if-absent", action="store_true", help="only if the key does not exist")
    condition.add_argument("--if-present", action="store_true", help="only if the key exists")
    condition.add_argument("--if-version", type=positive_int, metavar="N", help="only if its version is N")
    put.add_argument(
        "--tag",
        action="append",
        default=[],
        dest="tags",
        metavar="TAG",
        help="label the entry for invalidate-tags (repeat for several)",
    )
    put.set_defaults(handler=_set)

    tags = commands.add_parser(
        "invalidate-tags", help="make every entry written with any of these tags a miss"
    )
    tags.add_argument("tags", nargs="+", metavar="TAG")
    tags.set_defaults(handler=_invalidate_tags)

    prefix = commands.add_parser(
        "invalidate-prefix", help="make every entry whose key starts with PREFIX (ending with ':') a miss"
    )
    prefix.add_argument("prefix", metavar="PREFIX")
    prefix.set_defaults(handler=_invalidate_prefix)

    delete = commands.add_parser("delete", help="remove keys (exit 1 if any was not deleted)")
    delete.add_argument("keys", nargs="+", metavar="KEY")
    delete.add_argument("--if-version", type=positive_int, metavar="N", help="only if its version is N")
    delete.set_defaults(handler=_delete)

    incr = commands.add_parser("incr", help="add DELTA (default 1, may be negative) and print the result")
    incr.add_argument("key")
    incr.add_argument("delta", nargs="?", type=int, default=1)
    incr.add_argument("--ttl", type=duration_or_default, help="time to live if the counter is created")
    incr.set_defaults(handler=_incr)

    touch = commands.add_parser("touch", help="set a new TTL on an existing key (exit 1 if missing)")
    touch.add_argument("key")
    touch.add_argument("ttl", type=duration_or_default, help=ttl_help)
    touch.set_defaults(handler=_touch)


def _entry_json(entry: Entry) -> dict[str, Any]:
    data: dict[str, Any] = {"key": entry.key, "found": entry.found}
    if entry.found:
        data.update(value_json(entry.value))
        data.update(version=entry.version, expire_time=time_text(entry.expire_time))
    return data


def _set_json(result: SetResult) -> dict[str, Any]:
    return {
        "key": result.key,
        "outcome": result.outcome.value,
        "stored": result.stored,
        "version": result.version,
        "expire_time": time_text(result.expire_time),
    }


def _get(client: Client, args: argparse.Namespace, out: Output) -> int:
    entry = client.cache.get(args.key)
    if not entry.found:
        out.result(_entry_json(entry), None)
        out.note(f"{args.key}: not found")
        return Exit.NOT_MET
    if out.json:
        out.result(_entry_json(entry), None)
    else:
        try:
            out.result({}, entry.value.decode("utf-8"))
        except UnicodeDecodeError:  # binary: the raw bytes, so `coordctl cache get k > file` works
            out.stdout.flush()
            sys.stdout.buffer.write(entry.value)
            sys.stdout.buffer.flush()
    return Exit.OK


def _mget(client: Client, args: argparse.Namespace, out: Output) -> int:
    entries = client.cache.batch_get(args.keys)
    hits = [f"{e.key}\t{value_text(e.value)}" for e in entries if e.found]
    out.result({"entries": [_entry_json(e) for e in entries]}, "\n".join(hits) if hits else None)
    for entry in entries:
        if not entry.found:
            out.note(f"{entry.key}: not found")
    return Exit.OK if all(e.found for e in entries) else Exit.NOT_MET


def _set(client: Client, args: argparse.Namespace, out: Output) -> int:
    if args.stdin == (args.value is not None):
        raise ValueError("set needs exactly one of VALUE or --stdin")
    value: bytes = sys.stdin.buffer.read() if args.stdin else args.value.encode("utf-8")
    result = client.cache.set(
        args.key,
        value,
        args.ttl,
        if_absent=args.if_absent,
        if_present=args.if_present,
        if_version=args.if_version,
        tags=args.tags,
    )
    if result.stored:
        expires = time_text(result.expire_time)
        out.result(_set_json(result), f"stored {args.key} (version {result.version}, expires {expires})")
        return Exit.OK
    out.result(_set_json(result), None)
    why = result.outcome.value.replace("_", " ")
    out.note(f"{args.key}: not stored: {why}" + (f" (version {result.version})" if result.version else ""))
    return Exit.NOT_MET


def _invalidate_tags(client: Client, args: argparse.Namespace, out: Output) -> int:
    count = client.cache.invalidate_tags(*args.tags)
    out.result({"tag_count": count}, f"invalidated {count} tag{'' if count == 1 else 's'}")
    return Exit.OK


def _invalidate_prefix(client: Client, args: argparse.Namespace, out: Output) -> int:
    client.cache.invalidate_prefix(args.prefix)
    out.result({"prefix": args.prefix}, f"invalidated {args.prefix}")
    return Exit.OK


def _delete(client: Client, args: argparse.Namespace, out: Output) -> int:
    result = client.cache.delete(*args.keys, if_version=args.if_version)
    data = {
        "deleted_count": result.deleted_count,
        "results": [{"key": r.key, "outcome": r.outcome.value, "version": r.version} for r in result.results],
    }
    out.result(data, f"deleted {result.deleted_count} of {len(result.results)}")
    for r in result.results:
        if not r.deleted:
            out.note(
                f"{r.key}: {r.outcome.value.replace('_', ' ')}"
                + (f" (version {r.version})" if r.version else "")
            )
    return Exit.OK if result.deleted_count == len(result.results) else Exit.NOT_MET


def _incr(client: Client, args: argparse.Namespace, out: Output) -> int:
    result = client.cache.increment(args.key, args.delta, args.ttl)
    data = {
        "key": result.key,
        "value": result.value,
        "version": result.version,
        "created": result.created,
        "expire_time": time_text(result.expire_time),
    }
    out.result(data, str(result.value))
    return Exit.OK


def _touch(client: Client, args: argparse.Namespace, out: Output) -> int:
    result = client.cache.touch(args.key, args.ttl)
    data = {"key": result.key, "found": result.found, "expire_time": time_text(result.expire_time)}
    if not result.found:
        out.result(data, None)
        out.note(f"{args.key}: not found")
        return Exit.NOT_MET
    out.result(data, f"{args.key} expires {time_text(result.expire_time)}")
    return Exit.OK
