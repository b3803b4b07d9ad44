"""``coordctl events`` as a user runs it: a subprocess, its output and exit code."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import grpc

from coord.events.v1 import events_pb2, events_pb2_grpc

from .test_cli import coordctl


def test_publish_subscribe_consume_topics_info(coord_single):
    def ctl(*args: str, stdin: bytes | None = None):
        return coordctl("--target", coord_single.target, *args, stdin=stdin)

    first = ctl(
        "events", "publish", "cli.orders", '{"n": 1}', "--content-type", "application/json", "--header", "a=b"
    )
    assert first.returncode == 0, first.stderr
    second = ctl("--json", "events", "publish", "cli.orders", "--stdin", "--dedup-id", "x", stdin=b"\xff\x00")
    assert second.returncode == 0 and json.loads(second.stdout)["duplicate"] is False
    again = ctl("--json", "events", "publish", "cli.orders", "other", "--dedup-id", "x")
    assert json.loads(again.stdout)["duplicate"] is True

    sub = ctl("events", "subscribe", "cli.*", "--from", "earliest", "--count", "2")
    assert sub.returncode == 0, sub.stderr
    lines = [json.loads(line) for line in sub.stdout.splitlines()]
    assert [line["id"] for line in lines] == [first.stdout.decode().strip(), json.loads(second.stdout)["id"]]
    assert lines[0]["value"] == '{"n": 1}' and lines[0]["headers"] == {"a": "b"}
    assert lines[1]["encoding"] == "base64"

    resumed = ctl(
        "events",
        "subscribe",
        "cli.orders",
        "--from",
        "earliest",
        "--after",
        f"cli.orders={lines[0]['id']}",
        "--count",
        "1",
    )
    assert json.loads(resumed.stdout)["id"] == lines[1]["id"]

    con = ctl("events", "consume", "cli.orders", "g", "--count", "2")
    assert con.returncode == 0, con.stderr
    assert [json.loads(x)["delivery_count"] for x in con.stdout.splitlines()] == [1, 1]

    topics = ctl("--json", "events", "topics", "cli.*")
    assert json.loads(topics.stdout) == {"topics": ["cli.orders"]}
    info = ctl("--json", "events", "info", "cli.orders")
    data = json.loads(info.stdout)
    assert data["length"] == 2 and data["groups"][0]["pending"] == 0
    missing = ctl("events", "info", "cli.none")
    assert missing.returncode == 1
    bad = ctl("events", "publish", "bad topic", "x")
    assert bad.returncode == 2 and b"topic" in bad.stderr


def test_subscribe_stops_cleanly_on_ctrl_c(coord_single):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "coord_client.cli",
            "--target",
            coord_single.target,
            "events",
            "subscribe",
            "idle",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        with grpc.insecure_channel(coord_single.target) as channel:
            stub = events_pb2_grpc.EventsServiceStub(channel)
            request = events_pb2.GetTopicRequest(topic="idle")
            deadline = time.monotonic() + 30
            while stub.GetTopic(request).topic.local_subscribers == 0:
                assert time.monotonic() < deadline, "the subscriber never connected"
                time.sleep(0.05)
        proc.send_signal(signal.SIGINT)  # as a terminal's Ctrl-C would
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert b"Traceback" not in err
