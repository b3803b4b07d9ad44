# ruff: noqa: ASYNC109  (``timeout`` is the gRPC deadline of a call, passed on to grpc.aio)
"""What every service API shares: the channel, default deadlines, retries of idempotent calls, errors.

Retries, and who does them
--------------------------
``service_config.json`` (shipped next to this file) is the recommended gRPC service config for Coord
clients in every language: a timeout per method and a ``retryPolicy`` (on UNAVAILABLE) for the
idempotent methods only, such as ``CacheService.Get``, ``BatchGet`` and ``Touch``. Never for writes
whose second attempt would report something else (``Increment``, a conditional ``Set``, ``Delete``).

This Python client loads that file into its channel *without* the ``retryPolicy`` entries and retries
in :class:`RetryPolicy` instead, so an attempt is never multiplied by two retry layers. The Python
helper does what gRPC's built-in retries cannot: it waits at least the server's ``RetryInfo`` delay,
gives up as soon as the next attempt could not finish before the caller's deadline, and reports each
retry to an optional hook. Which methods it retries, and its backoff numbers, are read from the same
file, so the two stay in step. ``grpc.enable_retries`` stays on for gRPC's transparent retries of
calls that never reached the server, which are safe for every method.

A new service adds its methods to that file: one ``methodConfig`` giving all of them a ``timeout``,
and one with a ``retryPolicy`` listing only its idempotent methods.

Deadlines: every call has one, ``timeout`` seconds (default :data:`DEFAULT_TIMEOUT`), covering all of
its attempts. The service config's per-method timeout also caps each single attempt.

Calls in flight, and why they are bounded
-----------------------------------------
A transport lets at most ``max_in_flight`` unary calls (default :data:`DEFAULT_MAX_IN_FLIGHT`) be on
its channel at once; the others wait their turn in the client, in order. Without that bound, a burst
of a few thousand concurrent calls on one HTTP/2 connection gets some of them ended with a bare
``CANCELLED`` by gRPC itself: not applied, but a caller of ``Increment`` could not know that. The
deadline of a waiting call counts from when it was called, so a call that waits for a slot past its
deadline fails with :class:`~coord_client.errors.DeadlineExceeded` and was never sent. A retry waits
for a slot again (the slot is given back during the backoff). Streams (Subscribe, Consume, Hold,
CheckBatchStream...) are long-lived and opened by the service modules themselves: they take no slot.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any, Generic, TypeVar

import grpc

from . import _tracing
from ._tls import BearerToken, TLSConfig, TokenSource, check_token_transport
from .errors import CoordError, DeadlineExceeded, from_grpc_error

DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_TIMEOUT = 5.0
# Unary calls one transport keeps on its channel at once (see "Calls in flight" above): far below
# the few thousand at which gRPC starts cancelling streams, far above what one connection needs to
# keep a Coord server busy.
DEFAULT_MAX_IN_FLIGHT = 512
# Generous on purpose: the server's own limit (4 MiB by default, configurable) decides, with a clear error.
MAX_MESSAGE_BYTES = 64 << 20

Req = TypeVar("Req")
Resp = TypeVar("Resp")
ChannelT = TypeVar("ChannelT", grpc.Channel, grpc.aio.Channel)
Options = Sequence[tuple[str, Any]]
Metadata = Sequence[tuple[str, str]]


def load_service_config() -> dict[str, Any]:
    """The recommended service config, as shipped in ``service_config.json``."""
    text = resources.files(__package__).joinpath("service_config.json").read_text("utf-8")
    config: dict[str, Any] = json.loads(text)
    return config


SERVICE_CONFIG = load_service_config()


def _seconds(duration: str) -> float:
    if not duration.endswith("s"):
        raise ValueError(f"service config duration {duration!r} must end in 's'")
    return float(duration[:-1])


def _method_names(config: Mapping[str, Any]) -> list[str]:
    return [f"/{n['service']}/{n['method']}" for n in config.get("name", ()) if "method" in n]


@dataclass(frozen=True)
class RetryEvent:
    """Passed to :attr:`RetryPolicy.on_retry` before each retry."""

    method: str  # full gRPC method name, for example "/coord.cache.v1.CacheService/Get"
    attempt: int  # the attempt that failed, from 1
    error: CoordError  # why it failed
    delay: float  # seconds until the next attempt


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter for idempotent calls, bounded by the call's deadline.

    Attempt ``n`` (from 1) that fails with a code in ``retryable_codes`` is retried after a random
    delay between half and all of ``min(max_backoff, initial_backoff * multiplier ** (n - 1))``, or
    after the server's ``RetryInfo`` delay if that is longer, unless ``max_attempts`` is reached or
    the next attempt would start after the deadline (then the last error is raised).
    """

    max_attempts: int = 5
    initial_backoff: float = 0.05
    max_backoff: float = 2.0
    multiplier: float = 2.0
    retryable_codes: frozenset[grpc.StatusCode] = frozenset({grpc.StatusCode.UNAVAILABLE})
    on_retry: Callable[[RetryEvent], None] | None = None

    @classmethod
    def from_service_config(cls, policy: Mapping[str, Any]) -> RetryPolicy:
        """Build from a service config ``retryPolicy`` object."""
        return cls(
            max_attempts=int(policy["maxAttempts"]),
            initial_backoff=_seconds(policy["initialBackoff"]),
            max_backoff=_seconds(policy["maxBackoff"]),
            multiplier=float(policy["backoffMultiplier"]),
            retryable_codes=frozenset(grpc.StatusCode[c] for c in policy["retryableStatusCodes"]),
        )

    def with_hook(self, on_retry: Callable[[RetryEvent], None] | None) -> RetryPolicy:
        return replace(self, on_retry=on_retry)


