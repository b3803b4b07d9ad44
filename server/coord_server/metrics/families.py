"""Every metric a Coord server exports, declared once (docs/operations.md describes each).

The per-RPC ones carry go-grpc-prometheus's names and labels, so that dashboards made for Go gRPC
servers work unchanged; Coord's own are named ``coord_…`` with their unit.
"""

from __future__ import annotations

from .core import Family, Registry, Value

# The outcomes of a rate limit decision, as envoy's ratelimit service counts them: within the limit,
# within it but past NEAR_LIMIT_RATIO of it, over it.
ALLOWED, NEAR_LIMIT, DENIED = "allowed", "near_limit", "denied"
NEAR_LIMIT_RATIO = 0.8  # envoy's NEAR_LIMIT_RATIO default
# Rules given inline in a request (not a loaded policy) share one label value: their names are the
# callers', and a label must not take unbounded values.
INLINE_POLICY = "inline"
# How long a lock waiter waited for its grant: from a hand-off within a millisecond to waits of
# minutes (a wait is bounded by the maximum TTL).
WAIT_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
)  # fmt: skip
# coord_events_delivered_total's kinds.
SUBSCRIBE, CONSUME = "subscribe", "consume"


class Metrics:
    """The metrics of one server. Made by the app when COORD_METRICS_LISTEN is set; otherwise there is
    none, and nothing is counted anywhere."""

    def __init__(self, tenant: str = "default") -> None:
        self.registry = registry = Registry()
        add = registry.add
        rpc = ("grpc_service", "grpc_method", "grpc_type")
        # -- per RPC (go-grpc-prometheus) --------------------------------------------------------
        self.rpc_started = add(
            Family("grpc_server_started_total", "Total number of RPCs started on the server.", "counter", rpc)
        )
        self.rpc_handled = add(
            Family(
                "grpc_server_handled_total",
                "Total number of RPCs completed on the server, regardless of success or failure.",
                "counter",
                (*rpc, "grpc_code"),
            )
        )
        self.rpc_seconds = add(
            Family(
                "grpc_server_handling_seconds",
                "Histogram of response latency (seconds) of gRPC that had been application-level handled "
                "by the server.",
                "histogram",
                rpc,
            )
        )
        self.rpc_received = add(
            Family(
                "grpc_server_msg_received_total",
                "Total number of RPC stream messages received on the server.",
                "counter",
                rpc,
            )
        )
        self.rpc_sent = add(
            Family(
                "grpc_server_msg_sent_total",
                "Total number of gRPC stream messages sent by the server.",
                "counter",
                rpc,
            )
        )
        # -- Redis --------------------------------------------------------------------------------
        self.redis_up = add(
            Family(
                "coord_redis_up",
                "1 while Redis answers the health probe, 0 while it does not.",
                "gauge",
                # Several workers: 0 if any of them cannot reach Redis.
                merge="min",
            )
        )
        self.redis_script_seconds = add(
            Family(
                "coord_redis_script_duration_seconds",
                "Time from sending a Lua script call to Redis to its reply (pipeline wait included), "
                "by script.",
                "histogram",
                ("script",),
            )
        )
        self.redis_pipeline_waiting = add(
            Family(
                "coord_redis_pipeline_commands",
                "Script calls sent to Redis (or queued for the next pipeline) and not yet answered.",
                "gauge",
            )
        )
        self.redis_info_errors = add(
            Family(
                "coord_redis_info_errors_total",
                "Redis INFO samples that failed (Redis unreachable or INFO not allowed).",
                "counter",
            )
        )
        # Read from INFO on an interval (redis_info.py); one series per node. Every worker reads the
        # same Redis, so the supervisor keeps one worker's figure (max), not their sum.
        node = ("node",)
        self.redis_memory_used = add(
            Family("coord_redis_memory_used_bytes", "Redis used_memory.", "gauge", node, merge="max")
        )
        self.redis_memory_peak = add(
            Family("coord_redis_memory_peak_bytes", "Redis used_memory_peak.", "gauge", node, merge="max")
        )
        self.redis_fragmentation = add(
            Family(
                "coord_redis_memory_fragmentation_ratio",
                "Redis mem_fragmentation_ratio.",
                "gauge",
                node,
                merge="max",
            )
        )
        self.redis_maxmemory = add(
            Family(
                "coord_redis_maxmemory_bytes", "Redis maxmemory (0: no limit).", "gauge", node, merge="max"
            )
        )
        self.redis_maxmemory_policy = add(
            Family(
                "coord_redis_maxmemory_policy_info",
                "1 for Redis's maxmemory-policy (label policy).",
                "gauge",
                ("node", "policy"),
                merge="max",
            )
        )
        self.redis_evicted = add(
            Family(
                "coord_redis_evicted_keys",
                "Redis evicted_keys: keys evicted for maxmemory since Redis started.",
                "gauge",
                node,
                merge="max",
            )
        )
        self.redis_expired = add(
            Family(
                "coord_redis_expired_keys",
                "Redis expired_keys: keys expired since Redis started.",
                "gauge",
                node,
                merge="max",
            )
        )
        self.redis_clients = add(
            Family("coord_redis_connected_clients", "Redis connected_clients.", "gauge", node, merge="max")
        )
        self.redis_ops = add(
            Family(
                "coord_redis_ops_per_second",
                "Redis instantaneous_ops_per_sec.",
                "gauge",
                node,
                merge="max",
            )
        )
        # -- services -----------------------------------------------------------------------------
        self.tenant_calls = add(
            Family(
                "coord_tenant_calls_total",
                "Calls started, by the caller's tenant (bound by authentication; without it, COORD_TENANT).",
                "counter",
                ("tenant",),
            )
        )
        # tenant bound to the call (None: none bound, the server's own) -> its series.
        self.by_tenant: dict[str | None, Value] = {None: self.tenant_calls.value(tenant)}
        self.cache_hits = add(
            Family(
                "coord_cache_hits_total", "Cache keys read (Get, GetStream, BatchGet) and found.", "counter"
            )
        )
        self.cache_misses = add(
            Family(
                "coord_cache_misses_total",
                "Cache keys read (Get, GetStream, BatchGet) and not found.",
                "counter",
            )
        )
        self.ratelimit_decisions = add(
            Family(
                "coord_ratelimit_decisions_total",
                'Rate limit decisions per descriptor, by policy (inline rules: policy="inline") and outcome: '
                "allowed, near_limit (allowed, with 80% or more of the limit used) or denied.",
                "counter",
                ("policy", "outcome"),
            )
        )
        self.lock_grants = add(
            Family(
                "coord_lock_grants_total",
                "Locks granted (Acquire and Hold), by mode: exclusive or shared (a semaphore is shared).",
                "counter",
                ("mode",),
            )
        )
        self.lock_waiters = add(
            Family(
                "coord_lock_waiters",
                "Acquire and Hold calls of this process queued for a lock now (denied once, still waiting).",
                "gauge",
            )
        )
        self.lock_wait_seconds = add(
            Family(
                "coord_lock_wait_seconds",
                "Time a call that had to wait spent queued, from its first denied attempt to its grant.",
                "histogram",
                buckets=WAIT_BUCKETS,
            )
        )
        self.sessions_created = add(
            Family("coord_sessions_created_total", "Sessions created (Create).", "counter")
        )
        self.sessions_revoked = add(
            Family(
                "coord_sessions_revoked_total",
                "Sessions ended before their expiry: by Revoke, by RevokeAll (each one it ended) and by a "
                "Create that evicted the subject's oldest (LIMIT_POLICY_EVICT_OLDEST).",
                "counter",
            )
        )
        self.events_subscribers = add(
            Family("coord_events_subscribers", "Subscribe streams open in this process.", "gauge")
        )
        self.events_delivered = add(
            Family(
                "coord_events_delivered_total",
                "Events sent to clients, by kind: subscribe (Subscribe streams) or consume (Consume "
                "streams, redeliveries included).",
                "counter",
                ("kind",),
            )
        )
        # Read from XINFO GROUPS on an interval, for the groups a Consume stream of this process reads;
        # several workers consuming one group read the same figure.
        group = ("tenant", "topic", "group")
        self.events_group_pending = add(
            Family(
                "coord_events_group_pending",
                "Events delivered to a consumer group and not acknowledged yet (XINFO GROUPS pending).",
                "gauge",
                group,
                merge="max",
            )
        )
        self.events_group_lag = add(
            Family(
                "coord_events_group_lag",
                "Events of the topic not delivered to the consumer group yet (XINFO GROUPS lag, Redis 7).",
                "gauge",
                group,
                merge="max",
            )
        )

    def tenant(self, tenant: str | None) -> Value:
        """The series of ``tenant``'s calls, bound the first time it calls."""
        series = self.by_tenant.get(tenant)
        if series is None:
            assert tenant is not None
            series = self.by_tenant[tenant] = self.tenant_calls.value(tenant)
        return series
