"""The Redis ACL rules Coord needs: every command it sends, every key and channel it touches.

Run Coord as a Redis user granted exactly these (docs/security.md shows the ``ACL SETUSER`` line):
Redis then refuses anything else Coord's connection might be made to send, on any key outside
``coord:*`` and on any channel outside ``coord:*``. Redis checks the commands a Lua script calls
against the caller's rules too, so the commands of every script are listed, not only EVALSHA.

``tests/redis/test_acl_tls.py`` checks that every ``redis.call`` of every script is here and runs each
service as a user with these rules only, on a single node and on a Cluster.
"""

from __future__ import annotations

# Sent by Coord itself (backend, commands.py, pubsub.py) and by redis-py on its behalf.
CLIENT_COMMANDS: tuple[str, ...] = (
    "evalsha",  # every script call
    "eval",  # a script Redis had not cached (after SCRIPT FLUSH or a restart): its source, once
    "ping",  # health probes, redis-py's connection health checks
    "time",
    "xrange",
    "xread",
    "xreadgroup",
    "xack",
    "xinfo|stream",
    "xinfo|groups",
    "zrangebylex",
    "zrem",
    "exists",
    "publish",
    "subscribe",
    "unsubscribe",
    # The live topic readers (events/readers.py): a reader's connection id, and waking its blocked
    # XREAD when a topic joins it (redis/blocking.py).
    "client|id",
    "client|unblock",
    # Redis Cluster clients: the slot map, and the command table redis-py routes by.
    "cluster|slots",
    "command",
    # The eviction check at start-up (maxmemory_policy) and AdminService.GetStats (admin/stats.py).
    "info",
    "scan",
    "memory|usage",
)

# Called inside Coord's Lua scripts (server/coord_server/*/scripts/*.lua).
SCRIPT_COMMANDS: tuple[str, ...] = (
    "del",
    "exists",
    "get",
    "set",
    "incr",
    "pexpire",
    "pexpireat",
    "pttl",
    "time",
    "publish",
    "hget",
    "hmget",
    "hset",
    "hdel",
    "hexists",
    "hincrby",
    "hstrlen",
    "hgetall",  # a cache entry of the old hash layout, read whole once (cache/scripts/_entry.lua)
    # A cache entry is one string (cache/scripts/_entry.lua): its header and size without its value,
    # and its expiry rewritten in place by a Touch.
    "getrange",
    "strlen",
    "setrange",
    "zadd",
    "zrem",
    "zcard",
    "zcount",
    "zscore",
    "zrank",
    "zrange",
    "zrangebyscore",
    "zremrangebyscore",
    "xadd",
    "xtrim",
    "xack",
    "xclaim",
    "xautoclaim",
    "xpending",
    "xgroup|create",
    "xgroup|delconsumer",  # a Consume stream that ends holding nothing leaves its group (leave.lua)
    "xinfo|groups",
    "xinfo|consumers",
    "xlen",
    "xrange",
    "xreadgroup",
    # The collections (collections/scripts/*.lua): maps, lists, sets and sorted sets.
    "hlen",
    "hscan",
    "hincrbyfloat",
    "llen",
    "lpop",
    "lpush",
    "lrange",
    "lindex",  # a list Pop peeks at each value before taking it (never more than one reply holds)
    "lrem",
    "ltrim",
    "rpop",
    "rpush",
    "sadd",
    "scard",
    "smismember",
    "spop",
    "srem",
    "sscan",
    "zincrby",
    "zmscore",
    "zrevrank",
)

KEY_PATTERN = "~coord:*"
CHANNEL_PATTERN = "&coord:*"


def commands() -> list[str]:
    """Every command (or ``command|subcommand``) Coord's user must be allowed, sorted, once each."""
    return sorted(set(CLIENT_COMMANDS) | set(SCRIPT_COMMANDS))


def rules() -> list[str]:
    """The ACL rules of Coord's Redis user, without its password or ``on``: keys and channels
    ``coord:*`` only, no command beyond :func:`commands`."""
    # resetchannels first: Redis 6.2 lets a new user publish anywhere unless told otherwise.
    return [KEY_PATTERN, "resetchannels", CHANNEL_PATTERN, "-@all", *(f"+{c}" for c in commands())]