# Pass as ``retry=`` to turn retries off.
NO_RETRY = RetryPolicy(max_attempts=1)

# Method -> policy, straight from the service config: the only methods this client ever retries.
RETRY_POLICIES: dict[str, RetryPolicy] = {
    name: RetryPolicy.from_service_config(mc["retryPolicy"])
    for mc in SERVICE_CONFIG.get("methodConfig", ())
    if "retryPolicy" in mc
    for name in _method_names(mc)
}
RETRIED_METHODS = frozenset(RETRY_POLICIES)


def channel_service_config() -> dict[str, Any]:
    """The service config as loaded into this client's channels: ``retryPolicy`` removed (see above)."""
    config = json.loads(json.dumps(SERVICE_CONFIG))
    for method_config in config.get("methodConfig", ()):
        method_config.pop("retryPolicy", None)
    config.pop("retryThrottling", None)
    return dict(config)


def channel_options(extra: Options = ()) -> list[tuple[str, Any]]:
    """Channel options for Coord; ``extra`` entries override the defaults of the same name."""
    options: dict[str, Any] = {
        "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
        "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
        "grpc.service_config": json.dumps(channel_service_config()),
        "grpc.service_config_disable_resolution": 1,
        "grpc.enable_retries": 1,
    }
    options.update(dict(extra))
    return list(options.items())


