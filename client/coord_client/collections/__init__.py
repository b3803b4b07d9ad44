"""Collections: maps, lists, sets and sorted sets (leaderboards), each a handle on one name.

    with Client() as client:
        m = client.map("user:42")
        m.set(name="Ada", email=b"ada@example.com", ttl=3600)
        m.get("name")                        # b"Ada" (None when absent)
        m.increment("visits").value          # 1, 2, ...
        m.get_all()                          # {"name": b"Ada", "email": ..., "visits": b"1"}

        jobs = client.list("jobs")
        jobs.push(b"job-1", b"job-2")        # to the back
        jobs.pop(wait=30).value              # from the front; waits on the server for a push

        tags = client.set("tags")
        tags.add("red", "blue").added        # 2
        tags.contains("red")                 # True

        board = client.sorted_set("board")
        board.increment("alice", 10)
        board.rank("alice")                  # Ranked(member="alice", rank=0, score=10.0)
        board.top(10)                        # highest scores first
        board.around("alice", 2)             # two above, alice, two below

``AsyncClient`` gives the same handles for asyncio (``await m.get("name")``); both share one
implementation: the codecs build every request and read every response, and the async handles take
the sync methods over (:func:`~coord_client._call.awaiting`).

What the methods return:

- **Reads return plain values**: ``bytes | None``, ``dict``, ``list``, ``set``, ``bool``, ``float |
  None``, :class:`Ranked` ``| None``; ``length()`` an int. Reads that follow pages (``get_all``,
  ``range``, ``members``, ``range_by_score``) read to the end. ``state()`` reads the collection's
  :class:`CollectionState`: whether it exists, its version, expiry and length.
- **Writes return a result** (a :class:`Written`): ``applied``, and the collection's state after the
  call (``exists``, ``version``, ``expire_time``, ``length``), plus what the write reports itself:
  :class:`Added` (``added``), :class:`Removed` (``removed``), :class:`Incremented` (``value``),
  :class:`Pushed` (``trimmed``), :class:`Popped` (``values``, and ``value``: the first or None),
  :class:`Put` (``added``, ``updated``). ``delete()`` returns :class:`Deleted`, ``touch()`` a
  :class:`CollectionState` (``exists`` False: nothing to touch).

Every write takes ``ttl`` (seconds or a timedelta; None: the server's default TTL), ``keep_ttl``
(True: an existing collection keeps its expiry; a new one gets ``ttl``) and ``if_version`` (apply
only at that version: compare-and-set over the whole collection). Expected outcomes are results,
not exceptions: a version that did not match is ``applied`` False (nothing changed), a miss is None
or an empty result. Errors raise :class:`~coord_client.CoordError` subclasses: a name holding
another kind of collection is FailedPrecondition (reason COLLECTION_WRONG_TYPE), a write past the
size limit ResourceExhausted (COLLECTION_TOO_LARGE). Values are bytes; a ``str`` is stored as UTF-8.
Fields and members are str.

The package: ``models`` (results), ``_codec`` (what the four codecs share), ``_maps``, ``_lists``,
``_sets`` and ``_sorted_sets`` (each service's calls), ``sync`` and ``aio`` (the handles).
"""

from ._lists import SERVICE as LIST_SERVICE
from ._maps import SERVICE as MAP_SERVICE
from ._sets import SERVICE as SET_SERVICE
from ._sorted_sets import SERVICE as SORTED_SET_SERVICE
from .aio import AsyncCollections, AsyncHandle, AsyncList, AsyncMap, AsyncSet, AsyncSortedSet
from .models import (
    TTL,
    Added,
    CollectionState,
    Deleted,
    Incremented,
    Popped,
    Pushed,
    Put,
    PutCondition,
    Ranked,
    Removed,
    Value,
    Written,
)
from .sync import Collections, Handle, List, Map, Set, SortedSet

__all__ = [
    "LIST_SERVICE",
    "MAP_SERVICE",
    "SET_SERVICE",
    "SORTED_SET_SERVICE",
    "TTL",
    "Added",
    "AsyncCollections",
    "AsyncHandle",
    "AsyncList",
    "AsyncMap",
    "AsyncSet",
    "AsyncSortedSet",
    "CollectionState",
    "Collections",
    "Deleted",
    "Handle",
    "Incremented",
    "List",
    "Map",
    "Popped",
    "Pushed",
    "Put",
    "PutCondition",
    "Ranked",
    "Removed",
    "Set",
    "SortedSet",
    "Value",
    "Written",
]
