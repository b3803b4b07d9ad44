"""Every Redis key Envoy's rate limit service writes, with its hash tag.

``coord:<tenant>:envoy:{<domain>}:f<unit s>:<entries>``  HASH    fixed window: w window index, c count
``coord:<tenant>:envoy:{<domain>}:g<unit s>:<entries>``  STRING  GCRA theoretical arrival time, us
``coord:<tenant>:envoy:{<domain>}:s<unit s>:<entries>``  HASH    sliding window: w window, c count, p previous

``<entries>`` is the descriptor's entries (a share_threshold entry's value replaced by its pattern,
as the reference keys it), each key and value written as ``<length>:<text>`` so that no two entry
lists make one name; an entry list longer than :data:`LONG` characters is replaced by its SHA-256.

The hash tag is the **domain**: all counters of a domain are in one Redis Cluster slot, so one
script decides every descriptor of a request atomically on a cluster too. The trade-off is that one
domain's counters live on one node (docs/envoy.md, "Redis Cluster").
"""

from __future__ import annotations

import hashlib

from ..keys import hash_tag, service_prefix
from .model import Algorithm, Entries

_LETTER = {Algorithm.FIXED_WINDOW: "f", Algorithm.GCRA: "g", Algorithm.SLIDING_WINDOW: "s"}
LONG = 256


class EnvoyKeys:
    def __init__(self, tenant: str) -> None:
        self._prefix = service_prefix(tenant, "envoy")

    def counter(self, domain: str, algorithm: Algorithm, unit_seconds: int, entries: Entries) -> str:
        body = ":".join(f"{len(k)}:{k}:{len(v)}:{v}" for k, v in entries)
        if len(body) > LONG:
            body = "#" + hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()
        return f"{self._prefix}{hash_tag(domain)}:{_LETTER[algorithm]}{unit_seconds}:{body}"