class _Attempts:
    """Retry bookkeeping shared by the sync and async transports: only the waiting differs."""

    def __init__(self, method: str, timeout: float, policy: RetryPolicy | None) -> None:
        self.method = method
        self.deadline = time.monotonic() + timeout
        self.policy = policy
        self.attempt = 0

    def left(self) -> float:
        """Seconds left before the deadline (0 when it has passed)."""
        return max(0.0, self.deadline - time.monotonic())

    def start_attempt(self) -> float:
        """Count a new attempt and return the seconds left for it (the rest of the deadline)."""
        self.attempt += 1
        return self.left()

    def queued_too_long(self, max_in_flight: int) -> DeadlineExceeded:
        """The error of a call whose deadline passed while it waited for a slot: it was not sent."""
        return DeadlineExceeded(
            f"deadline passed while {self.method} waited for one of the channel's {max_in_flight} "
            "call slots (max_in_flight); it was not sent"
        )

    def failed(self, exc: grpc.RpcError) -> float:
        """After attempt ``exc`` failed: the seconds to wait before the next one, or (no retry) raise
        its :class:`CoordError`."""
        error = from_grpc_error(exc)
        delay = self.delay_before_retry(error)
        if delay is None:
            raise error from exc
        return delay

    def delay_before_retry(self, error: CoordError) -> float | None:
        """Seconds to wait before the next attempt, or None to raise ``error`` now."""
        policy = self.policy
        if policy is None or error.code not in policy.retryable_codes or self.attempt >= policy.max_attempts:
            return None
        backoff = min(policy.max_backoff, policy.initial_backoff * policy.multiplier ** (self.attempt - 1))
        delay = max(random.uniform(backoff / 2, backoff), error.retry_after or 0.0)
        # Retry only if the next attempt still has a useful slice of the deadline left.
        if time.monotonic() + delay + 0.01 >= self.deadline:
            return None
        if policy.on_retry is not None:
            policy.on_retry(RetryEvent(self.method, self.attempt, error, delay))
        return delay


class BaseTransport(Generic[ChannelT]):
    """What both transports are: a channel plus the call defaults (deadline, retries, metadata) and
    the bound on unary calls in flight.

    Only sending (and closing) differs between :class:`Transport` and :class:`AsyncTransport`.
    """

    def __init__(
        self,
        channel: ChannelT,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        metadata: Metadata = (),
        token: BearerToken | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int) or max_in_flight < 1:
            raise ValueError(f"max_in_flight must be a positive int, got {max_in_flight!r}")
        self.channel: ChannelT = channel
        self.max_in_flight = max_in_flight
        self.timeout = timeout
        self.retry = retry
        self._metadata = tuple(metadata)
        self._token = token
        fixed = token.fixed if token is not None else None
        self._fixed = ((*self._metadata, fixed) if fixed else self._metadata) or None
        self._dynamic = token is not None and fixed is None
        self._open_slots()

    def _open_slots(self) -> None:
        """Make the ``max_in_flight`` slots, of the kind (thread or asyncio) the transport waits with."""
        raise NotImplementedError

    @property
    def metadata(self) -> tuple[tuple[str, str], ...] | None:
        """Sent with every call, streams included (the service modules open those themselves): the
        client's metadata and its token, asked for again on each call when it is a callable, and
        the caller's trace context when it is inside an OpenTelemetry span (_tracing.py)."""
        if self._dynamic:
            assert self._token is not None
            base: tuple[tuple[str, str], ...] | None = (*self._metadata, self._token.header())
        else:
            base = self._fixed
        if _tracing.AVAILABLE:
            trace_context: tuple[tuple[str, str], ...] = _tracing.headers()
            if trace_context:
                return (*(base or ()), *trace_context)
        return base

    def policy(self, method: str) -> RetryPolicy | None:
        """The retry policy of ``method``: none unless the service config marks it idempotent."""
        if method not in RETRY_POLICIES:
            return None
        return self.retry if self.retry is not None else RETRY_POLICIES[method]

    def _attempts(self, method: str, timeout: float | None) -> _Attempts:
        return _Attempts(method, self.timeout if timeout is None else timeout, self.policy(method))


class Transport(BaseTransport[grpc.Channel]):
    """A sync channel plus the call defaults (deadline, retries, metadata). Service APIs send through it.

    Thread-safe: calls from many threads share the ``max_in_flight`` slots.
    """

    _slots: threading.Semaphore

    def _open_slots(self) -> None:
        self._slots = threading.Semaphore(self.max_in_flight)

    def call(
        self,
        callable_: grpc.UnaryUnaryMultiCallable[Req, Resp],
        method: str,
        request: Req,
        timeout: float | None = None,
    ) -> Resp:
        """Send one unary request, retrying it only if ``method`` is idempotent; raise CoordError.

        Waits for a free slot first (DeadlineExceeded, unsent, if none frees up before the deadline).
        """
        attempts = self._attempts(method, timeout)
        while True:
            if not self._slots.acquire(timeout=attempts.left()):
                raise attempts.queued_too_long(self.max_in_flight)
            try:
                return callable_(request, timeout=attempts.start_attempt(), metadata=self.metadata)
            except grpc.RpcError as exc:
                delay = attempts.failed(exc)
            finally:
                self._slots.release()
            time.sleep(delay)

    def close(self) -> None:
        self.channel.close()


