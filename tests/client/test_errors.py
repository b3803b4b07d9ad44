"""Typed errors: the class follows the status code; reason, metadata, field violations and retry
delay come from the server's rich status. Arguments that are plainly wrong never leave the client."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from coord_client import (
    AsyncClient,
    Client,
    CoordError,
    FailedPrecondition,
    InvalidArgument,
    OutOfRange,
    ResourceExhausted,
    Unavailable,
)
from coord_client.errors import error_class


@pytest.fixture
def client(coord_single):
    with Client(coord_single.target) as c:
        yield c


def test_empty_key_is_invalid_argument_naming_the_field(client):
    with pytest.raises(InvalidArgument) as info:
        client.cache.get("")
    error = info.value
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert (error.reason, error.domain) == ("INVALID_FIELD", "coord")
    assert error.metadata["field"] == "key"
    assert error.field_violations == [("key", "must not be empty")]
    assert error.retry_after is None
    assert "key" in error.message and "INVALID_FIELD" in str(error)
    assert isinstance(error.__cause__, grpc.RpcError)


def test_batch_item_violation_names_its_index(client):
    with pytest.raises(InvalidArgument) as info:
        client.cache.batch_get(["ok", ""])
    assert info.value.field_violations[0][0] == "keys[1]"


def test_oversized_value_is_resource_exhausted_with_limits(client, coord_single):
    limit = coord_single.settings.max_value_bytes
    with pytest.raises(ResourceExhausted) as info:
        client.cache.set("k", b"x" * (limit + 1))
    error = info.value
    assert error.reason == "VALUE_TOO_LARGE"
    assert error.metadata == {"field": "value", "limit": str(limit), "actual": str(limit + 1)}
    assert error.field_violations[0][0] == "value"


def test_ttl_out_of_range(client, coord_single):
    too_long = coord_single.settings.max_ttl + 1
    with pytest.raises(InvalidArgument) as info:
        client.cache.set("k", b"v", ttl=too_long)
    assert info.value.reason == "TTL_OUT_OF_RANGE"
    assert info.value.field_violations[0][0] == "ttl"
    with pytest.raises(InvalidArgument) as info:
        client.cache.touch("k", 0.0001)  # below the 1 ms minimum
    assert info.value.reason == "TTL_OUT_OF_RANGE"


def test_increment_errors(client):
    client.cache.set("text", b"abc")
    with pytest.raises(FailedPrecondition) as info:
        client.cache.increment("text")
    assert info.value.reason == "VALUE_NOT_INTEGER"
    client.cache.increment("big", 2**63 - 1)
    with pytest.raises(OutOfRange) as overflow:
        client.cache.increment("big")
    assert overflow.value.reason == "INTEGER_OVERFLOW"


def test_async_errors_are_typed_the_same_way(coord_single):
    async def main() -> InvalidArgument:
        async with AsyncClient(coord_single.target) as client:
            with pytest.raises(InvalidArgument) as info:
                await client.cache.set("", b"v")
            return info.value

    error = asyncio.run(main())
    assert error.reason == "INVALID_FIELD" and error.field_violations == [("key", "must not be empty")]


def test_transport_errors_have_no_reason():
    with Client("127.0.0.1:1", timeout=0.5) as client, pytest.raises(CoordError) as info:
        client.cache.set("k", b"v")
    assert isinstance(info.value, Unavailable)
    assert info.value.reason == "" and info.value.metadata == {}


def test_every_status_code_has_a_class():
    for code in grpc.StatusCode:
        if code in (grpc.StatusCode.OK, grpc.StatusCode.DATA_LOSS):
            continue
        cls = error_class(code)
        assert cls is not CoordError and cls.code is code
    data_loss = error_class(grpc.StatusCode.DATA_LOSS)("lost", code=grpc.StatusCode.DATA_LOSS)
    assert type(data_loss) is CoordError and data_loss.code is grpc.StatusCode.DATA_LOSS


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.cache.set("k", b"v", if_absent=True, if_present=True), "at most one condition"),
        (lambda c: c.cache.set("k", b"v", if_present=True, if_version=3), "at most one condition"),
        (lambda c: c.cache.set("k", b"v", if_version=0), "if_version"),
        (lambda c: c.cache.set("k", b"v", ttl=-1), "ttl must be a positive"),
        (lambda c: c.cache.set("k", b"v", ttl=0), "ttl must be a positive"),
        (lambda c: c.cache.touch("k", float("inf")), "ttl must be a positive"),
        (lambda c: c.cache.delete(), "at least one key"),
        (lambda c: c.cache.delete("a", "b", if_version=4), "exactly one key"),
        (lambda c: c.cache.increment("n", 2**63), "64-bit"),
    ],
)
def test_plainly_wrong_arguments_raise_value_error(client, call, message):
    with pytest.raises(ValueError, match=message):
        call(client)


def test_wrong_types_raise_type_error(client):
    with pytest.raises(TypeError):
        client.cache.set("k", 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        client.cache.batch_get("abc")
    with pytest.raises(TypeError):
        client.cache.increment("n", 1.5)  # type: ignore[arg-type]
