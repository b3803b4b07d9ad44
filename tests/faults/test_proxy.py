"""The fault-injection proxy itself: it forwards, counts, and each fault goes on and off on open
connections. Raw RESP over plain sockets, so every byte is known; assertions are on counters and on
what arrived, never on how long it took (a fault that holds bytes holds them until it is lifted)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.cluster import RedisCluster

from ..conftest import RedisProcess, wait_for
from .conftest import ProxiedCluster
from .proxy import Proxies, Proxy

PING = b"PING\r\n"
PONG = b"+PONG\r\n"
QUIET = 0.3  # how long a socket waits to see that nothing arrives while a fault holds the bytes


@pytest.fixture
def redis_proc(redis_factory) -> RedisProcess:  # type: ignore[no-untyped-def]
    proc: RedisProcess = redis_factory()
    return proc


@pytest.fixture
def proxy(redis_proc: RedisProcess) -> Iterator[Proxy]:
    with Proxy(redis_proc.port) as p:
        yield p


def connect(proxy: Proxy) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=30)


def read_exactly(sock: socket.socket, n: int, timeout: float = 30.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def nothing_arrives(sock: socket.socket) -> bool:
    sock.settimeout(QUIET)
    try:
        data = sock.recv(1024)
    except TimeoutError:
        return True
    raise AssertionError(f"bytes arrived while held: {data!r}")


def ping(sock: socket.socket) -> None:
    sock.sendall(PING)
    assert read_exactly(sock, len(PONG)) == PONG


def connected_clients(redis_proc: RedisProcess) -> int:
    with redis_proc.client() as r:
        return int(r.info("clients")["connected_clients"]) - 1  # minus this one


def test_forwards_and_counts_bytes_and_connections(proxy: Proxy, redis_proc: RedisProcess) -> None:
    before = proxy.stats()
    with connect(proxy) as a, connect(proxy) as b:
        ping(a)
        ping(b)
        ping(a)
        stats = proxy.stats()
        assert stats.accepted - before.accepted == 2
        assert stats.open == 2 and stats.upstream == 2
        assert stats.bytes_up - before.bytes_up == 3 * len(PING)
        assert stats.bytes_down - before.bytes_down == 3 * len(PONG)
        assert connected_clients(redis_proc) == 2
    wait_for(lambda: proxy.stats().open == 0, "the proxy to see both connections end")
    wait_for(lambda: connected_clients(redis_proc) == 0, "redis to see both upstream connections end")


def test_latency_holds_bytes_until_it_is_lifted(proxy: Proxy) -> None:
    with connect(proxy) as sock:
        ping(sock)
        proxy.latency(600)  # far longer than the test: the bytes are held until latency goes off
        sock.sendall(PING)
        assert nothing_arrives(sock)
        assert proxy.stats().bytes_up == len(PING)  # the second PING has not reached redis
        proxy.latency(0)  # queued chunks are released too
        assert read_exactly(sock, len(PONG)) == PONG
        stats = proxy.stats()
        assert (stats.bytes_up, stats.bytes_down, stats.accepted) == (2 * len(PING), 2 * len(PONG), 1)


def test_latency_keeps_order_of_pipelined_commands(proxy: Proxy) -> None:
    with connect(proxy) as sock:
        proxy.latency(0.05)
        for i in range(20):
            sock.sendall(f"ECHO m{i:02d}\r\n".encode())
        replies = read_exactly(sock, 20 * len(b"$3\r\nm00\r\n"))
        assert replies == b"".join(f"$3\r\nm{i:02d}\r\n".encode() for i in range(20))
        proxy.heal()
        ping(sock)


def test_blackhole_holds_both_directions_and_new_connections(proxy: Proxy, redis_proc: RedisProcess) -> None:
    with connect(proxy) as old:
        ping(old)
        proxy.blackhole()
        old.sendall(PING)
        with connect(proxy) as new:  # accepted, but not connected upstream while blackholed
            new.sendall(PING)
            wait_for(lambda: proxy.stats().accepted == 2, "the new connection to be accepted")
            assert nothing_arrives(old)
            assert nothing_arrives(new)
            stats = proxy.stats()
            assert (stats.accepted, stats.upstream, stats.open) == (2, 1, 2)
            assert stats.bytes_up == len(PING)
            assert connected_clients(redis_proc) == 1
            proxy.heal()
            assert read_exactly(old, len(PONG)) == PONG
            assert read_exactly(new, len(PONG)) == PONG
            stats = proxy.stats()
            assert (stats.upstream, stats.bytes_up, stats.bytes_down) == (2, 3 * len(PING), 3 * len(PONG))


def test_blackhole_also_holds_replies_already_on_their_way(proxy: Proxy) -> None:
    with connect(proxy) as sock:
        proxy.latency(600)
        sock.sendall(PING)
        wait_for(lambda: proxy.stats().bytes_up == 0, "the PING to be read")  # it is queued, not sent
        proxy.blackhole()
        proxy.latency(0)  # latency off, but the blackhole still holds it
        assert nothing_arrives(sock)
        assert proxy.stats().bytes_up == 0
        proxy.heal()
        assert read_exactly(sock, len(PONG)) == PONG


def test_reset_all_sends_rst_to_every_client_and_drops_upstream(
    proxy: Proxy, redis_proc: RedisProcess
) -> None:
    socks = [connect(proxy) for _ in range(3)]
    try:
        for sock in socks:
            ping(sock)
        assert proxy.reset_all() == 3
        for sock in socks:
            sock.settimeout(30)
            with pytest.raises(ConnectionResetError):
                sock.sendall(PING)
                sock.recv(16)
        stats = proxy.stats()
        assert (stats.resets, stats.open) == (3, 0)
        wait_for(lambda: connected_clients(redis_proc) == 0, "redis to see the upstream connections end")
    finally:
        for sock in socks:
            sock.close()
    with connect(proxy) as sock:  # not a mode: the next connection is proxied as before
        ping(sock)
    assert proxy.stats().accepted == 4


def test_reset_all_also_resets_connections_held_by_a_blackhole(proxy: Proxy) -> None:
    proxy.blackhole()
    with connect(proxy) as sock:
        wait_for(lambda: proxy.stats().open == 1, "the connection to be accepted")
        assert proxy.reset_all() == 1
        sock.settimeout(30)
        with pytest.raises(ConnectionResetError):
            sock.recv(16)
    proxy.heal()
    assert proxy.stats().upstream == 0


def test_slow_reads_throttle_server_to_client_only(proxy: Proxy, redis_proc: RedisProcess) -> None:
    value = b"x" * 20_000
    with redis_proc.client() as r:
        r.set("big", value)
    reply = b"$20000\r\n" + value + b"\r\n"
    with connect(proxy) as sock:
        ping(sock)
        proxy.slow_reads(2000)  # 10 s for the value: the test sees it part-way, then lifts it
        before = proxy.stats()
        sock.sendall(b"GET big\r\n")
        upstream = len(b"GET big\r\n")
        wait_for(lambda: proxy.stats().bytes_up - before.bytes_up == upstream, "the GET to pass unthrottled")

        def partway() -> bool:
            got = proxy.stats().bytes_down - before.bytes_down
            return 0 < got < len(reply)

        wait_for(partway, "part of the reply to be forwarded")
        assert proxy.stats().bytes_down - before.bytes_down < len(reply)
        proxy.slow_reads(0)
        assert read_exactly(sock, len(reply)) == reply
        ping(sock)


def refused(proxy: Proxy) -> bool:
    """A new connection is reset (at connect, at the first write or at the first read)."""
    try:
        with connect(proxy) as sock:
            sock.sendall(PING)
            return sock.recv(16) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def test_refuse_resets_new_connections_until_healed(proxy: Proxy) -> None:
    with connect(proxy) as old:
        ping(old)
        proxy.refuse()
        assert refused(proxy)
        ping(old)  # open connections are untouched
        stats = proxy.stats()
        assert (stats.refused, stats.resets, stats.accepted) == (1, 1, 2)
        proxy.heal()
        with connect(proxy) as new:
            ping(new)


def test_every_mode_goes_on_and_off_on_one_open_connection(proxy: Proxy) -> None:
    with connect(proxy) as sock:
        for on in (lambda: proxy.latency(0.01), lambda: proxy.slow_reads(100_000), proxy.refuse):
            on()
            ping(sock)
            proxy.heal()
            ping(sock)
        proxy.blackhole()
        sock.sendall(PING)
        assert nothing_arrives(sock)
        proxy.heal()
        assert read_exactly(sock, len(PONG)) == PONG
        assert proxy.stats().accepted == 1


def test_redis_down_behind_the_proxy_resets_the_client(proxy: Proxy, redis_proc: RedisProcess) -> None:
    redis_proc.stop()
    assert refused(proxy)
    assert proxy.stats().upstream == 0


def test_proxies_drive_every_node_and_add_up_counters(redis_factory) -> None:  # type: ignore[no-untyped-def]
    procs = [redis_factory() for _ in range(2)]
    proxies = Proxies(Proxy(p.port).start() for p in procs)
    try:
        socks = [connect(p) for p in proxies]
        for sock in socks:
            ping(sock)
        proxies.blackhole()
        for sock in socks:
            sock.sendall(PING)
        assert all(nothing_arrives(sock) for sock in socks)
        proxies.heal()
        for sock in socks:
            assert read_exactly(sock, len(PONG)) == PONG
        stats = proxies.stats()
        assert (stats.accepted, stats.bytes_up, stats.bytes_down) == (2, 4 * len(PING), 4 * len(PONG))
        assert proxies.reset_all() == 2
        for sock in socks:
            sock.close()
    finally:
        proxies.stop()


def test_cluster_nodes_announce_their_proxies(workdir: Path) -> None:
    cluster = ProxiedCluster(workdir).start()
    try:
        ports = {p.port for p in cluster.proxies}
        for node in cluster.direct():
            with node:
                assert {int(entry[2][1]) for entry in node.execute_command("CLUSTER", "SLOTS")} == ports
                # a key on another node is answered MOVED to that node's proxy
                moved = set()
                for i in range(50):
                    try:
                        node.get(f"k{i}")
                    except Exception as exc:  # redis-py raises ResponseError("MOVED slot host:port")
                        moved.add(int(str(exc).rsplit(":", 1)[1]))
                assert moved and moved <= ports
        before = cluster.proxies.stats()
        with RedisCluster(host="127.0.0.1", port=cluster.proxies[0].port) as rc:
            for i in range(30):
                rc.set(f"k{i}", b"v")
        after = cluster.proxies.stats()
        assert all(p.stats().accepted > 0 for p in cluster.proxies)  # each node reached through its proxy
        assert after.bytes_up > before.bytes_up
    finally:
        cluster.stop()


def test_stop_ends_open_connections(redis_proc: RedisProcess) -> None:
    proxy = Proxy(redis_proc.port).start()
    sock = connect(proxy)
    try:
        ping(sock)
        proxy.blackhole()
        proxy.stop()
        sock.settimeout(30)
        assert sock.recv(16) == b""
    finally:
        sock.close()