class AsyncTransport(BaseTransport[grpc.aio.Channel]):
    """:class:`Transport` over a ``grpc.aio`` channel: the same, but for the awaiting.

    Create it in the event loop that will use it (its slots belong to that loop).
    """

    _slots: asyncio.Semaphore

    def _open_slots(self) -> None:
        self._slots = asyncio.Semaphore(self.max_in_flight)

    async def call(
        self,
        callable_: grpc.aio.UnaryUnaryMultiCallable[Req, Resp],
        method: str,
        request: Req,
        timeout: float | None = None,
    ) -> Resp:
        """Send one unary request, retrying it only if ``method`` is idempotent; raise CoordError.

        Waits for a free slot first (DeadlineExceeded, unsent, if none frees up before the deadline).
        """
        attempts = self._attempts(method, timeout)
        while True:
            await self._take_slot(attempts)
            try:
                return await callable_(request, timeout=attempts.start_attempt(), metadata=self.metadata)
            except grpc.aio.AioRpcError as exc:
                delay = attempts.failed(exc)
            finally:
                self._slots.release()
            await asyncio.sleep(delay)

    async def _take_slot(self, attempts: _Attempts) -> None:
        if not self._slots.locked():
            await self._slots.acquire()  # free: taken at once, no timer needed
            return
        try:
            async with asyncio.timeout(attempts.left()):
                await self._slots.acquire()
        except TimeoutError:
            raise attempts.queued_too_long(self.max_in_flight) from None

    async def close(self) -> None:
        await self.channel.close(grace=None)


@dataclass(frozen=True)
class Security:
    """How a client's channel is secured: its credentials (None: plaintext), the channel options
    they need, and the token its transport sends."""

    credentials: grpc.ChannelCredentials | None = None
    options: Options = ()
    token: BearerToken | None = None


def security(
    target: str,
    *,
    tls: TLSConfig | bool | None = None,
    credentials: grpc.ChannelCredentials | None = None,
    token: TokenSource | None = None,
) -> Security:
    """The :class:`Security` of a client from its arguments: ``tls`` (a TLSConfig, or True for the
    system's roots) or ready-made ``credentials``, and a ``token``. ValueError when they disagree, a
    file cannot be read, or the token would travel in clear beyond this host."""
    options: Options = ()
    if tls is not None and tls is not False:
        if credentials is not None:
            raise ValueError("tls: give tls= or credentials=, not both")
        config = TLSConfig() if tls is True else tls
        if not isinstance(config, TLSConfig):
            raise TypeError("tls must be a TLSConfig or True")
        credentials, options = config.channel_credentials(), config.options()
    bearer = None
    if token is not None:
        bearer = BearerToken(token)
        check_token_transport(target, secure=credentials is not None)
    return Security(credentials, options, bearer)


def sync_channel(
    target: str, options: Options = (), credentials: grpc.ChannelCredentials | None = None
) -> grpc.Channel:
    if credentials is None:
        return grpc.insecure_channel(target, options=channel_options(options))
    return grpc.secure_channel(target, credentials, options=channel_options(options))


def async_channel(
    target: str, options: Options = (), credentials: grpc.ChannelCredentials | None = None
) -> grpc.aio.Channel:
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=channel_options(options))
    return grpc.aio.secure_channel(target, credentials, options=channel_options(options))


__all__ = [
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_TARGET",
    "DEFAULT_TIMEOUT",
    "NO_RETRY",
    "RETRIED_METHODS",
    "SERVICE_CONFIG",
    "AsyncTransport",
    "BaseTransport",
    "RetryEvent",
    "RetryPolicy",
    "Security",
    "Transport",
    "async_channel",
    "channel_options",
    "security",
    "sync_channel",
]
