"""Reading a Slack workspace export (the zip an admin downloads) as a stream of posts.

Slack's layout: ``channels.json`` (public channels: id, name), ``groups.json`` (private ones, in
exports that include them), ``users.json`` (``org_users.json`` on Enterprise Grid) and one folder
per channel, named after it, holding ``<YYYY-MM-DD>.json``: the day's messages, a JSON list.
A thread's replies sit in the day files of the days they were written, with ``thread_ts``; the
post carries ``reply_users`` and ``reactions`` (``[{"name", "users", "count"}]``).

Memory stays flat however big the export: members are opened one at a time as streams (a day
file is small), and a post is held only until ``window_days`` after its day have been read, long
enough for its thread's replies to arrive; a reply later than that is counted, not attached.
"""

from __future__ import annotations

import json
import logging
import re
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.domain.backfill import ExportError, ExportStats, HistoryPost, People
from bot.domain.models import ChatMessage, Person

logger = logging.getLogger(__name__)

_DAY_FILE = re.compile(r"^(?P<folder>[^/]+)/(?P<day>\d{4}-\d{2}-\d{2})\.json$")
# A person's message: plain, with a file, or a thread reply also sent to the channel.
_HUMAN = frozenset({None, "", "file_share", "thread_broadcast"})
MAX_REPLIES_KEPT = 200  # per thread: enough for the description's cap and its "and N more"


@dataclass(frozen=True)
class ExportChannel:
    id: str
    name: str
    is_private: bool = False


@dataclass
class _Pending:
    post: dict[str, Any]
    day: date
    replies: list[ChatMessage] = field(default_factory=list)
    voters: set[str] = field(default_factory=set)


