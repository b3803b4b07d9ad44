"""Request decoding that never raises into gRPC: bytes that are not the method's message are the
caller's mistake (INVALID_ARGUMENT, reason MALFORMED_REQUEST), not a server fault.

gRPC calls a method's request deserializer itself. When that raises, grpc.aio answers a unary request
with UNKNOWN quoting the exception (``Unexpected <class '…DecodeError'>: …``) and logs a traceback
at ERROR; a message of a request stream raises where the servicer reads it. So the deserializers
``_grpc.add_service`` installs come from :func:`decoder`:

- a unary request that cannot be decoded arrives as a :class:`Malformed` in place of the message;
  the handler wrapper answers with its error and the servicer never runs;
- a message of a request stream that cannot be decoded raises :func:`malformed`'s InvalidArgument
  where the servicer reads it, and the RPC boundary ends the stream with it, like any other
  validation error (logged at DEBUG).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import InvalidArgument

REASON = "MALFORMED_REQUEST"
# The decoder's explanation is kept short: enough to find the bad field, never the bytes themselves.
_MAX_CAUSE = 80


@dataclass(frozen=True, slots=True)
class Malformed:
    """What a unary request that could not be decoded reaches its handler as, instead of a message."""

    error: InvalidArgument


def malformed(message_type: str, cause: str) -> InvalidArgument:
    """The error of a request that is not a valid ``message_type``; ``cause`` is the decoder's word."""
    return InvalidArgument(
        message=f"malformed request: not a valid {message_type} ({cause})",
        reason=REASON,
        metadata={"message_type": message_type},
    )


def _cause(exc: Exception) -> str:
    # upb says "Error parsing message with type 'X': String field had bad UTF-8": keep the end.
    return str(exc).rpartition(": ")[2][:_MAX_CAUSE] or "undecodable bytes"


def decoder(message_class: Any, *, streaming: bool) -> Callable[[bytes], Any]:
    """The request deserializer of a method taking ``message_class``: a message, or for bytes that are
    not one, a :class:`Malformed` (unary request) or a raised InvalidArgument (request stream)."""
    parse: Callable[[bytes], Any] = message_class.FromString
    name: str = message_class.DESCRIPTOR.full_name

    def decode(raw: bytes) -> Any:
        try:
            return parse(raw)
        except Exception as exc:  # the parser's only input is the caller's bytes: whatever it says is theirs
            error = malformed(name, _cause(exc))
            if streaming:
                raise error from None
            return Malformed(error)

    return decode
