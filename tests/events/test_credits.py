"""Consumer credits under load: a consumer never has more deliveries than it granted credits, counting
redeliveries of events it left unacknowledged, while a publisher keeps adding events."""

from __future__ import annotations

import random
import threading

from .helpers import Consumer, ms, publish_many

ROUNDS = 12


def _consume_in_rounds(consumer: Consumer, seed: int, seen: list[tuple[str, int]], errors: list) -> None:
    """Grant a few credits at a time; every frame must keep deliveries <= credits granted so far.
    Ack about half of the deliveries and leave the rest to come back after the ack timeout."""
    rand = random.Random(seed)
    granted = delivered = 0
    try:
        for _ in range(ROUNDS):
            grant = rand.randint(1, 9)
            consumer.credit(grant)
            granted += grant
            while delivered < granted:
                frame = consumer.stream.next(timeout=15)
                kind = frame.WhichOneof("frame")
                assert kind == "events", frame  # nothing dead-letters at max_deliveries=1000
                events = list(frame.events.events)
                delivered += len(events)
                assert delivered <= granted, f"{delivered} deliveries with {granted} credits granted"
                seen += [(e.id, e.delivery_count) for e in events]
                acks = [e.id for e in events if rand.random() < 0.5]
                if acks:
                    consumer.ack(*acks)
        assert delivered == granted
    except BaseException as exc:
        errors.append(exc)


def test_deliveries_never_exceed_granted_credits_with_redeliveries_and_a_publisher(stub):
    publish_many(stub, "credits", [b"%d" % i for i in range(60)])
    consumers = [
        Consumer(stub, "credits", "g", initial_credits=0, ack_timeout=ms(200), max_deliveries=1000)
        for _ in range(2)
    ]
    # No credit yet: nothing is delivered although sixty events wait.
    for consumer in consumers:
        assert not [f for f in consumer.stream.quiet(0.3) if f.WhichOneof("frame") == "events"]
    stop = threading.Event()

    def publisher() -> None:
        n = 60
        while not stop.wait(0.02):
            publish_many(stub, "credits", [b"%d" % i for i in range(n, n + 3)])
            n += 3

    feeding = threading.Thread(target=publisher, daemon=True)
    feeding.start()
    seen: list[list[tuple[str, int]]] = [[], []]
    errors: list[BaseException] = []
    workers = [
        threading.Thread(target=_consume_in_rounds, args=(c, n, seen[n], errors), daemon=True)
        for n, c in enumerate(consumers)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(90)
        assert not worker.is_alive()
    assert not errors, errors[0]
    # Credits spent, events waiting and unacked ones past their ack timeout: still nothing comes.
    for consumer in consumers:
        assert not [f for f in consumer.stream.quiet(0.6) if f.WhichOneof("frame") == "events"]
    stop.set()
    feeding.join(10)
    redelivered = [d for log in seen for _, d in log if d > 1]
    assert redelivered, "no unacked event came back, so redeliveries were not counted against credits"
    for consumer in consumers:
        consumer.close()
