"""Collections: maps, lists, sets and sorted sets (``coord.collections.v1``), four services on the
plain Redis structures, each collection with a TTL and a version (common.py, scripts/_coll.lua)."""
