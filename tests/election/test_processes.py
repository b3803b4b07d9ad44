"""At most one leader at any moment across OS processes, with leaders SIGKILLed and SIGSTOPped.

Candidates run in processes of their own through the Python client. Each leader claims the
resource in Redis and checks, between its steps, that nobody claimed it since (an unfenced check,
so it sees any overlap of two leaders), and makes fenced writes (refused when a higher term already
wrote). The test kills the current leader over and over: the next one must be elected with a higher
term as soon as the killed one's stream breaks (the lease is a minute long, so only the broken stream
can end it this soon, and the log says RESIGNED, not EXPIRED), and an Observe stream must see every
leadership in order. No wall clock is compared: order comes from Redis.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from redis.cluster import RedisCluster

from coord.election.v1 import election_pb2 as pb
from coord_client import Client

from ..conftest import CoordUnderTest, wait_for
from ._util import Observing, election_stub

# A fenced write, as a resource protected by the election would make it: refused (0) when a higher
# term already wrote; otherwise the term becomes the highest and the entry is appended.
FENCED = """
local highest = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) < highest then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('RPUSH', KEYS[2], ARGV[1] .. ' ' .. ARGV[2])
return 1
"""

PRELUDE = textwrap.dedent(
    """
    import os, sys, time, redis
    from redis.cluster import RedisCluster
    from coord_client import Client
    from coord_client.election import LeadershipLost
    target, redis_url, cluster = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    r = RedisCluster.from_url(redis_url) if cluster else redis.Redis.from_url(redis_url)
    fenced = r.register_script(sys.argv[4])
    me = str(os.getpid())
    client = Client(target, timeout=10)
    election = client.election("torture")
    """
)

CANDIDATE = PRELUDE + textwrap.dedent(
    """
    while True:
        try:
            with election.campaign(value=me, ttl=60) as leadership:
                term = leadership.term
                r.set("{t}:holder", term)
                for step in range(20):
                    leadership.check()
                    if int(r.get("{t}:holder")) != term:
                        r.incr("{t}:overlaps")
                    if not fenced(keys=["{t}:highest", "{t}:log"], args=[term, f"{me} {step}"]):
                        r.incr("{t}:refused")
                    time.sleep(0.005)
                    if int(r.get("{t}:holder")) != term:
                        r.incr("{t}:overlaps")
        except LeadershipLost:
            pass
    """
)

PAUSED = PRELUDE + textwrap.dedent(
    """
    with election.campaign(value=me, ttl=1, raise_on_lost=False) as leadership:
        print(leadership.term, flush=True)
        sys.stdin.readline()  # SIGSTOPped here, then SIGCONTinued after another was elected
        written = fenced(keys=["{t}:highest", "{t}:log"], args=[leadership.term, me])
        proclaimed = client.election("torture").proclaim(leadership.term, leadership.leader_token, b"stale")
        try:
            leadership.check()  # the lease ran out by this process's clock while it was stopped
            knows = False
        except LeadershipLost:
            knows = True
        print(written, int(proclaimed.proclaimed), knows, flush=True)
    """
)


def redis_of(coord: CoordUnderTest) -> redis.Redis | RedisCluster:
    return coord.redis()


@contextmanager
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for child in started:
            if child.poll() is None:
                child.kill()
            child.wait(10)
            for stream in (child.stdin, child.stdout):
                if stream is not None:
                    stream.close()


def spawn(coord: CoordUnderTest, code: str, **kwargs: object) -> subprocess.Popen[bytes]:
    cluster = "1" if coord.kind == "cluster" else "0"
    args = [sys.executable, "-c", code, coord.target, coord.backing.url, cluster, FENCED]
    return subprocess.Popen(args, env=os.environ.copy(), **kwargs)  # type: ignore[call-overload,no-any-return]


def test_one_leader_at_a_time_while_leaders_are_killed(coord: CoordUnderTest) -> None:
    kills = 5
    with election_stub(coord.target) as stub, Client(coord.target, timeout=10) as client, processes() as kids:
        election = client.election("torture")
        watch = Observing(stub, name="torture", timeout=300)
        assert watch.next().kind == pb.CHANGE_KIND_CURRENT
        kids.extend(spawn(coord, CANDIDATE) for _ in range(4))
        by_pid = {str(k.pid): k for k in kids}
        killed: list[int] = []
        for _ in range(kills):
            floor = killed[-1] if killed else 0
            wait_for(lambda f=floor: (election.leader() or _NOBODY).term > f, "a new leader", timeout=60)
            leader = election.leader()
            assert leader is not None
            victim = by_pid.get(leader.value.decode())
            if victim is None or leader.term <= floor:
                continue  # it resigned meanwhile (a candidate leads for 20 steps, then campaigns again)
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
            killed.append(leader.term)
            # The lease has a minute left: only the broken stream ends the leadership this soon.
            wait_for(lambda: (election.leader() or _NOBODY).term != killed[-1], "the next leader", timeout=20)
            fresh = spawn(coord, CANDIDATE)
            kids.append(fresh)
            by_pid[str(fresh.pid)] = fresh
        assert len(killed) >= 3
        with redis_of(coord) as r:
            wait_for(lambda: r.llen("{t}:log") >= 100, "fenced writes", timeout=60)
        for kid in kids:
            kid.kill()
            kid.wait(10)
        wait_for(lambda: election.leader() is None, "nobody to lead", timeout=20)
        final = election.state().revision
        changes = [watch.next(timeout=20)]
        while changes[-1].revision != final:
            changes.append(watch.next(timeout=20))
        watch.cancel()
        with redis_of(coord) as r:
            log = [entry.decode().split() for entry in r.lrange("{t}:log", 0, -1)]
            assert int(r.get("{t}:overlaps") or 0) == 0, "two leaders overlapped"
            assert int(r.get("{t}:refused") or 0) == 0, "a leader's fenced write was refused"

    # The fenced writes come in term order, each term from one process.
    terms = [int(term) for term, _, _ in log]
    assert terms == sorted(terms)
    writers: dict[int, set[str]] = {}
    for term, pid, _ in log:
        writers.setdefault(int(term), set()).add(pid)
    assert all(len(pids) == 1 for pids in writers.values())

    # The observer saw every leadership, in order: elected, (proclaimed), ended, elected...
    elected = [c.leader.term for c in changes if c.kind == pb.CHANGE_KIND_ELECTED]
    ended = [c.ended_term for c in changes if c.kind == pb.CHANGE_KIND_ENDED]
    assert elected == sorted(set(elected)), "terms strictly increase"
    assert ended == elected, "each leadership ends before the next begins"
    assert set(writers) <= set(elected)
    order = [c.kind for c in changes]
    assert all(a != b for a, b in itertools.pairwise(order)), "elected and ended alternate"
    reasons = {c.ended_term: c.end_reason for c in changes if c.kind == pb.CHANGE_KIND_ENDED}
    assert all(reasons[term] == pb.END_REASON_RESIGNED for term in killed), "ended by the broken stream"


class _Nobody:
    term = 0


_NOBODY = _Nobody()


def test_a_paused_leader_is_deposed_and_fenced_off(coord: CoordUnderTest) -> None:
    with Client(coord.target, timeout=10) as client, processes() as kids:
        paused = spawn(coord, PAUSED, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        kids.append(paused)
        assert paused.stdout is not None and paused.stdin is not None
        old_term = int(paused.stdout.readline())
        paused.send_signal(signal.SIGSTOP)
        try:
            # Its lease (1 s) runs out on the server, which ends it and elects the next candidate.
            elected = threading.Event()
            with client.election("torture").campaign(value=b"next", wait=60) as leadership:
                elected.set()
                assert leadership.term > old_term
                with redis_of(coord) as r:
                    r.register_script(FENCED)(keys=["{t}:highest", "{t}:log"], args=[leadership.term, "next"])
                paused.send_signal(signal.SIGCONT)
                paused.stdin.write(b"go\n")
                paused.stdin.flush()
                written, proclaimed, lost = paused.stdout.readline().split()
                assert (written, proclaimed) == (b"0", b"0"), "the deposed leader was fenced off"
                assert lost == b"True"
                assert client.election("torture").leader().value == b"next"  # type: ignore[union-attr]
            assert elected.is_set()
        finally:
            paused.send_signal(signal.SIGCONT)
        assert paused.wait(20) == 0
