"""The key schema: hash tags are injective and reversible, and a cache entry's key maps back to its
user key (what an invalidation names)."""

from __future__ import annotations

import pytest

from coord_server.cache.keys import CacheKeys
from coord_server.keys import hash_tag, unescape_tag

NAMES = ["plain", "", "{braces}", "}{", "%7B", "100%", "a%b{c}d", "é{ü}%", "x" * 300]


@pytest.mark.parametrize("name", NAMES)
def test_a_tag_unescapes_to_its_name(name: str) -> None:
    tag = hash_tag(name)
    assert tag.startswith("{") and tag.endswith("}") and "{" not in tag[1:-1] and "}" not in tag[1:-1]
    assert unescape_tag(tag[1:-1]) == name


def test_distinct_names_never_share_a_tag() -> None:
    assert len({hash_tag(n) for n in NAMES}) == len(NAMES)


def test_an_entry_key_maps_back_to_its_user_key() -> None:
    keys = CacheKeys("acme")
    for name in NAMES[2:]:
        entry, tomb = keys.both(name)
        assert keys.key_of(entry) == name
        assert keys.key_of(tomb) is None  # a tombstone is not an entry
    assert keys.key_of("coord:other:cache:{x}") is None
    assert keys.invalidations() == "coord:acme:cache:inv"
