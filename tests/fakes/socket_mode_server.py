"""A small local Socket Mode server (RFC 6455 WebSocket), for the real ``SocketModeClient``.

Usage::

    sm = FakeSocketMode().start()         # ws://127.0.0.1:<port>/link
    slack.socket_mode_url = sm.url        # FakeSlack's apps.connections.open answers it
    ...                                   # SocketModeHandler(app, app_token).connect()
    sm.wait_connected()
    env_id = sm.send_envelope("events_api", {...event_callback body...})
    ack = sm.wait_for_ack(env_id)         # {"envelope_id": env_id, ...}
    sm.stop()

What slack_sdk's builtin client does (``slack_sdk/socket_mode/builtin``): a plain (non-TLS) socket
for a port other than 443, ``GET <path>?<query>`` with ``Sec-WebSocket-Key``/``Version: 13``, it
checks ``Sec-WebSocket-Accept``, then pings at once and every ``ping_interval``; it answers pings
with pongs and acks each envelope with a masked text frame ``{"envelope_id": ...}``. Like Slack,
this server sends ``{"type": "hello", ...}`` first, unmasked text frames, and a close frame on stop.
Loopback only, ephemeral port, one thread per connection.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key`` (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode("ascii")).digest()).decode("ascii")


def encode_frame(opcode: int, payload: bytes, mask: bytes | None = None) -> bytes:
    """One final frame; masked with *mask* (4 bytes) when given, as clients must."""
    head = bytes([0x80 | opcode])
    bit = 0x80 if mask is not None else 0
    n = len(payload)
    if n < 126:
        head += bytes([bit | n])
    elif n < 1 << 16:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if mask is None:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class ProtocolError(Exception):
    """The peer broke RFC 6455 (e.g. an unmasked client frame)."""


@dataclass
class _Conn:
    sock: socket.socket
    path: str
    headers: dict[str, str]
    send_lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False

    def send(self, opcode: int, payload: bytes) -> None:
        with self.send_lock:
            if not self.closed:
                self.sock.sendall(encode_frame(opcode, payload))


class FakeSocketMode:
    """A Socket Mode endpoint: sends envelopes, records what the client sends back."""

    def __init__(self, path: str = "/link") -> None:
        self.path = path
        self.received: list[dict[str, Any]] = []  # JSON text frames from clients
        self.pings = 0
        self.pongs = 0
        self.closes_received = 0
        self.errors: list[str] = []
        self.connections: list[_Conn] = []
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self.port = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{self.path}"

    def start(self) -> FakeSocketMode:
        """Listens on 127.0.0.1:<ephemeral> and accepts in a background thread."""
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        t = threading.Thread(target=self._accept_loop, name="fake-socket-mode", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self) -> None:
        """Sends a close frame (1000) to each client, closes every socket, joins the threads."""
        self._stopping.set()
        for conn in self._live():
            with contextlib.suppress(OSError):
                conn.send(OP_CLOSE, struct.pack("!H", 1000) + b"bye")
            self._close(conn)
        if self._listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone does not on Linux.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
        for t in self._threads:
            t.join(5)

    # ------------------------------------------------------------------ driving

    def wait_connected(self, count: int = 1, timeout: float = 5.0) -> None:
        """Blocks until *count* clients completed the handshake (and pinged once)."""
        self._wait(lambda: len(self._live()) >= count and self.pings >= count, timeout)

    def send_envelope(
        self,
        type_: str,
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool = False,
        retry_attempt: int = 0,
    ) -> str:
        """Sends one envelope (``events_api``, ``slash_commands``, ``interactive``) to the newest
        connection; returns its envelope_id."""
        envelope_id = f"env-{next(self._ids):04d}"
        message = {
            "envelope_id": envelope_id,
            "type": type_,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
            "retry_attempt": retry_attempt,
            "retry_reason": "timeout" if retry_attempt else "",
        }
        self.send_json(message)
        return envelope_id

    def send_json(self, message: dict[str, Any]) -> None:
        """One text frame to the newest live connection."""
        live = self._live()
        if not live:
            raise ConnectionError("no Socket Mode client is connected")
        live[-1].send(OP_TEXT, json.dumps(message).encode("utf-8"))

    def wait_for_ack(self, envelope_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """The client's ``{"envelope_id": ...}`` answer (raises TimeoutError if none came)."""
        self._wait(lambda: self.acks(envelope_id) != [], timeout)
        return self.acks(envelope_id)[0]

    def acks(self, envelope_id: str) -> list[dict[str, Any]]:
        """Every message the clients sent back for *envelope_id*."""
        with self._cond:
            return [m for m in self.received if m.get("envelope_id") == envelope_id]

    # ------------------------------------------------------------------ plumbing

    def _live(self) -> list[_Conn]:
        with self._cond:
            return [c for c in self.connections if not c.closed]

    def _wait(self, predicate: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("condition not met on the fake Socket Mode server")
                self._cond.wait(min(left, 0.05))

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(10)
        try:
            conn = self._handshake(sock)
        except (OSError, ProtocolError) as exc:
            self._error(f"handshake: {exc}")
            sock.close()
            return
        if conn is None:
            return
        with self._cond:
            self.connections.append(conn)
            self._cond.notify_all()
        conn.send(
            OP_TEXT,
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": len(self._live()),
                    "debug_info": {"host": "fake-socket-mode", "approximate_connection_time": 3600},
                    "connection_info": {"app_id": "A1"},
                }
            ).encode("utf-8"),
        )
        sock.settimeout(None)
        try:
            self._read_loop(conn)
        except (OSError, ProtocolError) as exc:
            if not conn.closed:
                self._error(str(exc))
        finally:
            self._close(conn)

    def _handshake(self, sock: socket.socket) -> _Conn | None:
        raw = b""
        while b"\r\n\r\n" not in raw:
            chunk = sock.recv(1024)
            if not chunk:
                raise ProtocolError("closed during the handshake")
            raw += chunk
            if len(raw) > 16384:
                raise ProtocolError("handshake too long")
        head = raw.split(b"\r\n\r\n", 1)[0].decode("utf-8")
        request_line, *lines = head.split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        method, target, _ = request_line.split(" ", 2)
        path = target.split("?", 1)[0]
        ok = (
            method == "GET"
            and path == self.path
            and headers.get("upgrade", "").lower() == "websocket"
            and "upgrade" in headers.get("connection", "").lower()
            and headers.get("sec-websocket-version") == "13"
            and headers.get("sec-websocket-key")
        )
        if not ok:
            sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            sock.close()
            self._error(f"bad handshake: {request_line}")
            return None
        sock.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\n"
                "Upgrade: websocket\r\n"
                "Connection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept_key(headers['sec-websocket-key'])}\r\n\r\n"
            ).encode("ascii")
        )
        return _Conn(sock, target, headers)

    def _recv_exact(self, sock: socket.socket, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("peer closed")
            buf += chunk
        return buf

    def _read_frame(self, sock: socket.socket) -> tuple[bool, int, bytes]:
        b1, b2 = self._recv_exact(sock, 2)
        fin, opcode = bool(b1 & 0x80), b1 & 0x0F
        if not b2 & 0x80:
            raise ProtocolError("unmasked client frame")
        n = b2 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._recv_exact(sock, 2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._recv_exact(sock, 8))[0]
        mask = self._recv_exact(sock, 4)
        data = self._recv_exact(sock, n)
        return fin, opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(data))

    def _read_loop(self, conn: _Conn) -> None:
        message = b""
        message_op: int | None = None
        while not conn.closed:
            fin, opcode, data = self._read_frame(conn.sock)
            if opcode == OP_PING:
                conn.send(OP_PONG, data)
                with self._cond:
                    self.pings += 1
                    self._cond.notify_all()
            elif opcode == OP_PONG:
                with self._cond:
                    self.pongs += 1
                    self._cond.notify_all()
            elif opcode == OP_CLOSE:
                with self._cond:
                    self.closes_received += 1
                conn.send(OP_CLOSE, data[:2])
                return
            elif opcode in (OP_TEXT, OP_BINARY, OP_CONT):
                if opcode != OP_CONT:
                    message_op, message = opcode, b""
                message += data
                if fin and message_op == OP_TEXT:
                    self._record(message.decode("utf-8"))
            else:
                raise ProtocolError(f"unknown opcode {opcode}")

    def _record(self, text: str) -> None:
        try:
            value = json.loads(text)
        except ValueError:
            value = {"raw": text}
        with self._cond:
            self.received.append(value if isinstance(value, dict) else {"raw": value})
            self._cond.notify_all()

    def _close(self, conn: _Conn) -> None:
        with conn.send_lock:
            if conn.closed:
                return
            conn.closed = True
        with contextlib.suppress(OSError):
            conn.sock.shutdown(socket.SHUT_RDWR)
        conn.sock.close()
        with self._cond:
            self._cond.notify_all()

    def _error(self, text: str) -> None:
        with self._cond:
            self.errors.append(text)
