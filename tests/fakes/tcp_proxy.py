"""A loopback TCP proxy whose link a test can cut: a database "going away" and coming back.

proxy = TcpProxy("127.0.0.1", 5432).start()   # 127.0.0.1:<proxy.port> forwards to 5432
proxy.cut()       # open connections are reset; new ones are accepted and closed at once
proxy.restore()   # forwards again
proxy.stop()
"""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    """Forwards 127.0.0.1:<port> to *host*:*port*; one thread pair per connection."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._cut = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []

    def start(self) -> TcpProxy:
        """Accepts in a daemon thread."""
        threading.Thread(target=self._accept, name="tcp-proxy", daemon=True).start()
        return self

    def cut(self) -> None:
        """Resets every open connection; new ones are closed as soon as they are accepted."""
        self._cut.set()
        self._close_all()

    def restore(self) -> None:
        """Forwards new connections again."""
        self._cut.clear()

    def stop(self) -> None:
        """Closes everything."""
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._close_all()

    def _close_all(self) -> None:
        with self._lock:
            socks, self._open = self._open, []
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._cut.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
