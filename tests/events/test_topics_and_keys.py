from __future__ import annotations

from coord.events.v1 import events_pb2

from .helpers import Consumer, publish, publish_many


def test_list_topics_paginates_in_order_and_filters_by_pattern(stub):
    names = [f"list.{c}" for c in "edcba"] + ["other.x", "list.a.deep"]
    for name in names:
        publish(stub, name, b"x")
    pages, token = [], ""
    while True:
        reply = stub.ListTopics(events_pb2.ListTopicsRequest(page_size=3, page_token=token))
        pages.append(list(reply.topics))
        token = reply.next_page_token
        if not token:
            break
    assert [n for page in pages for n in page] == sorted(names)
    assert all(len(page) <= 3 for page in pages)
    star = stub.ListTopics(events_pb2.ListTopicsRequest(pattern="list.*")).topics
    assert list(star) == [f"list.{c}" for c in "abcde"]
    tail = stub.ListTopics(events_pb2.ListTopicsRequest(pattern="list.>")).topics
    assert list(tail) == sorted(n for n in names if n.startswith("list."))


def test_list_topics_prunes_topics_whose_stream_is_gone(stub, coord):
    publish(stub, "gone.a", b"x")
    publish(stub, "gone.b", b"x")
    client = coord.redis()
    try:
        client.delete("coord:default:events:{gone.a}")
        assert list(stub.ListTopics(events_pb2.ListTopicsRequest(pattern="gone.*")).topics) == ["gone.b"]
        assert client.zscore("coord:default:events:registry", "gone.a") is None
    finally:
        client.close()


def test_get_topic_reports_length_ids_and_retention(stub, coord):
    missing = stub.GetTopic(events_pb2.GetTopicRequest(topic="nothing")).topic
    assert not missing.exists and missing.length == 0 and missing.first_id == ""
    ids = publish_many(stub, "info", [b"a", b"b", b"c"])
    info = stub.GetTopic(events_pb2.GetTopicRequest(topic="info")).topic
    assert info.exists and info.length == 3
    assert (info.first_id, info.last_id, info.entries_added) == (ids[0], ids[-1], 3)
    assert info.retention.max_length == coord.settings.events_max_length
    assert info.retention.max_age.ToMilliseconds() == round(coord.settings.events_max_age * 1000)
    assert not info.local_reader and info.local_subscribers == 0


def test_every_key_has_a_ttl_within_the_retention_bound(stub, coord):
    publish(stub, "ttl.topic", b"x", dedup_id="once")
    consumer = Consumer(stub, "ttl.fresh", "g")  # a group on a topic nobody published to yet
    consumer.close()
    max_age_ms = round(coord.settings.events_max_age * 1000)
    dedup_ms = round(coord.settings.events_dedup_window * 1000)
    client = coord.redis()
    try:
        keys = {
            "coord:default:events:{ttl.topic}": max_age_ms,
            "coord:default:events:{ttl.topic}:dd:once": dedup_ms,
            "coord:default:events:{ttl.fresh}": max_age_ms,
            "coord:default:events:registry": max_age_ms,
        }
        for key, bound in keys.items():
            pttl = client.pttl(key)
            assert 0 < pttl <= bound, (key, pttl)
        found = set()
        if coord.kind == "cluster":
            for node in client.get_primaries():
                found |= {k.decode() for k in client.keys("coord:*", target_nodes=node)}
        else:
            found = {k.decode() for k in client.keys("coord:*")}
        assert found == set(keys)
    finally:
        client.close()


def test_retention_by_length_keeps_the_topic_bounded(start_coord, coord):
    import grpc

    from coord.events.v1 import events_pb2_grpc

    server = start_coord(coord.backing.url, redis_cluster=coord.kind == "cluster", events_max_length=50)
    with grpc.insecure_channel(server.target) as channel:
        stub = events_pb2_grpc.EventsServiceStub(channel)
        for _ in range(10):
            publish_many(stub, "bounded", [b"x"] * 100)
        info = stub.GetTopic(events_pb2.GetTopicRequest(topic="bounded")).topic
    # MAXLEN ~ trims whole blocks of 100 entries: the length stays within one block of the bound.
    assert info.entries_added == 1000 and info.length <= 50 + 100
