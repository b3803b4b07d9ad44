"""Coord's benchmarks: ``python -m bench`` (``make bench``). See docs/benchmarks.md."""

import os

# Benchmarks start client programs (another client's writer, the Go and Node clients) from a process
# whose gRPC threads are busy; with gRPC's fork handlers on, such a child was seen to die of SIGSEGV
# before it ran a line (a handler run in the forked child). The children exec at once and need none.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
