"""A small local fake of the Slack Web API, for running the real ``slack_sdk.WebClient`` in tests.

Usage::

    fake = FakeSlack().start()            # base_url ends in "/api/"
    client = WebClient(token=fake.token, base_url=fake.base_url)
    ...
    fake.calls_to("chat.postMessage")     # -> list of params dicts
    fake.stop()

Loopback only, ephemeral port, threaded, thread-safe.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlparse

Params = dict[str, Any]
# What calls to a response_url (see ``FakeSlack.response_url``) are recorded as.
RESPONSE_URL = "response_url"
# Methods called with the app-level token (xapp-...), not the bot token.
_APP_TOKEN_METHODS = frozenset({"apps.connections.open"})


@dataclass
class _Message:
    channel: str
    ts: str
    text: str
    user: str
    thread_ts: str | None = None
    bot_id: str | None = None
    blocks: list[Any] | None = None
    reactions: dict[str, list[str]] = field(default_factory=dict)
    metadata: dict[str, Any] | None = None
    files: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self, include_metadata: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "message", "ts": self.ts, "text": self.text}
        if self.files:
            out["files"] = [dict(f) for f in self.files]
        if include_metadata and self.metadata is not None:
            out["metadata"] = self.metadata
        if self.user:
            out["user"] = self.user
        if self.thread_ts:
            out["thread_ts"] = self.thread_ts
        if self.bot_id:
            out["bot_id"] = self.bot_id
        if self.blocks is not None:
            out["blocks"] = self.blocks
        if self.reactions:
            out["reactions"] = [
                {"name": n, "users": list(u), "count": len(u)} for n, u in self.reactions.items()
            ]
        return out


class FakeSlack:
    """Emulates the Slack Web API methods the bot uses; records every call."""

    def __init__(
        self,
        token: str = "xoxb-test-token",
        bot_user_id: str = "UBOT",
        bot_id: str = "BBOT",
        team_id: str = "T1",
        app_token: str = "xapp-test-token",
    ) -> None:
        self.token = token
        self.app_token = app_token
        # What apps.connections.open answers (a FakeSocketMode URL); None -> an error.
        self.socket_mode_url: str | None = None
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.team_id = team_id
        self.calls: list[tuple[str, Params]] = []
        self.channels: dict[str, dict[str, Any]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.usergroups: dict[str, list[str]] = {}
        self.homes: dict[str, list[Any]] = {}  # user -> the blocks views.publish last showed
        self.messages: dict[tuple[str, str], _Message] = {}
        self.views: dict[str, dict[str, Any]] = {}  # open modals by view id, as last set
        self.file_data: dict[str, bytes] = {}
        self.file_downloads: list[tuple[str, bool]] = []  # (file id, had the bot token)
        self._lock = threading.RLock()
        self._rate_limits: dict[str, tuple[int, int]] = {}
        self._trickles: dict[str, tuple[int, float]] = {}
        self._errors: dict[str, list[str]] = {}
        self._ts = itertools.count(1)
        self._base_ts = int(time.time())
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._call_event = threading.Condition(self._lock)
        self.base_url = ""

    # ------------------------------------------------------------------ seeding

    def add_channel(self, channel: str, name: str | None = None, is_private: bool = False) -> None:
        """Declares a channel (unknown channels are public, named after their id)."""
        with self._lock:
            self.channels[channel] = {
                "id": channel,
                "name": name or channel.lower(),
                "is_private": is_private,
                "is_channel": not is_private,
                "is_group": is_private,
                "is_member": True,
            }

    def set_private(self, channel: str, is_private: bool = True) -> None:
        """Marks a channel private (or public)."""
        with self._lock:
            if channel not in self.channels:
                self.add_channel(channel, is_private=is_private)
            else:
                self.channels[channel]["is_private"] = is_private
                self.channels[channel]["is_channel"] = not is_private
                self.channels[channel]["is_group"] = is_private

    def set_shared(self, channel: str, shared: bool = True) -> None:
        """Makes a channel a Slack Connect channel (``is_ext_shared``, ``is_shared``)."""
        with self._lock:
            if channel not in self.channels:
                self.add_channel(channel)
            self.channels[channel]["is_ext_shared"] = shared
            self.channels[channel]["is_shared"] = shared

    def add_user(
        self,
        user: str,
        email: str | None = None,
        name: str | None = None,
        is_bot: bool = False,
        team_id: str | None = None,
    ) -> None:
        """Declares a user (unknown users get a generated profile); *team_id* other than the
        fake's own makes them someone from another organisation (Slack Connect)."""
        with self._lock:
            self.users[user] = {
                "id": user,
                "team_id": team_id or self.team_id,
                "name": name or user.lower(),
                "real_name": name or user,
                "is_bot": is_bot,
                "profile": {
                    "email": email,
                    "real_name": name or user,
                    "display_name": name or user.lower(),
                },
            }

    def add_usergroup(self, group: str, users: list[str]) -> None:
        """Declares a user group and its members."""
        with self._lock:
            self.usergroups[group] = list(users)

    def add_message(
        self,
        channel: str,
        ts: str,
        text: str,
        user: str = "U1",
        thread_ts: str | None = None,
        bot_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Seeds a message served by conversations.history / conversations.replies."""
        with self._lock:
            self.messages[(channel, ts)] = _Message(
                channel, ts, text, user, thread_ts, bot_id, metadata=metadata
            )

    def add_file(
        self,
        channel: str,
        ts: str,
        name: str,
        data: bytes,
        mimetype: str = "image/png",
        shared_in: list[str] | None = None,
    ) -> dict[str, Any]:
        """Shares a file with the seeded message (*channel*, *ts*): listed in its ``files`` by
        conversations.history/replies, downloadable at ``url_private_download`` with the bot
        token (``file_downloads`` counts the downloads). Returns the file object."""
        with self._lock:
            file_id = f"F{len(self.file_data) + 1:07d}"
            host = self.base_url.removesuffix("/api/")
            quoted = quote(name)  # Slack's file URLs are percent-encoded
            obj = {
                "id": file_id,
                "name": name,
                "title": name,
                "mimetype": mimetype,
                "filetype": name.rsplit(".", 1)[-1],
                "size": len(data),
                "mode": "hosted",
                "url_private": f"{host}/files-pri/T1-{file_id}/{quoted}",
                "url_private_download": f"{host}/files-pri/T1-{file_id}/download/{quoted}",
                "channels": shared_in if shared_in is not None else [channel],
            }
            self.file_data[file_id] = data
            self.messages[(channel, ts)].files.append(obj)
            return obj

    def _serve_file(self, req: BaseHTTPRequestHandler, path: str) -> None:
        auth = req.headers.get("Authorization", "")
        file_id = path.split("/")[2].rsplit("-", 1)[-1] if path.count("/") >= 3 else ""
        with self._lock:
            data = self.file_data.get(file_id)
            self.file_downloads.append((file_id, auth == f"Bearer {self.token}"))
        if auth != f"Bearer {self.token}" or data is None:
            # What Slack does without a token that may read files: its sign-in page.
            body, ctype = b"<html>sign in</html>", "text/html"
        else:
            body, ctype = data, "application/octet-stream"
        req.send_response(200)
        req.send_header("Content-Type", ctype)
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)

    # ------------------------------------------------------------------ failure injection

    def rate_limit_next(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """The next *times* calls to *method* answer HTTP 429 with ``Retry-After``."""
        with self._lock:
            self._rate_limits[method] = (times, retry_after)

    def trickle_next(self, method: str, times: int = 1, interval: float = 0.5) -> None:
        """The next *times* answers to *method* send their body one byte every *interval* s (a
        slow edge: every read gets a byte, so only a total deadline ends the call)."""
        with self._lock:
            self._trickles[method] = (times, interval)

    def fail_next(self, method: str, error: str, times: int = 1) -> None:
        """The next *times* calls to *method* answer ``{"ok": false, "error": error}``."""
        with self._lock:
            self._errors.setdefault(method, []).extend([error] * times)

    # ------------------------------------------------------------------ inspection

    def calls_to(self, method: str) -> list[Params]:
        """Params of every call to *method*, in order."""
        with self._lock:
            return [p for m, p in self.calls if m == method]

    def wait_for(self, method: str, count: int = 1, timeout: float = 10.0) -> list[Params]:
        """Blocks until *method* was called at least *count* times (or *timeout*); returns calls."""
        deadline = time.monotonic() + timeout
        with self._call_event:
            while len(self.calls_to(method)) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._call_event.wait(left)
            return self.calls_to(method)

    def thread_replies(self, channel: str, thread_ts: str) -> list[Params]:
        """chat.postMessage calls made into one thread."""
        return [
            p
            for p in self.calls_to("chat.postMessage")
            if p.get("channel") == channel and p.get("thread_ts") == thread_ts
        ]

    def response_url(self, name: str = "1") -> str:
        """A response_url served here: what is POSTed to it is recorded as ``RESPONSE_URL``."""
        return self.base_url.replace("/api/", f"/respond/{name}")

    def reset_calls(self) -> None:
        with self._lock:
            self.calls.clear()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> str:
        """Starts serving on 127.0.0.1:<ephemeral>; returns the base URL (ends in "/api/")."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                fake._handle(self, body=b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                fake._handle(self, body=self.rfile.read(length) if length else b"")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{port}/api/"
        return self.base_url

    def stop(self) -> None:
        """Stops the server."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeSlack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ plumbing

    def _next_ts(self) -> str:
        return f"{self._base_ts + next(self._ts)}.{next(self._ts):06d}"

    def _handle(self, req: BaseHTTPRequestHandler, body: bytes) -> None:
        url = urlparse(req.path)
        if url.path.startswith("/files-pri/"):
            self._serve_file(req, url.path)
            return
        method = url.path.rsplit("/", 1)[-1]
        params: Params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        ctype = req.headers.get("Content-Type", "")
        if body:
            if "json" in ctype:
                params.update(json.loads(body.decode("utf-8")))
            else:
                params.update({k: v[-1] for k, v in parse_qs(body.decode("utf-8")).items()})
        for key in ("blocks", "attachments", "view", "metadata"):
            if isinstance(params.get(key), str):
                with contextlib.suppress(ValueError):
                    params[key] = json.loads(params[key])
        auth = req.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() or params.get("token", "")
        if url.path.startswith("/respond/"):
            # A response_url (slash commands, shortcuts): no token, recorded as "response_url".
            method, token = RESPONSE_URL, self.token

        status = 200
        headers: dict[str, str] = {}
        with self._call_event:
            self.calls.append((method, params))
            self._call_event.notify_all()
            limited = self._rate_limits.get(method)
            trickle = self._trickles.get(method)
            interval = 0.0
            if trickle and trickle[0] > 0:
                self._trickles[method] = (trickle[0] - 1, trickle[1])
                interval = trickle[1]
            err = self._errors.get(method)
            if limited and limited[0] > 0:
                left, retry_after = limited
                self._rate_limits[method] = (left - 1, retry_after)
                status = 429
                headers["Retry-After"] = str(retry_after)
                payload: dict[str, Any] = {"ok": False, "error": "ratelimited"}
            elif token != (self.app_token if method in _APP_TOKEN_METHODS else self.token):
                payload = {"ok": False, "error": "invalid_auth"}
            elif err:
                payload = {"ok": False, "error": err.pop(0)}
            else:
                handler = self._methods().get(method)
                if handler is None:
                    payload = {"ok": False, "error": "unknown_method"}
                else:
                    payload = handler(params)
        data = json.dumps(payload).encode("utf-8")
        req.send_response(status)
        req.send_header("Content-Type", "application/json; charset=utf-8")
        req.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            req.send_header(k, v)
        req.end_headers()
        if not interval:
            req.wfile.write(data)
            return
        try:
            for i in range(len(data)):
                req.wfile.write(data[i : i + 1])
                req.wfile.flush()
                time.sleep(interval)
        except OSError:
            pass  # the client gave up (its deadline): what this failure injection is for

    def _methods(self) -> dict[str, Callable[[Params], dict[str, Any]]]:
        return {
            "apps.connections.open": self._connections_open,
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            RESPONSE_URL: lambda p: {"ok": True},
            "chat.postEphemeral": self._ephemeral,
            "chat.getPermalink": self._permalink,
            "conversations.info": self._conv_info,
            "conversations.list": self._conv_list,
            "conversations.history": self._history,
            "conversations.replies": self._replies,
            "reactions.add": self._reactions_add,
            "reactions.get": self._reactions_get,
            "users.info": self._users_info,
            "usergroups.users.list": self._usergroup_users,
            "views.open": self._views_open,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
        }

    def _auth_test(self, p: Params) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://example.slack.com/",
            "team": "Example",
            "user": "ideabot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
        }

    def _connections_open(self, p: Params) -> dict[str, Any]:
        if self.socket_mode_url is None:
            return {"ok": False, "error": "not_allowed_token_type"}
        return {"ok": True, "url": self.socket_mode_url}

    def _post_message(self, p: Params) -> dict[str, Any]:
        channel = str(p.get("channel", ""))
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        ts = self._next_ts()
        msg = _Message(
            channel, ts, str(p.get("text", "")), self.bot_user_id, p.get("thread_ts"), self.bot_id
        )
        msg.blocks = p.get("blocks") if isinstance(p.get("blocks"), list) else None
        meta = p.get("metadata")
        if meta is not None and not _metadata_ok(meta):
            return {"ok": False, "error": "invalid_metadata_format"}
        if isinstance(meta, dict) and meta.get("event_type"):
            msg.metadata = {
                "event_type": meta["event_type"],
                "event_payload": meta.get("event_payload") or {},
            }
        self.messages[(channel, ts)] = msg
        return {"ok": True, "channel": channel, "ts": ts, "message": msg.as_json()}

    def _update(self, p: Params) -> dict[str, Any]:
        key = (str(p.get("channel")), str(p.get("ts")))
        msg = self.messages.get(key)
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        msg.text = str(p.get("text", msg.text))
        if isinstance(p.get("blocks"), list):
            msg.blocks = p["blocks"]
        return {"ok": True, "channel": key[0], "ts": key[1], "text": msg.text}

    def _ephemeral(self, p: Params) -> dict[str, Any]:
        if not p.get("channel") or not p.get("user"):
            return {"ok": False, "error": "invalid_arguments"}
        return {"ok": True, "message_ts": self._next_ts()}

    def _permalink(self, p: Params) -> dict[str, Any]:
        channel, ts = str(p.get("channel")), str(p.get("message_ts"))
        return {
            "ok": True,
            "channel": channel,
            "permalink": f"https://example.slack.com/archives/{channel}/p{ts.replace('.', '')}",
        }

    def _channel(self, channel: str) -> dict[str, Any]:
        if channel not in self.channels:
            self.add_channel(channel)
        return dict(self.channels[channel])

    def _conv_info(self, p: Params) -> dict[str, Any]:
        channel = str(p.get("channel", ""))
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        return {"ok": True, "channel": self._channel(channel)}

    def _conv_list(self, p: Params) -> dict[str, Any]:
        return {
            "ok": True,
            "channels": [dict(c) for c in self.channels.values()],
            "response_metadata": {"next_cursor": ""},
        }

    def _select(self, channel: str, latest: str | None, thread: str | None) -> list[_Message]:
        msgs = [m for (c, _), m in self.messages.items() if c == channel]
        if thread is not None:
            msgs = [m for m in msgs if m.ts == thread or m.thread_ts == thread]
        else:
            msgs = [m for m in msgs if m.thread_ts in (None, m.ts)]
        return sorted(msgs, key=lambda m: float(m.ts))

    def _history(self, p: Params) -> dict[str, Any]:
        channel = str(p.get("channel", ""))
        msgs = list(reversed(self._select(channel, None, None)))  # newest first, like Slack
        latest, oldest = p.get("latest"), p.get("oldest")
        inclusive = str(p.get("inclusive", "")).lower() in ("1", "true")
        if latest:
            msgs = [
                m for m in msgs if float(m.ts) < float(latest) or (inclusive and m.ts == latest)
            ]
        if oldest:
            msgs = [
                m for m in msgs if float(m.ts) > float(oldest) or (inclusive and m.ts == oldest)
            ]
        limit = int(p.get("limit") or 100)
        with_meta = str(p.get("include_all_metadata", "")).lower() in ("1", "true")
        return {
            "ok": True,
            "messages": [m.as_json(with_meta) for m in msgs[:limit]],
            "has_more": len(msgs) > limit,
        }

    def _replies(self, p: Params) -> dict[str, Any]:
        channel, ts = str(p.get("channel", "")), str(p.get("ts", ""))
        msgs = self._select(channel, None, ts)
        if not msgs:
            # Slack answers replies for a non-thread reply ts with that one message
            one = self.messages.get((channel, ts))
            if one is None:
                return {"ok": False, "error": "thread_not_found"}
            msgs = [one]
        latest = p.get("latest")
        inclusive = str(p.get("inclusive", "")).lower() in ("1", "true")
        if latest:
            msgs = [
                m for m in msgs if float(m.ts) < float(latest) or (inclusive and m.ts == latest)
            ]
        limit = int(p.get("limit") or 100)
        with_meta = str(p.get("include_all_metadata", "")).lower() in ("1", "true")
        # Pages as Slack's: the cursor (here an offset) of the next page while there is one.
        start = int(p.get("cursor") or 0)
        page, end = msgs[start : start + limit], start + limit
        return {
            "ok": True,
            "messages": [m.as_json(with_meta) for m in page],
            "has_more": end < len(msgs),
            "response_metadata": {"next_cursor": str(end) if end < len(msgs) else ""},
        }

    def _reactions_add(self, p: Params) -> dict[str, Any]:
        key = (str(p.get("channel")), str(p.get("timestamp")))
        msg = self.messages.get(key)
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        users = msg.reactions.setdefault(str(p.get("name")), [])
        if self.bot_user_id in users:
            return {"ok": False, "error": "already_reacted"}
        users.append(self.bot_user_id)
        return {"ok": True}

    def _reactions_get(self, p: Params) -> dict[str, Any]:
        key = (str(p.get("channel")), str(p.get("timestamp")))
        msg = self.messages.get(key)
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        return {"ok": True, "type": "message", "channel": key[0], "message": msg.as_json()}

    def _users_info(self, p: Params) -> dict[str, Any]:
        user = str(p.get("user", ""))
        if user not in self.users:
            self.add_user(user, email=f"{user.lower()}@example.com")
        return {"ok": True, "user": self.users[user]}

    def _usergroup_users(self, p: Params) -> dict[str, Any]:
        group = str(p.get("usergroup", ""))
        if group not in self.usergroups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(self.usergroups[group])}

    def _views_open(self, p: Params) -> dict[str, Any]:
        if not p.get("trigger_id"):
            return {"ok": False, "error": "invalid_arguments"}
        return self._store_view(f"V{next(self._ts)}", p.get("view"))

    def _views_update(self, p: Params) -> dict[str, Any]:
        view_id = str(p.get("view_id") or "")
        if view_id not in self.views:
            return {"ok": False, "error": "not_found"}
        if p.get("hash") and p["hash"] != self.views[view_id].get("hash"):
            return {"ok": False, "error": "hash_conflict"}
        return self._store_view(view_id, p.get("view"))

    def _store_view(self, view_id: str, view: Any) -> dict[str, Any]:
        # Slack's modal limits: a title of 24 characters, 100 blocks, labels of 2,000.
        if not isinstance(view, dict) or view.get("type") != "modal":
            return {"ok": False, "error": "invalid_arguments"}
        blocks = view.get("blocks") or []
        title = (view.get("title") or {}).get("text", "")
        labels = [(b.get("label") or {}).get("text", "") for b in blocks if isinstance(b, dict)]
        if len(blocks) > 100 or len(title) > 24 or any(len(x) > 2000 for x in labels):
            return {"ok": False, "error": "invalid_arguments"}
        stored = {**view, "id": view_id, "hash": f"h{next(self._ts)}"}
        self.views[view_id] = stored
        return {"ok": True, "view": stored}

    def _views_publish(self, p: Params) -> dict[str, Any]:
        # Slack's own checks on a Home tab: a user, a home view, at most 100 blocks.
        view = p.get("view")
        if isinstance(view, str):
            view = json.loads(view)
        if not p.get("user_id"):
            return {"ok": False, "error": "invalid_arguments"}
        if not isinstance(view, dict) or view.get("type") != "home":
            return {"ok": False, "error": "invalid_arguments"}
        blocks = view.get("blocks")
        if not isinstance(blocks, list) or len(blocks) > 100:
            return {"ok": False, "error": "invalid_blocks"}
        with self._lock:
            self.homes[str(p["user_id"])] = blocks
        return {"ok": True, "view": {"id": f"V{next(self._ts)}", "type": "home", "blocks": blocks}}


_SCALARS = (str, int, float, bool)


def _metadata_ok(meta: Any) -> bool:
    """Slack's message metadata rules: an alphanumeric-ish ``event_type`` and an
    ``event_payload`` whose values are scalars, objects of scalars or lists of such objects
    (no null, nothing deeper)."""

    def flat(obj: Any) -> bool:
        return isinstance(obj, dict) and all(isinstance(v, _SCALARS) for v in obj.values())

    if not isinstance(meta, dict) or not isinstance(meta.get("event_type"), str):
        return False
    payload = meta.get("event_payload", {})
    if not isinstance(payload, dict):
        return False
    for value in payload.values():
        if isinstance(value, _SCALARS) or flat(value):
            continue
        if isinstance(value, list) and all(flat(v) for v in value):
            continue
        return False
    return True
