"""Every Redis key and channel of the Election service, with its hash tag.

An election is an exclusive lock in a key space of its own, so its first seven keys are the lock's
(``lock/keys.py`` tells what each holds) under ``coord:<tenant>:election:`` instead of
``coord:<tenant>:lock:``: an election and a lock of the same name never meet. Two more keys, with the
same tag ``{<name>}``, so every election script runs on Redis Cluster:

``coord:<tenant>:election:{<name>}:h`` ... ``:fence``  the lock's keys (LockKeys order)
``coord:<tenant>:election:{<name>}:leader``  HASH    the leader's record and the log's bounds
``coord:<tenant>:election:{<name>}:log``     STREAM  the changes of leadership, by revision

Every key expires: the lock's keys by the lock's rules, the leader's record and the log with the
fence counter, and at least a day after the last change (``scripts/_election.lua``).

Wake-up channel (pub/sub, not a key): ``coord:<tenant>:election:wake:<server id>``.
"""

from __future__ import annotations

from ..keys import hash_tag, service_prefix
from ..lock.keys import SUFFIXES as LOCK_SUFFIXES
from ..lock.keys import LockKeys

SUFFIXES = (*LOCK_SUFFIXES, ":leader", ":log")
LOG_INDEX = len(SUFFIXES) - 1


class ElectionKeys(LockKeys):
    """The lock's keys (so the lock's store runs on them) in the election's space, and two more."""

    def __init__(self, tenant: str) -> None:
        super().__init__(tenant)
        self._prefix = service_prefix(tenant, "election")

    def all(self, name: str) -> list[str]:
        """The nine keys every election script takes, in the order of ``_lib.lua`` and ``_election.lua``."""
        base = self._prefix + hash_tag(name)
        return [base + suffix for suffix in SUFFIXES]

    def log(self, name: str) -> str:
        """The stream of the election's changes (what Observe streams read)."""
        return self._prefix + hash_tag(name) + SUFFIXES[LOG_INDEX]
