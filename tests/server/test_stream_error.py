"""StreamError is defined once (coord.common.v1) and reads the bytes of the per-service messages it
replaced (coord.cache.v1.StreamError, coord.ratelimit.v1.StreamError): same numbers, same types."""

from __future__ import annotations

from google.protobuf.descriptor import FieldDescriptor
from google.rpc import error_details_pb2, status_pb2

from coord.cache.v1 import cache_pb2
from coord.common.v1 import errors_pb2
from coord.ratelimit.v1 import ratelimit_pb2


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, value: int | bytes) -> bytes:
    """One field in the protobuf wire format: a varint, or a length-delimited value."""
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value


INFO = error_details_pb2.ErrorInfo(reason="INVALID_FIELD", domain="coord", metadata={"field": "key"})
# The old messages, written by hand: code = 1 (int32), message = 2 (string), details = 3 (repeated Any).
OLD_ERROR = (
    _field(1, 3)
    + _field(2, b"key: must not be empty")
    + _field(3, _field(1, b"type.googleapis.com/google.rpc.ErrorInfo") + _field(2, INFO.SerializeToString()))
)


def _assert_is_the_old_error(error: errors_pb2.StreamError) -> None:
    assert (error.code, error.message, len(error.details)) == (3, "key: must not be empty", 1)
    info = error_details_pb2.ErrorInfo()
    assert error.details[0].Unpack(info) and info == INFO


def test_old_replies_decode_with_the_common_stream_error() -> None:
    cache = cache_pb2.GetStreamResponse.FromString(_field(1, 7) + _field(3, OLD_ERROR))
    assert cache.request_id == 7 and cache.WhichOneof("result") == "error"
    _assert_is_the_old_error(cache.error)
    check = ratelimit_pb2.CheckStreamResponse.FromString(_field(1, 8) + _field(3, OLD_ERROR))
    assert check.WhichOneof("result") == "error"
    _assert_is_the_old_error(check.error)
    batch = ratelimit_pb2.CheckBatchStreamResponse.FromString(_field(1, 9) + _field(3, OLD_ERROR))
    _assert_is_the_old_error(batch.error)
    result = ratelimit_pb2.CheckBatchResult.FromString(_field(2, OLD_ERROR))
    assert result.WhichOneof("result") == "error"
    _assert_is_the_old_error(result.error)


def test_stream_error_has_the_fields_of_google_rpc_status() -> None:
    def shape(fields: list[FieldDescriptor]) -> list[tuple[str, int, int, bool]]:
        return [(f.name, f.number, f.type, f.message_type is not None) for f in fields]

    assert shape(errors_pb2.StreamError.DESCRIPTOR.fields) == shape(status_pb2.Status.DESCRIPTOR.fields)
    as_status = status_pb2.Status.FromString(OLD_ERROR)
    assert errors_pb2.StreamError.FromString(as_status.SerializeToString()).SerializeToString() == OLD_ERROR