class SlackExport:
    """An export zip, opened for reading. Raises ExportError when it is not one."""

    def __init__(self, path: str | Path, window_days: int = 30) -> None:
        self.path = Path(path)
        self.window = timedelta(days=window_days)
        self.stats = ExportStats()
        try:
            self._zip = zipfile.ZipFile(self.path)
        except FileNotFoundError:
            raise ExportError(f"{self.path}: no such file") from None
        except (zipfile.BadZipFile, OSError) as exc:
            raise ExportError(f"{self.path}: not a zip file ({exc})") from None
        names = set(self._zip.namelist())
        if "channels.json" not in names:
            self._zip.close()
            raise ExportError(
                f"{self.path}: no channels.json at the top: not a Slack workspace export"
            )
        self.channels = self._channels("channels.json", private=False)
        if "groups.json" in names:
            self.channels += self._channels("groups.json", private=True)
        users = next((n for n in ("users.json", "org_users.json") if n in names), None)
        self.people = self._people(users) if users else People()
        # The central directory is read once by ZipFile; the day files' names are grouped here.
        self._days: dict[str, list[tuple[date, str]]] = {}
        for name in names:
            m = _DAY_FILE.match(name)
            if m is None:
                continue
            try:
                day = date.fromisoformat(m["day"])
            except ValueError:
                continue
            self._days.setdefault(m["folder"], []).append((day, name))

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> SlackExport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ metadata

    def _json(self, name: str) -> Any:
        try:
            with self._zip.open(name) as f:
                return json.load(f)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ExportError(f"{self.path}: {name}: not valid JSON ({exc})") from None
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise ExportError(f"{self.path}: {name}: cannot be read ({exc})") from None

    def _channels(self, name: str, private: bool) -> list[ExportChannel]:
        raw = self._json(name)
        if not isinstance(raw, list):
            raise ExportError(f"{self.path}: {name}: expected a list of channels")
        out = []
        for c in raw:
            if (
                isinstance(c, dict)
                and isinstance(c.get("id"), str)
                and isinstance(c.get("name"), str)
            ):
                out.append(ExportChannel(c["id"], c["name"], private))
        return out

    def _people(self, name: str) -> People:
        raw = self._json(name)
        if not isinstance(raw, list):
            raise ExportError(f"{self.path}: {name}: expected a list of users")
        people: dict[str, Person] = {}
        bots: set[str] = set()
        for u in raw:
            if not isinstance(u, dict) or not isinstance(u.get("id"), str):
                continue
            raw_profile = u.get("profile")
            profile: dict[str, Any] = raw_profile if isinstance(raw_profile, dict) else {}
            shown = profile.get("display_name") or profile.get("real_name") or u.get("real_name")
            people[u["id"]] = Person(
                name=str(shown or u.get("name") or u["id"]),
                email=profile.get("email") if isinstance(profile.get("email"), str) else None,
            )
            if u.get("is_bot") or u.get("id") == "USLACKBOT":
                bots.add(u["id"])
        return People(people, frozenset(bots))

    def select(self, wanted: Sequence[str] | None) -> list[ExportChannel]:
        """The channels named in *wanted* (names, with or without '#', or ids), all when None.
        Raises ExportError naming those the export does not hold."""
        if not wanted:
            return list(self.channels)
        keys = [w.strip().lstrip("#") for w in wanted if w.strip()]
        picked = [c for c in self.channels if c.id in keys or c.name in keys]
        missing = sorted(set(keys) - {c.id for c in picked} - {c.name for c in picked})
        if missing:
            raise ExportError(f"{self.path}: no channel {', '.join(missing)} in the export")
        return picked

    # ------------------------------------------------------------------ posts

    def posts(
        self,
        channels: Sequence[ExportChannel],
        since: date | None = None,
        on_day: Callable[[str, date], None] | None = None,
    ) -> Iterator[HistoryPost]:
        """Every top-level post of *channels* (from *since* on), with its thread and reactions,
        channel by channel, oldest first. A day file that cannot be read is named in
        ``stats.bad_files`` and skipped."""
        for channel in channels:
            self.stats.channels += 1
            yield from self._channel_posts(channel, since, on_day)

    def _channel_posts(
        self,
        channel: ExportChannel,
        since: date | None,
        on_day: Callable[[str, date], None] | None,
    ) -> Iterator[HistoryPost]:
        pending: OrderedDict[str, _Pending] = OrderedDict()
        # Slack names a channel's folder after the channel (ids on some Grid exports).
        days = sorted(self._days.get(channel.name) or self._days.get(channel.id) or [])
        for day, name in days:
            if since is not None and day < since:
                continue
            messages = self._day_messages(name)
            self.stats.days += 1
            for msg in messages:
                self._take(msg, day, pending)
            self.stats.max_pending = max(self.stats.max_pending, len(pending))
            if on_day is not None:
                on_day(channel.name, day)
            # Posts old enough that their thread is complete (as far as the window goes) leave.
            while pending:
                ts, first = next(iter(pending.items()))
                if day - first.day <= self.window:
                    break
                del pending[ts]
                yield self._post(channel, first)
        while pending:
            yield self._post(channel, pending.popitem(last=False)[1])

    def _day_messages(self, name: str) -> list[dict[str, Any]]:
        try:
            raw = self._json(name)
        except ExportError as exc:
            logger.warning("%s", exc)
            self.stats.bad_files.append(name)
            return []
        if not isinstance(raw, list):
            logger.warning("%s: %s: expected a list of messages", self.path, name)
            self.stats.bad_files.append(name)
            return []
        return [m for m in raw if isinstance(m, dict)]

    def _take(self, msg: dict[str, Any], day: date, pending: OrderedDict[str, _Pending]) -> None:
        ts, thread_ts = _ts(msg.get("ts")), _ts(msg.get("thread_ts"))
        if ts is None:
            return
        user = msg.get("user") if isinstance(msg.get("user"), str) else None
        by_bot = bool(msg.get("bot_id") or msg.get("subtype") == "bot_message") or (
            user in self.people.bots
        )
        if thread_ts and thread_ts != ts:
            parent = pending.get(thread_ts)
            if parent is None:
                self.stats.orphan_replies += 1
                return
            author = parent.post.get("user")
            if user and not by_bot and user != author:
                parent.voters.add(user)
            if len(parent.replies) < MAX_REPLIES_KEPT:
                parent.replies.append(
                    ChatMessage(
                        ts=ts,
                        text=str(msg.get("text") or ""),
                        user=user,
                        thread_ts=thread_ts,
                        by_bot=by_bot,
                    )
                )
            return
        if by_bot or not user or msg.get("subtype") not in _HUMAN:
            return  # joins, topic changes, bots' posts: not ideas
        entry = _Pending(post=msg, day=day)
        for reaction in msg.get("reactions") or []:
            if isinstance(reaction, dict):
                entry.voters.update(
                    u for u in reaction.get("users") or [] if isinstance(u, str) and u != user
                )
        entry.voters.update(
            u for u in msg.get("reply_users") or [] if isinstance(u, str) and u != user
        )
        entry.voters -= self.people.bots
        pending[ts] = entry

    def _post(self, channel: ExportChannel, p: _Pending) -> HistoryPost:
        self.stats.posts += 1
        ts = str(p.post["ts"])
        return HistoryPost(
            channel=channel.id,
            channel_name=channel.name,
            ts=ts,
            user=str(p.post.get("user")),
            text=str(p.post.get("text") or ""),
            created=datetime.fromtimestamp(float(ts), UTC),
            replies=tuple(p.replies),
            voters=frozenset(p.voters),
            is_private=channel.is_private,
        )


def _ts(value: Any) -> str | None:
    """A Slack ts ("1700000000.000100"), or None."""
    if not isinstance(value, str):
        return None
    try:
        float(value)
    except ValueError:
        return None
    return value
