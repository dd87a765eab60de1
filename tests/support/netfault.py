"""A network fault injector for tests: a loopback TCP relay the test can cut and restore.

A station whose agent connects through a :class:`TcpRelay` loses its network — and only its
network — when the test calls :meth:`TcpRelay.cut`: every relayed connection is closed on both
sides and new connections are closed as soon as they are accepted, while the broker stays up
for everyone else. :meth:`TcpRelay.restore` lets connections through again. This models a
station's Wi-Fi dropping (the agent sees its connection fail and its reconnects refused), not
a mock of anything: the bytes relayed are the real MQTT session between the real agent and
the real broker.

Bounded: at most ``max_connections`` live connections, threads that stop on :meth:`close`.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.support.mosquitto import free_port


class TcpRelay:
    """Relays ``127.0.0.1:port`` to ``127.0.0.1:target_port`` until cut."""

    def __init__(self, target_port: int, *, max_connections: int = 16) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.max_connections = max_connections
        self.accepted = 0   # connections relayed to the target
        self.refused = 0    # connections closed at once (cut, target down, or too many)
        self.cuts = 0
        self._cut = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._live: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.2)
        self._thread = threading.Thread(target=self._accept_loop, name="tcp-relay",
                                        daemon=True)
        self._thread.start()

    @property
    def is_cut(self) -> bool:
        return self._cut.is_set()

    def cut(self) -> None:
        """Drop the link: close every relayed connection; refuse new ones until restored."""
        self._cut.set()
        self.cuts += 1
        self._close_live()

    def restore(self) -> None:
        self._cut.clear()

    def close(self) -> None:
        self._closed.set()
        self._close_live()
        self._listener.close()
        self._thread.join(timeout=5)

    # -- internals ---------------------------------------------------------------------------
    def _close_live(self) -> None:
        with self._lock:
            live, self._live = self._live, set()
        for sock in live:
            _shut(sock)

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _addr = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = None
            if not self._cut.is_set() and len(self._live) < 2 * self.max_connections:
                try:
                    upstream = socket.create_connection(("127.0.0.1", self.target_port),
                                                        timeout=2)
                    upstream.settimeout(None)
                except OSError:
                    upstream = None
            if upstream is None:
                self.refused += 1
                _shut(client)
                continue
            self.accepted += 1
            with self._lock:
                self._live |= {client, upstream}
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), name="tcp-relay-pump",
                                 daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        """Copy one direction until either side closes; then close both."""
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._live -= {src, dst}
            _shut(src)
            _shut(dst)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
