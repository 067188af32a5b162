"""A deadline for a blocking network call: a timer shuts the call's sockets down when it passes.

A socket timeout bounds each read, not the call: a server sending a byte a second never trips
it. ``shutdown()`` wakes a read blocked in another thread (``close()`` would not), so the timer
thread can end the call; the caller then asks ``fired`` whether that is what happened.
"""

from __future__ import annotations

import contextlib
import socket
import threading


def shutdown_socket(sock: socket.socket) -> None:
    """Ends every read and write on *sock*, from any thread. The plain socket method, as
    ``SSLSocket.shutdown()`` also drops its TLS state under a blocked read."""
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class Watchdog:
    """Shuts down the sockets of one call when :meth:`fire` runs (from a timer thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._armed = True
        self.fired = False

    def watch(self, sock: socket.socket) -> None:
        """Adds a socket the call opened; shut at once if the deadline already passed."""
        with self._lock:
            self._sockets.append(sock)
            if self.fired:
                shutdown_socket(sock)

    def fire(self) -> None:
        """The deadline passed: shut every watched socket (unless the call was disarmed)."""
        with self._lock:
            if not self._armed:
                return
            self._armed = False
            self.fired = True
            for sock in self._sockets:
                shutdown_socket(sock)

    def disarm(self) -> bool:
        """Stops the watchdog; False if it had fired already."""
        with self._lock:
            self._armed = False
            return not self.fired
