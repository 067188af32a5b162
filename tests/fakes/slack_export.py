"""Slack workspace exports for tests, written in Slack's documented layout.

``ExportBuilder`` collects channels, users and messages and writes the zip: ``channels.json``,
``groups.json`` (private channels), ``users.json`` and ``<channel name>/<YYYY-MM-DD>.json``
(each day's messages, oldest first).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass
class ExportBuilder:
    channels: list[dict[str, Any]] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)
    users: list[dict[str, Any]] = field(default_factory=list)
    # (channel name, day) -> messages
    days: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    _ids: dict[str, str] = field(default_factory=dict)  # channel id -> name

    def channel(self, cid: str, name: str, private: bool = False) -> ExportBuilder:
        (self.groups if private else self.channels).append(
            {"id": cid, "name": name, "created": 1600000000, "members": []}
        )
        self._ids[cid] = name
        return self

    def user(
        self, uid: str, name: str, is_bot: bool = False, email: str | None = None
    ) -> ExportBuilder:
        self.users.append(
            {
                "id": uid,
                "name": name.lower().replace(" ", "."),
                "real_name": name,
                "is_bot": is_bot,
                "profile": {"real_name": name, "display_name": name, "email": email},
            }
        )
        return self

    def message(self, cid: str, ts: str, user: str, text: str, **extra: Any) -> dict[str, Any]:
        """Adds a message to its day's file (the day of its ts, UTC); returns it."""
        day = datetime.fromtimestamp(float(ts), UTC).date().isoformat()
        msg = {"type": "message", "user": user, "text": text, "ts": ts, **extra}
        self.days.setdefault((self._ids[cid], day), []).append(msg)
        return msg

    def post(
        self,
        cid: str,
        ts: str,
        user: str,
        text: str,
        reactions: dict[str, list[str]] | None = None,
        replies: list[tuple[str, str, str]] = (),  # type: ignore[assignment]
    ) -> dict[str, Any]:
        """A top-level post with its reactions and its thread's replies (ts, user, text)."""
        extra: dict[str, Any] = {}
        if reactions:
            extra["reactions"] = [
                {"name": n, "users": list(u), "count": len(u)} for n, u in reactions.items()
            ]
        if replies:
            extra.update(
                thread_ts=ts,
                reply_count=len(replies),
                reply_users=sorted({u for _, u, _ in replies}),
                replies=[{"user": u, "ts": r} for r, u, _ in replies],
            )
        msg = self.message(cid, ts, user, text, **extra)
        for rts, ruser, rtext in replies:
            self.message(cid, rts, ruser, rtext, thread_ts=ts, parent_user_id=user)
        return msg

    def write(self, path: Path) -> Path:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("channels.json", json.dumps(self.channels))
            if self.groups:
                z.writestr("groups.json", json.dumps(self.groups))
            z.writestr("users.json", json.dumps(self.users))
            z.writestr("integration_logs.json", json.dumps({"logs": []}))
            for (name, day), msgs in sorted(self.days.items()):
                msgs = sorted(msgs, key=lambda m: float(m["ts"]))
                z.writestr(f"{name}/{day}.json", json.dumps(msgs, indent=4))
        return path
