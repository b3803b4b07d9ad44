"""Coord's Redis layer: the backend every store is handed, and what it is built from.

- ``backend.py``   :class:`RedisBackend`: bounded script calls (one NOSCRIPT path), lifecycle.
- ``executor.py``  the one executor interface, and plain redis-py (``coalesce=False``).
- ``pipe.py``      the shared self-pipelining connection of a single node (the hot path).
- ``coalesce.py``  redis-py with concurrent batches merged into pipelines (Cluster, TLS).
- ``commands.py``  typed non-script commands (streams, groups, registry, clock, PUBLISH).
- ``pubsub.py``    a Pub/Sub subscription.
- ``blocking.py``  connections of their own for blocking stream reads (XREAD BLOCK), and waking them.
- ``scripts.py``   Lua scripts from package data, with ``-- @include`` libraries composed.
- ``deadline.py``  the RPC deadline: the one owner of its context variable.
- ``security.py``  the password file and TLS files added to a Redis URL.
- ``acl.py``       the Redis ACL rules Coord's user needs (docs/security.md).

Stores import from here (``from ..redis import RedisBackend, ScriptCall, ScriptSet``) and never
reach redis-py.
"""

from __future__ import annotations

from . import deadline
from .backend import RedisBackend, ScriptArg, ScriptCall
from .commands import StreamEntry, XinfoGroup, XinfoStream
from .executor import ReplyError, text
from .pubsub import Message, PubSub
from .scripts import Script, ScriptLoadError, ScriptSet

__all__ = [
    "Message",
    "PubSub",
    "RedisBackend",
    "ReplyError",
    "Script",
    "ScriptArg",
    "ScriptCall",
    "ScriptLoadError",
    "ScriptSet",
    "StreamEntry",
    "XinfoGroup",
    "XinfoStream",
    "deadline",
    "text",
]
