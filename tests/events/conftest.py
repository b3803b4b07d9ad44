from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from coord.events.v1 import events_pb2_grpc


@pytest.fixture
def stub(coord) -> Iterator[events_pb2_grpc.EventsServiceStub]:  # type: ignore[no-untyped-def]
    with grpc.insecure_channel(coord.target) as channel:
        yield events_pb2_grpc.EventsServiceStub(channel)
