"""A tiny RESP server on 127.0.0.1 that answers every command with one error reply.

It stands for a Redis in a state Coord must survive (``-LOADING ...`` after a restart, ``-READONLY
...`` during a failover...) deterministically, without restarting a real server at the right moment.
"""

from __future__ import annotations

import contextlib
import socket
import threading

import hiredis


class FakeResp:
    """Answers each command it reads with ``-{error}\\r\\n``; ``error`` may change while it runs."""

    def __init__(self, error: str) -> None:
        self.error = error
        self.commands = 0  # how many commands were answered, over every connection
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="fake-resp", daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:  # closed by stop()
                return
            with self._lock:
                self._connections.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        reader = hiredis.Reader()
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                reader.feed(data)
                answers = b""
                while reader.gets() is not False:  # one complete command parsed
                    answers += f"-{self.error}\r\n".encode()
                    with self._lock:
                        self.commands += 1
                try:
                    conn.sendall(answers)
                except OSError:
                    return

    def stop(self) -> None:
        self._listener.close()
        with self._lock:
            for conn in self._connections:
                with contextlib.suppress(OSError):  # already closed by its peer
                    conn.shutdown(socket.SHUT_RDWR)
