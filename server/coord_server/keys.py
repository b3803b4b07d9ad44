"""The key schema shared by every service: ``coord:<tenant>:<service>:{<tag>}<suffix>``.

Each atomic script touches only keys with one hash tag, so every script runs unchanged on Redis
Cluster. The tag is the user-given name with ``%``, ``{`` and ``}`` escaped: a name containing braces
can never end the tag early or leave it empty (an empty ``{}`` would hash the whole key instead).
"""

from __future__ import annotations

_ESCAPES = str.maketrans({"%": "%25", "{": "%7B", "}": "%7D"})


def hash_tag(name: str) -> str:
    """``{name}`` with braces escaped; injective, so distinct names never share a tag by accident."""
    return "{" + name.translate(_ESCAPES) + "}"


_UNESCAPES = {"%25": "%", "%7B": "{", "%7D": "}"}


def unescape_tag(escaped: str) -> str:
    """The name a :func:`hash_tag` was made of (without its braces)."""
    out, i = [], 0
    while i < len(escaped):
        piece = escaped[i : i + 3]
        if piece in _UNESCAPES:
            out.append(_UNESCAPES[piece])
            i += 3
        else:
            out.append(escaped[i])
            i += 1
    return "".join(out)


def service_prefix(tenant: str, service: str) -> str:
    """The prefix of every key ``service`` writes for ``tenant``."""
    return f"coord:{tenant}:{service}:"
