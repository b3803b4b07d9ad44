"""Every CacheAPI method through the sync Client, against single-node Redis and Redis Cluster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from coord_client import Client, DeleteOutcome, SetItem, SetOutcome


@pytest.fixture
def client(coord):
    with Client(coord.target, timeout=5) as c:
        yield c


def _near(moment: datetime | None, seconds: float) -> bool:
    assert moment is not None
    expected = datetime.now(UTC) + timedelta(seconds=seconds)
    return abs((moment - expected).total_seconds()) < 5


def _same_time(a: datetime | None, b: datetime | None) -> bool:
    """Expiry times as reported by different calls: the server derives them from PTTL (1 ms grain)."""
    assert a is not None and b is not None
    return abs((a - b).total_seconds()) < 0.01


def test_get_miss_and_hit(client):
    miss = client.cache.get("nothing")
    assert (miss.key, miss.found, miss.value, miss.version, miss.expire_time) == (
        "nothing",
        False,
        b"",
        0,
        None,
    )

    stored = client.cache.set("k", "héllo", ttl=60)
    assert stored.stored and stored.outcome is SetOutcome.STORED and stored.key == "k"
    hit = client.cache.get("k")
    assert hit.found and hit.value == "héllo".encode()
    assert hit.version == stored.version > 0
    assert _same_time(hit.expire_time, stored.expire_time) and _near(hit.expire_time, 60)


def test_ttl_as_timedelta_and_bytes_value(client):
    client.cache.set("k", b"\x00\xff", ttl=timedelta(minutes=2))
    entry = client.cache.get("k")
    assert entry.value == b"\x00\xff" and _near(entry.expire_time, 120)


def test_batch_get_keeps_request_order_and_duplicates(client):
    client.cache.set("a", b"1")
    client.cache.set("c", b"3")
    entries = client.cache.batch_get(["c", "b", "a", "c"])
    assert [(e.key, e.found, e.value) for e in entries] == [
        ("c", True, b"3"),
        ("b", False, b""),
        ("a", True, b"1"),
        ("c", True, b"3"),
    ]
    assert client.cache.get_many([]) == []


def test_set_conditions(client):
    first = client.cache.set("k", b"v1", if_absent=True)
    assert first.stored
    exists = client.cache.set("k", b"v2", if_absent=True)
    assert (
        exists.outcome is SetOutcome.ALREADY_EXISTS and not exists.stored and exists.version == first.version
    )

    absent = client.cache.set("other", b"x", if_present=True)
    assert absent.outcome is SetOutcome.NOT_FOUND and absent.version == 0 and absent.expire_time is None
    present = client.cache.set("k", b"v2", if_present=True)
    assert present.stored and present.version > first.version

    stale = client.cache.set("k", b"v3", if_version=first.version)
    assert stale.outcome is SetOutcome.VERSION_MISMATCH and stale.version == present.version
    cas = client.cache.set("k", b"v3", if_version=present.version)
    assert cas.stored and cas.version > present.version
    assert client.cache.get("k").value == b"v3"


def test_batch_set_mapping_and_items(client):
    results = client.cache.batch_set({"a": b"1", "b": "2"}, ttl=30)
    assert [(r.key, r.stored) for r in results] == [("a", True), ("b", True)]
    assert _near(client.cache.get("b").expire_time, 30)

    results = client.cache.set_many(
        [SetItem("a", b"x", if_absent=True), SetItem("c", b"3", ttl=90), SetItem("b", b"y")], ttl=10
    )
    assert [r.outcome for r in results] == [SetOutcome.ALREADY_EXISTS, SetOutcome.STORED, SetOutcome.STORED]
    assert _near(client.cache.get("c").expire_time, 90)
    assert _near(client.cache.get("b").expire_time, 10)
    assert client.cache.batch_set({}) == []


def test_delete_many_and_if_version(client):
    client.cache.batch_set({"a": b"1", "b": b"2"})
    result = client.cache.delete("a", "b", "missing")
    assert result.deleted_count == 2
    assert [(r.key, r.outcome) for r in result.results] == [
        ("a", DeleteOutcome.DELETED),
        ("b", DeleteOutcome.DELETED),
        ("missing", DeleteOutcome.NOT_FOUND),
    ]
    assert result.results[0].version > 0 and result.results[2].version == 0

    version = client.cache.set("k", b"v").version
    mismatch = client.cache.delete("k", if_version=version + 1)
    assert mismatch.deleted_count == 0 and mismatch.results[0].outcome is DeleteOutcome.VERSION_MISMATCH
    assert client.cache.delete("k", if_version=version).results[0].deleted
    assert not client.cache.get("k").found


def test_versions_grow_across_delete_and_recreate(client):
    v1 = client.cache.set("k", b"1").version
    client.cache.delete("k")
    v2 = client.cache.set("k", b"2").version
    assert v2 > v1


def test_increment(client):
    created = client.cache.increment("n", 5, ttl=60)
    assert (created.key, created.value, created.created) == ("n", 5, True) and _near(created.expire_time, 60)
    down = client.cache.increment("n", -7)
    assert (down.value, down.created) == (-2, False) and down.version > created.version
    assert _same_time(down.expire_time, created.expire_time)  # an existing counter keeps its expiry
    assert client.cache.increment("n").value == -1
    assert client.cache.get("n").value == b"-1"


def test_touch(client):
    missing = client.cache.touch("missing", 10)
    assert not missing.found and missing.expire_time is None
    version = client.cache.set("k", b"v", ttl=10).version
    touched = client.cache.touch("k", timedelta(hours=1))
    assert touched.found and _near(touched.expire_time, 3600)
    entry = client.cache.get("k")
    assert entry.version == version and _same_time(entry.expire_time, touched.expire_time)
