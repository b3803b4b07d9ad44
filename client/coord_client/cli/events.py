"""``coordctl events ...``: publish, subscribe, consume and inspect topics from the shell.

coordctl events publish orders.created '{"id": 1}' --content-type application/json
coordctl events subscribe 'orders.*' --from earliest        # one JSON line per event; Ctrl-C stops
coordctl events consume jobs workers --count 10              # prints and acks each event
coordctl events topics 'orders.>'
coordctl events info orders.created
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import Any

from ..client import Client
from ..events import Event, Gap, TopicInfo
from ._common import Exit, Output, duration, positive_int, time_text, value_json


def register(subparsers: Any) -> None:
    """Add the ``events`` group and its commands."""
    group = subparsers.add_parser("events", help="publish and read events", description=__doc__)
    commands = group.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    commands.required = True

    pub = commands.add_parser("publish", help="append one event to a topic and print its id")
    pub.add_argument("topic")
    pub.add_argument("data", nargs="?", help="the payload, as UTF-8 text (or use --stdin)")
    pub.add_argument("--stdin", action="store_true", help="read the payload's bytes from stdin")
    pub.add_argument("--content-type", default="", help="media type of the payload")
    pub.add_argument("--header", action="append", default=[], metavar="NAME=VALUE", help="repeatable")
    pub.add_argument("--dedup-id", help="publish at most once per id within the server's dedup window")
    pub.set_defaults(handler=_publish)

    sub = commands.add_parser("subscribe", help="print one JSON line per event until Ctrl-C (or --count)")
    sub.add_argument(
        "topics", nargs="+", metavar="TOPIC", help="topic names or patterns (orders.*, orders.>)"
    )
    sub.add_argument("--from", dest="start", choices=("latest", "earliest"), default="latest")
    sub.add_argument("--after", action="append", default=[], metavar="TOPIC=ID", help="resume after ID")
    sub.add_argument("--count", type=positive_int, help="stop after this many events")
    sub.add_argument("--heartbeat", type=duration, help="server heartbeat interval (default: server's)")
    sub.set_defaults(handler=_subscribe)

    con = commands.add_parser("consume", help="print and ack the events of a consumer group")
    con.add_argument("topic")
    con.add_argument("group")
    con.add_argument("--from", dest="start", choices=("latest", "earliest"), default="earliest")
    con.add_argument("--count", type=positive_int, help="stop after this many events")
    con.add_argument("--ack-timeout", type=duration, help="redelivery timeout (default: server's)")
    con.set_defaults(handler=_consume)

    topics = commands.add_parser("topics", help="list topic names, optionally matching a pattern")
    topics.add_argument("pattern", nargs="?", default="")
    topics.set_defaults(handler=_topics)

    info = commands.add_parser("info", help="describe a topic: length, ids, retention, groups")
    info.add_argument("topic")
    info.set_defaults(handler=_info)


def event_json(event: Event) -> dict[str, Any]:
    data: dict[str, Any] = {"topic": event.topic, "id": event.id}
    data.update(value_json(event.data))
    if event.content_type:
        data["content_type"] = event.content_type
    if event.headers:
        data["headers"] = dict(event.headers)
    data["publish_time"] = time_text(event.publish_time)
    if event.delivery_count:
        data["delivery_count"] = event.delivery_count
    return data


def _line(data: dict[str, Any], out: Output) -> None:
    print(json.dumps(data, ensure_ascii=False), file=out.stdout, flush=True)


def _publish(client: Client, args: argparse.Namespace, out: Output) -> int:
    if args.stdin == (args.data is not None):
        raise ValueError("publish needs exactly one of DATA or --stdin")
    data: bytes = sys.stdin.buffer.read() if args.stdin else args.data.encode("utf-8")
    headers = {}
    for pair in args.header:
        name, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--header {pair!r} must look like NAME=VALUE")
        headers[name] = value
    result = client.events.publish(
        args.topic, data, content_type=args.content_type, headers=headers, dedup_id=args.dedup_id
    )
    payload = {"topic": result.topic, "id": result.id, "duplicate": result.duplicate}
    out.result(payload, result.id + (" (duplicate)" if result.duplicate else ""))
    return Exit.OK


def _subscribe(client: Client, args: argparse.Namespace, out: Output) -> int:
    after = {}
    for pair in args.after:
        topic, sep, event_id = pair.partition("=")
        if not sep:
            raise ValueError(f"--after {pair!r} must look like TOPIC=ID")
        after[topic] = event_id

    def on_gap(gap: Gap) -> None:
        note = {
            "gap": {
                "topic": gap.topic,
                "after_id": gap.after_id,
                "first_available_id": gap.first_available_id,
            }
        }
        print(json.dumps(note), file=out.stderr, flush=True)

    subscription = client.events.subscribe(
        *args.topics, after=after or None, start=args.start, heartbeat=args.heartbeat, on_gap=on_gap
    )
    seen = 0
    try:
        for event in subscription:
            _line(event_json(event), out)
            seen += 1
            if args.count and seen >= args.count:
                break
    except KeyboardInterrupt:
        pass  # Ctrl-C: a clean stop
    finally:
        subscription.close()
    return Exit.OK


def _consume(client: Client, args: argparse.Namespace, out: Output) -> int:
    stop = threading.Event()
    seen = 0

    def handle(event: Event) -> None:
        nonlocal seen
        _line(event_json(event), out)
        seen += 1
        if args.count and seen >= args.count:
            stop.set()

    try:
        client.events.consume(
            args.topic,
            args.group,
            handle,
            prefetch=min(args.count or 16, 16),
            group_start=args.start,
            ack_timeout=args.ack_timeout,
            stop=stop,
        )
    except KeyboardInterrupt:
        stop.set()
    return Exit.OK


def _topics(client: Client, args: argparse.Namespace, out: Output) -> int:
    names = client.events.list_topics(args.pattern)
    out.result({"topics": names}, "\n".join(names) if names else None)
    return Exit.OK


def _info_json(info: TopicInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "exists": info.exists,
        "length": info.length,
        "first_id": info.first_id,
        "last_id": info.last_id,
        "retention": {"max_length": info.max_length, "max_age_seconds": info.max_age.total_seconds()},
        "groups": [
            {
                "name": g.name,
                "consumers": g.consumers,
                "pending": g.pending,
                "last_delivered_id": g.last_delivered_id,
                "lag": g.lag,
            }
            for g in info.groups
        ],
    }


def _info(client: Client, args: argparse.Namespace, out: Output) -> int:
    info = client.events.get_topic(args.topic)
    if not info.exists:
        out.result(_info_json(info), None)
        out.note(f"{args.topic}: no such topic")
        return Exit.NOT_MET
    lines = [
        f"{info.name}: {info.length} events, first {info.first_id or '-'}, last {info.last_id or '-'}",
        f"retention: {info.max_length} events, {info.max_age}",
        *(f"group {g.name}: {g.pending} pending, lag {g.lag}, {g.consumers} consumers" for g in info.groups),
    ]
    out.result(_info_json(info), "\n".join(lines))
    return Exit.OK
