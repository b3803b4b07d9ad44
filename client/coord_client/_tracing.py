"""The caller's trace context, sent with every call: W3C ``traceparent`` (and ``tracestate``,
``baggage``) in the call's metadata, as OpenTelemetry's global propagator writes them.

Only when ``opentelemetry-api`` is installed and the caller is inside a span (its own, or one its
framework extracted from an incoming request); otherwise nothing is added. The client creates no
spans of its own: a server with tracing on (COORD_TRACING) makes its span a child of the caller's.
"""

from __future__ import annotations

try:
    from opentelemetry import propagate, trace
except ImportError:  # pragma: no cover - the client works without OpenTelemetry
    AVAILABLE = False
else:
    AVAILABLE = True


def headers() -> tuple[tuple[str, str], ...]:
    """The current trace context as metadata; empty outside a span (or without OpenTelemetry)."""
    if not AVAILABLE or not trace.get_current_span().get_span_context().is_valid:
        return ()
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return tuple(carrier.items())


__all__ = ["AVAILABLE", "headers"]
