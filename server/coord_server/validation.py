"""Input checks shared by all services. Each failure names the field and the limit it broke."""

from __future__ import annotations

from dataclasses import dataclass

from .config import Settings
from .errors import FieldViolation, InvalidArgument, TooLarge, invalid


@dataclass(frozen=True)
class Limits:
    """The configurable input limits, taken from Settings."""

    max_key_bytes: int
    max_value_bytes: int
    max_batch: int
    min_ttl_ms: int
    max_ttl_ms: int
    default_ttl_ms: int

    @classmethod
    def from_settings(cls, s: Settings) -> Limits:
        return cls(
            max_key_bytes=s.max_key_bytes,
            max_value_bytes=s.max_value_bytes,
            max_batch=s.max_batch,
            min_ttl_ms=max(1, round(s.min_ttl * 1000)),
            max_ttl_ms=round(s.max_ttl * 1000),
            default_ttl_ms=round(s.default_ttl * 1000),
        )

    def key(self, field: str, key: str) -> str:
        """Check a key: non-empty UTF-8 of at most max_key_bytes, with no NUL or newline."""
        if not key:
            raise invalid(field, "must not be empty")
        size = len(key.encode("utf-8", "surrogatepass"))
        if size > self.max_key_bytes:
            description = f"is {size} bytes; the limit is {self.max_key_bytes} bytes"
            raise _over_limit(field, description, "KEY_TOO_LONG", size, self.max_key_bytes)
        if "\x00" in key or "\n" in key or "\r" in key:
            raise invalid(field, "must not contain NUL, CR or LF characters")
        return key

    def value(self, field: str, value: bytes) -> bytes:
        if len(value) > self.max_value_bytes:
            description = f"is {len(value)} bytes; the limit is {self.max_value_bytes} bytes"
            raise TooLarge(
                message=f"{field}: {description}",
                metadata={"field": field, "limit": str(self.max_value_bytes), "actual": str(len(value))},
                violations=(FieldViolation(field, description),),
            )
        return value

    def batch(self, field: str, count: int, *, allow_empty: bool = False) -> None:
        if count == 0 and not allow_empty:
            raise invalid(field, "must hold at least one item")
        if count > self.max_batch:
            description = f"holds {count} items; the limit is {self.max_batch}"
            raise _over_limit(field, description, "BATCH_TOO_LARGE", count, self.max_batch)

    def ttl_ms(self, field: str, millis: int | None) -> int:
        """A TTL in ms: None or 0 means the default; otherwise it must lie within the bounds."""
        if not millis:
            return self.default_ttl_ms
        if not self.min_ttl_ms <= millis <= self.max_ttl_ms:
            raise invalid(
                field,
                f"must be between {self.min_ttl_ms} ms and {self.max_ttl_ms} ms (got {millis} ms)",
                reason="TTL_OUT_OF_RANGE",
                min=f"{self.min_ttl_ms}ms",
                max=f"{self.max_ttl_ms}ms",
            )
        return millis


def _over_limit(field: str, description: str, reason: str, actual: int, limit: int) -> InvalidArgument:
    """INVALID_ARGUMENT for a field over a configured limit; the metadata carries both numbers
    (``limit``, ``actual``) so that a client can adapt, not only show the message."""
    return invalid(field, description, reason=reason, limit=str(limit), actual=str(actual))


__all__ = ["InvalidArgument", "Limits"]
