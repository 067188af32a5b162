"""The thread under a post as context: which replies a filing carries, and how they read.

A thread can be long and its replies can say anything, so what travels to the tracker and to
the analyzer is bounded: the first ``ThreadLimits.replies`` people's replies in order, each cut to
``reply_chars``, all of them within ``total_chars``; the rest is counted ("and N more"). Mentions
are neutralised: a person becomes their display name, ``<!here>``/``<!channel>`` become plain
words, so a reply copied anywhere can notify nobody.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.domain.models import ChatMessage, ThreadContext, ThreadReply, slack_unescape

_USER = re.compile(r"<@([A-Z0-9]+)(?:\|([^<>]*))?>")
_SPECIAL = re.compile(r"<!(here|channel|everyone)(?:\|[^<>]*)?>")
_GROUP = re.compile(r"<!subteam\^[A-Z0-9]+(?:\|([^<>]*))?>")
_CHANNEL = re.compile(r"<#[A-Z0-9]+(?:\|([^<>]*))?>")
_LINK = re.compile(r"<([^<>|]*)(?:\|([^<>]*))?>")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class ThreadLimits:
    """How much of a thread a filing carries."""

    replies: int = 20
    reply_chars: int = 1000
    total_chars: int = 8000


def neutralise(text: str, name_of: Callable[[str], str | None]) -> str:
    """*text* (Slack markup) as plain text in which no mention is left: ``<@U1>`` becomes the
    person's name (``name_of``; the id when unknown), ``<!here>`` "here", a group its name."""

    def user(m: re.Match[str]) -> str:
        return f"{m.group(2) or name_of(m.group(1)) or m.group(1)}".lstrip("@")

    text = _USER.sub(user, text)
    text = _SPECIAL.sub(lambda m: m.group(1), text)
    text = _GROUP.sub(lambda m: (m.group(1) or "a group").lstrip("@"), text)
    text = _CHANNEL.sub(lambda m: "#" + (m.group(1) or "channel"), text)
    # Any other markup (<https://…|label>, <!date…>) becomes its label or its target.
    text = _LINK.sub(lambda m: m.group(2) or m.group(1).lstrip("!"), text)
    # Decoded last, so a typed "&lt;!here&gt;" stays text. Emphasis (*bold*, snake_case) is
    # kept: the tracker adapter escapes it.
    return _SPACES.sub(" ", slack_unescape(text)).strip()


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 1)].rstrip() + "…"


def thread_context(
    replies: Sequence[ChatMessage],
    root_ts: str,
    name_of: Callable[[str], str | None],
    limits: ThreadLimits = ThreadLimits(),
) -> ThreadContext:
    """The replies of the thread under *root_ts* that a filing carries, in order.

    Bots' messages (the triage reply, "Filed as …") and the root itself are not part of the
    discussion; empty replies are skipped. Every reply beyond the limits counts in ``more``.
    """
    people = [
        r
        for r in sorted(replies, key=lambda r: _ts_key(r.ts))
        if r.ts != root_ts and not r.by_bot and r.text.strip()
    ]
    kept: list[ThreadReply] = []
    used = 0
    for n, reply in enumerate(people):
        text = _cut(neutralise(reply.text, name_of), limits.reply_chars)
        author = (name_of(reply.user) if reply.user else None) or reply.user or "someone"
        if not text:
            continue
        if len(kept) >= limits.replies or used + len(text) > limits.total_chars:
            return ThreadContext(replies=tuple(kept), more=len(people) - n)
        kept.append(ThreadReply(ts=reply.ts, author=_cut(" ".join(author.split()), 80), text=text))
        used += len(text)
    return ThreadContext(replies=tuple(kept))


def with_thread(text: str, thread: ThreadContext | None) -> str:
    """What the analyzer reads for a post with replies: the post, then the discussion."""
    if thread is None or not thread.replies:
        return text
    lines = [text, "", "Replies in the thread:"]
    lines += [f"- {r.author}: {r.text}" for r in thread.replies]
    if thread.more:
        lines.append(f"- and {thread.more} more")
    return "\n".join(lines)


def _ts_key(ts: str) -> float:
    try:
        return float(ts)
    except ValueError:
        return 0.0
