"""Every Redis key the Events service writes, with its hash tag.

``coord:<tenant>:events:{<topic>}``              STREAM  the topic's events and consumer groups. Bounded
                                                 by MAXLEN ~ and MINID ~ on every publish; PEXPIRE =
                                                 max age, renewed by every publish (an idle topic
                                                 disappears, groups included).
``coord:<tenant>:events:{<topic>}:dd:<dedup>``   STRING  id of the event published with that dedup id;
                                                 PX = dedup window.
``coord:<tenant>:events:{<topic>}:vseq``        STRING  last sequence number of the topic's volatile
                                                 events; PEXPIRE = max age, renewed by each one.
``coord:<tenant>:events:{<topic>}:v``            (a Pub/Sub channel, not a key) volatile events.
``coord:<tenant>:events:registry``               ZSET    every topic name (score 0, lexicographic order)
                                                 for ListTopics and pattern subscriptions. No hash tag:
                                                 it is one key in its own slot, written by a separate
                                                 command after each publish (so not atomically with
                                                 it). PEXPIRE = max age, renewed by every publish;
                                                 names of expired topics are pruned when listed.

Per-topic keys share the topic's tag, so each publish script touches one Redis Cluster slot.
"""

from __future__ import annotations

from ..keys import hash_tag, service_prefix


class EventsKeys:
    def __init__(self, tenant: str) -> None:
        self._prefix = service_prefix(tenant, "events")

    def stream(self, topic: str) -> str:
        return self._prefix + hash_tag(topic)

    def dedup(self, topic: str, dedup_id: str) -> str:
        return self._prefix + hash_tag(topic) + ":dd:" + dedup_id

    def volatile_sequence(self, topic: str) -> str:
        return self._prefix + hash_tag(topic) + ":vseq"

    def volatile_channel(self, topic: str) -> str:
        return self._prefix + hash_tag(topic) + ":v"

    def registry(self) -> str:
        return self._prefix + "registry"
