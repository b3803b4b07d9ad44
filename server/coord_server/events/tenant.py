"""One tenant's Events state in this process: its store, and the hub and volatile listener on it.

Every Publish, Subscribe, Consume and topic listing of a tenant goes through these, and they reach
Redis only through the tenant's store (its keys under ``coord:<tenant>:events:``). So a feed, a
pattern subscription (and the registry poll that finds its new topics: a ``>`` sees only its
tenant's registry) and the volatile listener never see another tenant's topics. The live readers
(readers.py) are the process's, shared by every tenant, but each of their streams is a feed's, named
by its tenant's store, and its entries go to that feed alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from .hub import Hub
from .readers import StreamReaders
from .store import EventsStore
from .volatile import VolatileHub


@dataclass(frozen=True, slots=True)
class TenantEvents:
    store: EventsStore
    hub: Hub
    volatile: VolatileHub

    @classmethod
    def build(
        cls,
        store: EventsStore,
        readers: StreamReaders,
        *,
        block_ms: int,
        buffer_events: int,
        pattern_refresh: float,
    ) -> TenantEvents:
        hub = Hub(
            store, readers, block_ms=block_ms, buffer_events=buffer_events, pattern_refresh=pattern_refresh
        )
        return cls(store, hub, VolatileHub(hub, wait=block_ms / 1000, buffer_events=buffer_events))
