"""``redis+sentinel://`` URLs: where the sentinels are and which master they watch.

``redis+sentinel://[user[:password]@]host1:26379,host2:26379/service[/db]``, or
``rediss+sentinel://...`` to speak TLS to the sentinels and to the master (with the
``COORD_REDIS_TLS_*`` files);

- the hosts are sentinels (port 26379 when left out; an IPv6 address in brackets); when they ask for
  a password of their own (``requirepass`` in sentinel.conf), it comes from
  ``COORD_REDIS_SENTINEL_PASSWORD_FILE`` (and the ACL user from ``COORD_REDIS_SENTINEL_USERNAME``),
  never from the URL;
- the user and password are for the master the sentinels name (as in a ``redis://`` URL; the password
  may come from ``COORD_REDIS_PASSWORD_FILE`` instead);
- ``service`` is the name in the sentinels' ``sentinel monitor <service> ...`` line, required.

No query options: each would have to say whether it is meant for the sentinels or for the master, and
a ``password=`` one would put a secret where logs are more likely to show it.

Parsed by hand, not by redis-py: its URL parser knows one host, and the settings are checked at start
(config.py) with the same rules the backend connects with. No import of redis here, so the settings
module can use it.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

SCHEME = "redis+sentinel://"
TLS_SCHEME = "rediss+sentinel://"
SCHEMES = (SCHEME, TLS_SCHEME)
DEFAULT_PORT = 26379


def is_sentinel_url(url: str) -> bool:
    return url.startswith(SCHEMES)


@dataclass(frozen=True)
class SentinelTarget:
    """What a ``redis+sentinel://`` URL says."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    username: str | None
    password: str | None
    db: int
    tls: bool = False  # rediss+sentinel://: TLS to the sentinels and to the master


def parse_sentinel_url(url: str) -> SentinelTarget:
    """The sentinels, service name, master credentials and database of ``url``.

    Raises ValueError with a message that never quotes the userinfo (the password).
    """
    if not is_sentinel_url(url):
        raise ValueError(f"must start with {SCHEME} or {TLS_SCHEME}")
    tls = url.startswith(TLS_SCHEME)
    rest = url[len(TLS_SCHEME if tls else SCHEME) :]
    authority, slash, path = rest.partition("/")
    if "?" in path or "#" in path or "?" in authority or "#" in authority:
        raise ValueError("takes no query options: the master's credentials go in the userinfo")
    userinfo, at, hosts = authority.rpartition("@")
    username: str | None = None
    password: str | None = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = urllib.parse.unquote(user) or None
        password = urllib.parse.unquote(secret) if colon else None
    sentinels = tuple(_host_port(part) for part in hosts.split(","))
    pieces = path.split("/") if slash else []
    if not pieces or not pieces[0]:
        raise ValueError("needs the master's service name as the path (redis+sentinel://host:26379/mymaster)")
    if len(pieces) > 2:
        raise ValueError("the path is /service or /service/db")
    db = 0
    if len(pieces) == 2:
        if not pieces[1].isdigit():
            raise ValueError(f"database {pieces[1]!r} is not a number")
        db = int(pieces[1])
    return SentinelTarget(sentinels, urllib.parse.unquote(pieces[0]), username, password, db, tls)


def _host_port(part: str) -> tuple[str, int]:
    """``host[:port]`` or ``[v6][:port]`` of one sentinel."""
    if not part:
        raise ValueError("needs a comma-separated list of sentinels as host:port")
    if part.startswith("["):
        host, bracket, tail = part[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")):
            raise ValueError(f"sentinel {part!r} is not [address]:port")
        port_text = tail[1:]
    else:
        host, _, port_text = part.partition(":")
    if not host:
        raise ValueError(f"sentinel {part!r} has no host")
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"sentinel {part!r}: the port must be 1-65535")
    return host, int(port_text)
