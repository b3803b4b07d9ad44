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


def service_prefix(tenant: str, service: str) -> str:
    """The prefix of every key ``service`` writes for ``tenant``."""
    return f"coord:{tenant}:{service}:"
