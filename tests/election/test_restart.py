"""Terms only grow across Redis restarts (replayed from the AOF, or with everything lost), and an
Observe stream resumes across them without a silent gap."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from coord.election.v1 import election_pb2 as pb

from ..conftest import CoordThread, RedisProcess, wait_for
from ._util import CampaignStream, Observing, Stub, election_stub, leader


def _answers(stub: Stub) -> bool:
    try:
        leader(stub)
    except grpc.RpcError:
        return False
    return True


def _terms(stub: Stub, count: int) -> list[int]:
    terms = []
    for _ in range(count):
        stream = CampaignStream(stub)
        terms.append(stream.elected().term)
        stream.resign()
        assert stream.next().resigned.was_leader
    return terms


def test_terms_and_the_log_survive_a_restart_with_aof(
    redis_factory: Callable[..., RedisProcess], start_coord: Callable[..., CoordThread]
) -> None:
    backing = redis_factory(extra=("--appendonly", "yes", "--appendfsync", "always"))
    server = start_coord(backing.url)
    with election_stub(server.target) as stub:
        watch = Observing(stub)
        start = watch.next().revision
        before = _terms(stub, 3)
        seen = [watch.next() for _ in range(6)]
        watch.cancel()
        backing.stop()
        backing.start()  # same port and directory: the AOF is replayed
        wait_for(lambda: _answers(stub), "Coord to reach Redis again")
        after = _terms(stub, 1)[0]
        assert after > max(before)
        # The log came back too: a resume from before the restart misses nothing.
        resumed = Observing(stub, after=start)
        again = [resumed.next() for _ in range(8)]
        resumed.cancel()
        assert [c.revision for c in again[:6]] == [c.revision for c in seen]
        assert not any(c.gap for c in again)
        assert [c.kind for c in again[6:]] == [pb.CHANGE_KIND_ELECTED, pb.CHANGE_KIND_ENDED]
        assert again[6].leader.term == after


def test_terms_grow_even_when_redis_loses_everything(
    redis_factory: Callable[..., RedisProcess], start_coord: Callable[..., CoordThread]
) -> None:
    backing = redis_factory()  # no persistence: a restart forgets the fence counter and the log
    server = start_coord(backing.url)
    with election_stub(server.target) as stub:
        before = _terms(stub, 3)
        old = leader(stub).revision
        backing.stop()
        backing.start()
        wait_for(lambda: _answers(stub), "Coord to reach Redis again")
        assert _terms(stub, 1)[0] > max(before), "the Redis TIME floor keeps terms increasing"
        # The changes after the old revision are gone: a resume says so, then follows on.
        resumed = Observing(stub, after=old)
        first = resumed.next()
        assert first.kind == pb.CHANGE_KIND_CURRENT and first.gap and not first.HasField("leader")
        stream = CampaignStream(stub)
        elected = stream.elected()
        assert resumed.next().revision == elected.revision
        stream.close()
        resumed.cancel()
