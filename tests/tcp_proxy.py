"""A loopback TCP proxy a test can cut and restore: a database that goes away for real.

Both ends of a connection see it end, whichever way it ends (a cut, or one end closing):
a peer that is not told keeps its side open, and PostgreSQL keeps a session idle in its
transaction, holding the rows it inserted. Sockets are only shut down by the thread
that notices the end (shutdown() wakes a recv() blocked in another thread, and sends the
FIN; close() there would do neither), and closed by the second pump of the pair to stop,
so no thread uses a file descriptor number another may have reused.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self._listener: socket.socket | None = None
        self._pairs: list[_Pair] = []
        self._lock = threading.Lock()
        self._generation = 0  # a cut starts a new one: what was accepted before it ends
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = int(probe.getsockname()[1])
        probe.close()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        with self._lock:
            generation = self._generation
        threading.Thread(target=self._accept, args=(listener, generation), daemon=True).start()

    def cut(self) -> None:
        """Refuse new connections and end every open one, for both of its ends."""
        if self._listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone would leave the
            # socket listening (and the port taken) until that accept returned.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            self._generation += 1
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            pair.shut()

    def restore(self) -> None:
        self.start()

    def _accept(self, listener: socket.socket, generation: int) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            pair = _Pair(client, upstream)
            with self._lock:
                if generation != self._generation:  # accepted as a cut happened: ends too
                    pair.shut()
                    pair.close()
                    return
                self._pairs.append(pair)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=pair.pump, args=(source, sink), daemon=True).start()


class _Pair:
    """A client's connection and the proxy's to the target, and their two pumps."""

    def __init__(self, client: socket.socket, upstream: socket.socket):
        self.sockets = (client, upstream)
        self._lock = threading.Lock()
        self._running = 2

    def pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            self.shut()
            with self._lock:
                self._running -= 1
                last = self._running == 0
            if last:
                self.close()

    def shut(self) -> None:
        for conn in self.sockets:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        for conn in self.sockets:
            conn.close()
