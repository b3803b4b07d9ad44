"""The one place that says which Redis failures are a state of the backend, and what the caller sees.

An error reply such as ``LOADING`` (a restart reading its AOF/RDB), ``BUSY`` (a script running past
``lua-time-limit``), ``MASTERDOWN`` or ``READONLY`` (a failover in progress) or ``OOM`` (``maxmemory``
reached with ``noeviction``) is not a fault of the command that got it: the same call succeeds once
Redis is past that state. So is a connection that could not be made or was lost. Every path to Redis
(the shared pipe, the coalescer, plain redis-py; scripts and typed commands) maps these here, to
BackendUnavailable (UNAVAILABLE with RetryInfo) or BackendOutOfMemory (RESOURCE_EXHAUSTED with
RetryInfo), so the rate limiter's failure modes and clients' retries see one kind of error.
"""

from __future__ import annotations

import redis.exceptions as rex
from redis.asyncio.sentinel import MasterNotFoundError

from ..errors import BackendOutOfMemory, BackendUnavailable
from .executor import UNAVAILABLE

# redis-py gives these replies a class of its own (and strips the first word from the message);
# the shared pipe builds the same classes (pipe.py). Subclasses before their bases.
_BY_CLASS: tuple[tuple[type[Exception], str, str], ...] = (
    (rex.BusyLoadingError, "LOADING", "Redis is loading its dataset into memory"),
    (rex.ReadOnlyError, "READONLY", "Redis is a read-only replica (a failover may be in progress)"),
    (rex.MasterDownError, "MASTERDOWN", "the Redis replica has lost its primary"),
    (rex.TryAgainError, "TRYAGAIN", "Redis Cluster is moving the keys' slot"),
    (rex.ClusterDownError, "CLUSTERDOWN", "Redis Cluster is down"),
)

# Replies redis-py leaves as a plain ResponseError, by their first word (the whole word: BUSYGROUP,
# a consumer group that exists already, is an answer, not a state).
_BY_WORD: dict[str, str] = {
    "BUSY": "Redis is busy running a script",
    "NOREPLICAS": "Redis has too few replicas in sync to accept writes",
}


def backend_state(exc: BaseException) -> BackendUnavailable | None:
    """The domain error for ``exc`` when it means Redis cannot serve now (None for any other error:
    a script's fault, a wrong type...), with the underlying error as its cause."""
    state: BackendUnavailable | None = None
    if isinstance(exc, rex.OutOfMemoryError):
        state = BackendOutOfMemory("Redis is out of memory (maxmemory reached); the call was not applied")
        state.metadata = {"state": "OOM"}
    elif isinstance(exc, rex.ResponseError) and not isinstance(exc, UNAVAILABLE):
        word = str(exc).split(" ", 1)[0]
        if word in _BY_WORD:
            state = BackendUnavailable(_BY_WORD[word], metadata={"state": word})
    if state is None:
        for cls, word, message in _BY_CLASS:
            if isinstance(exc, cls):
                state = BackendUnavailable(message, metadata={"state": word})
                break
    if state is None and isinstance(exc, MasterNotFoundError):
        # redis-py's message is the repr of every sentinel client: say what it means instead.
        message = "no sentinel names a reachable Redis primary"
        if "AuthenticationError" in str(exc):
            message += "; a sentinel refused the credentials (COORD_REDIS_SENTINEL_PASSWORD_FILE)"
        state = BackendUnavailable(message, metadata={"state": "NO_PRIMARY"})
    if state is None and isinstance(exc, UNAVAILABLE):
        state = BackendUnavailable(f"Redis is unavailable: {type(exc).__name__}")
    if state is not None:
        state.__cause__ = exc
    return state
