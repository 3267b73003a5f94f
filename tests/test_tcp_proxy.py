"""The proxy the outage tests cut: whichever end goes away, the other end sees it go.

A peer that is never told keeps its side open: PostgreSQL keeps a session idle in its
transaction, holding the request-log rows it inserted, and the loader's retry of those
rows waits on their locks for ever (the outage test failed this way about one run in
ten)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tcp_proxy import TcpProxy


class Proxied:
    """A server on loopback behind a `TcpProxy`; `connect` makes a connection through it
    and returns both of its ends. Every socket is closed at the end of the test."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.accepted: list[socket.socket] = []
        self.clients: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()
        self.proxy = TcpProxy("127.0.0.1", self.listener.getsockname()[1])
        self.proxy.start()

    def _accept(self) -> None:
        while True:
            try:
                self.accepted.append(self.listener.accept()[0])
            except OSError:
                return

    def connect(self) -> tuple[socket.socket, socket.socket]:
        before = len(self.accepted)
        client = socket.create_connection(("127.0.0.1", self.proxy.port), timeout=5)
        self.clients.append(client)
        client.sendall(b"ping")
        deadline = time.monotonic() + 5
        while len(self.accepted) == before:
            assert time.monotonic() < deadline, "the proxy did not connect to the server"
            time.sleep(0.01)
        upstream = self.accepted[-1]
        upstream.settimeout(5)
        assert upstream.recv(4) == b"ping"
        return client, upstream

    def close(self) -> None:
        self.proxy.cut()
        self.listener.close()
        for conn in self.accepted + self.clients:
            conn.close()


@pytest.fixture
def proxied() -> Iterator[Proxied]:
    setup = Proxied()
    yield setup
    setup.close()


def test_the_server_sees_a_client_that_closed(proxied: Proxied) -> None:
    client, upstream = proxied.connect()
    client.close()  # the pump towards the client is blocked in recv() on the server's side
    assert upstream.recv(1) == b""  # end of stream, not a timeout


def test_a_cut_ends_both_sides_and_a_restore_serves_again(proxied: Proxied) -> None:
    client, upstream = proxied.connect()
    proxied.proxy.cut()
    client.settimeout(5)
    assert upstream.recv(1) == b""
    assert client.recv(1) == b""
    with pytest.raises(OSError):
        proxied.clients.append(socket.create_connection(("127.0.0.1", proxied.proxy.port), 5))
    proxied.proxy.restore()
    again, upstream_again = proxied.connect()
    again.close()
    assert upstream_again.recv(1) == b""
