"""Redis URLs as they may be shown: in logs, error messages and ``RedisBackend.description``.

A Redis URL can carry a secret in two places: the userinfo (``redis://user:secret@host``) and a
``password=`` query parameter (redis-py reads every query parameter as a connection option). Both go;
the user name stays, since which ACL user Coord runs as is what an operator needs to see. A Sentinel
URL (``redis+sentinel://user:secret@h1:26379,h2:26379/mymaster``) is read the same way: its hosts are
all in the authority, after the userinfo.

The URL is split the way urllib (and so redis-py) splits it: the host is after the *last* ``@`` of
the authority, so a password containing ``@`` is still all userinfo. A URL that only a human could
read (an ``@`` left after the authority outside a password option: a password containing ``/``,
``?`` or ``#`` not percent-encoded) is shown as its scheme alone, since no split of it can be trusted
to hide the secret.
"""

from __future__ import annotations

import urllib.parse

_HIDDEN = "***"


def _is_secret_option(name: str) -> bool:
    """``password``, ``ssl_password``... : every query option naming a password."""
    return "password" in urllib.parse.unquote(name).lower()


def url_has_password(url: str) -> bool:
    """Whether ``url`` carries a password (in its userinfo or as a query option)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # not a URL at all: whoever connects with it says so
        return False
    if parts.netloc.rpartition("@")[0].partition(":")[2]:
        return True
    return any(_is_secret_option(name) for name, _ in urllib.parse.parse_qsl(parts.query))


def redact_url(url: str) -> str:
    """``url`` without any password: ``redis://user:***@host:port/db``, no ``password=`` options."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # an unbalanced [ in the host...: nothing of it is safe to show
        return "(an unreadable URL)"
    scheme = parts.scheme or "?"
    options = [
        (name, value)
        for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        if not _is_secret_option(name)
    ]
    # An @ past the authority (a password option's value aside) is the rest of a password that
    # urllib split early: none of the URL can be shown.
    if "@" in parts.path + parts.fragment or any("@" in n + v for n, v in options):
        return f"{scheme}://{_HIDDEN}"
    userinfo, at, netloc = parts.netloc.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}{':' + _HIDDEN if colon else ''}@{netloc}"
    query = urllib.parse.urlencode(options)
    # Joined by hand: urlunsplit drops the // of schemes it does not know (unix:///path).
    return f"{scheme}://{netloc}{parts.path}{'?' + query if query else ''}"
