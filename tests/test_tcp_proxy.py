"""The proxy the outage tests cut: whichever end goes away, the other end sees it go.

A peer that is never told keeps its side open: PostgreSQL keeps a session idle in its
transaction, holding the request-log rows it inserted, and the loader's retry of those
rows waits on their locks for ever (the outage test failed this way about one run in
ten)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from tcp_proxy import TcpProxy


@pytest.fixture
def server() -> Iterator[tuple[socket.socket, list[socket.socket]]]:
    """A listener on loopback and the connections it accepted."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield listener, accepted
    listener.close()
    for conn in accepted:
        conn.close()


def _through(proxy: TcpProxy, accepted: list[socket.socket]) -> tuple[socket.socket, socket.socket]:
    before = len(accepted)
    client = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    client.sendall(b"ping")
    for _ in range(500):
        if len(accepted) > before:
            break
        threading.Event().wait(0.01)
    upstream = accepted[-1]
    upstream.settimeout(5)
    assert upstream.recv(4) == b"ping"
    return client, upstream


def test_the_server_sees_a_client_that_closed(
    server: tuple[socket.socket, list[socket.socket]],
) -> None:
    listener, accepted = server
    proxy = TcpProxy("127.0.0.1", listener.getsockname()[1])
    proxy.start()
    try:
        client, upstream = _through(proxy, accepted)
        client.close()  # the pump towards the client is blocked in recv() on the server's side
        assert upstream.recv(1) == b""  # end of stream, not a timeout
    finally:
        proxy.cut()


def test_a_cut_ends_both_sides(server: tuple[socket.socket, list[socket.socket]]) -> None:
    listener, accepted = server
    proxy = TcpProxy("127.0.0.1", listener.getsockname()[1])
    proxy.start()
    client, upstream = _through(proxy, accepted)
    proxy.cut()
    client.settimeout(5)
    assert upstream.recv(1) == b""
    assert client.recv(1) == b""
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    proxy.restore()
    again, upstream_again = _through(proxy, accepted)
    again.close()
    assert upstream_again.recv(1) == b""
    proxy.cut()
