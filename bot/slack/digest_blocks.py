"""Pure builders for the two digests: Block Kit for Slack and plain text for a terminal.

Slack's limits are respected by construction: at most 50 blocks per message and 3,000 characters
per section; long lists are cut with "…and N more". User text is escaped for mrkdwn and broadcast
mentions are neutralised, so a meeting titled "<!channel>" notifies nobody.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from bot.domain.digests import (
    DuplicateLine,
    FiledLine,
    IdeaLine,
    MeetingDigest,
    TakeawayDigest,
    format_duration,
    meeting_span,
)
from bot.domain.ports import Meeting
from bot.slack.mrkdwn import truncate

MAX_BLOCKS = 50
MAX_SECTION = 3000
MAX_HEADER = 150
MAX_LINES = 25  # per list; the rest is summarised as "and N more"
MAX_TITLE = 150

Block = dict[str, Any]

_BROADCAST = re.compile(r"@(channel|here|everyone)\b", re.IGNORECASE)
_KIND_PLURAL = {"idea": "ideas", "bug": "bugs", "question": "questions", "other": "other"}


def esc(text: str) -> str:
    """Escapes user text for mrkdwn (&, <, >) and defuses @channel/@here/@everyone."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _BROADCAST.sub(lambda m: "@\u200b" + m.group(1), text)


def _plain(text: str) -> str:
    return _BROADCAST.sub(lambda m: "@\u200b" + m.group(1), text)


def _cut(text: str, limit: int) -> str:
    # Never leaves half an escape or an open link behind (see slack_text.truncate).
    return text if len(text) <= limit else truncate(text, limit)[:-1].rstrip() + "…"


def link(url: str | None, label: str) -> str:
    """A mrkdwn link when *url* is http(s); the escaped label otherwise."""
    label = esc(label).replace("|", "¦")
    if url and url.startswith(("https://", "http://")) and not any(c in url for c in "<>| "):
        return f"<{url.replace('&', '&amp;')}|{label}>"
    return label


def _day_title(d: Any) -> str:
    return f"{d:%A} {d.day} {d:%B %Y}"


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, MAX_SECTION)}}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(text, MAX_SECTION)}]}


def _header(text: str) -> Block:
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": _cut(_plain(text), MAX_HEADER), "emoji": True},
    }


def _list_sections(heading: str, lines: Sequence[str], max_lines: int = MAX_LINES) -> list[Block]:
    """*heading* and *lines* packed into as few sections of ≤3,000 characters as needed."""
    shown = list(lines[:max_lines])
    if len(lines) > max_lines:
        shown.append(f"_…and {len(lines) - max_lines} more_")
    blocks: list[Block] = []
    current = heading
    for line in shown:
        line = _cut(line, MAX_SECTION - len(heading) - 2)
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > MAX_SECTION:
            blocks.append(_section(current))
            current = line
        else:
            current = candidate
    if current:
        blocks.append(_section(current))
    return blocks


def _fit(blocks: list[Block]) -> list[Block]:
    """At most MAX_BLOCKS blocks; if more, the tail is replaced by one 'and N more' context."""
    if len(blocks) <= MAX_BLOCKS:
        return blocks
    kept = blocks[: MAX_BLOCKS - 1]
    return [*kept, _context(f"_…and {len(blocks) - len(kept)} more sections not shown_")]


# --------------------------------------------------------------------------- meetings


def _meeting_where(m: Meeting, mrkdwn: bool) -> str:
    parts: list[str] = []
    if m.video_url:
        parts.append(link(m.video_url, "Join") if mrkdwn else m.video_url)
    if m.location and m.location != m.video_url and not m.location.startswith("http"):
        parts.append(esc(_cut(m.location, 100)) if mrkdwn else _cut(m.location, 100))
    return " · ".join(parts)


def _meeting_line(m: Meeting, mrkdwn: bool) -> str:
    when = meeting_span(m.start, m.end)
    title = _cut(m.title, MAX_TITLE)
    where = _meeting_where(m, mrkdwn)
    line = f"*{when}*  {esc(title)}" if mrkdwn else f"{when}  {_plain(title)}"
    return f"{line} · {where}" if where else line


def meeting_summary(d: MeetingDigest) -> str:
    """One line: the notification text of the post."""
    noun = "meeting" if d.count == 1 else "meetings"
    return (
        f"Meetings for {_day_title(d.day)}: {d.count} {noun}, "
        f"{format_duration(d.total_minutes)} in total"
    )


def build_meeting_blocks(d: MeetingDigest) -> list[Block]:
    """Block Kit for the morning meeting digest."""
    blocks: list[Block] = [_header(f"Meetings · {_day_title(d.day)}")]
    if d.overview:
        blocks.append(_section(esc(d.overview)))
    noun = "meeting" if d.count == 1 else "meetings"
    blocks.append(
        _context(
            f"{d.count} {noun} · {format_duration(d.total_minutes)} in meetings · "
            f"times in {esc(d.tz)}"
        )
    )
    if d.meetings:
        blocks.append({"type": "divider"})
        blocks += _list_sections("", [_meeting_line(m, True) for m in d.meetings])
    if d.all_day:
        blocks += _list_sections(
            "*All day*", [f"• {esc(_cut(m.title, MAX_TITLE))}" for m in d.all_day], 10
        )
    start, end = d.workday
    if d.free_blocks:
        free = ", ".join(
            f"{b.start:%H:%M}–{b.end:%H:%M} ({format_duration(b.minutes)})" for b in d.free_blocks
        )
        blocks.append(_section(f"*Free in the working day ({start:%H:%M}–{end:%H:%M}):* {free}"))
    else:
        blocks.append(_section(f"*Free in the working day ({start:%H:%M}–{end:%H:%M}):* none"))
    if d.failed_feeds:
        blocks.append(
            _context(
                ":warning: Could not read "
                + ", ".join(esc(f) for f in d.failed_feeds)
                + "; the meetings above may be incomplete."
            )
        )
    return _fit(blocks)


def meeting_text(d: MeetingDigest) -> str:
    """The meeting digest as readable plain text (for a terminal)."""
    noun = "meeting" if d.count == 1 else "meetings"
    out = [
        f"Meetings · {_day_title(d.day)} (times in {d.tz})",
        f"{d.count} {noun}, {format_duration(d.total_minutes)} in meetings",
    ]
    if d.overview:
        out += ["", _plain(d.overview)]
    if d.meetings:
        out.append("")
        out += [f"  {_meeting_line(m, False)}" for m in d.meetings]
    if d.all_day:
        out += ["", "All day: " + ", ".join(_plain(m.title) for m in d.all_day)]
    start, end = d.workday
    free = ", ".join(
        f"{b.start:%H:%M}–{b.end:%H:%M} ({format_duration(b.minutes)})" for b in d.free_blocks
    )
    out += ["", f"Free in the working day ({start:%H:%M}–{end:%H:%M}): {free or 'none'}"]
    if d.failed_feeds:
        out.append("Could not read: " + ", ".join(d.failed_feeds))
    return "\n".join(out)


# --------------------------------------------------------------------------- takeaways


def _kinds(d: TakeawayDigest) -> str:
    return ", ".join(f"{n} {_KIND_PLURAL.get(k, k) if n != 1 else k}" for k, n in d.by_kind.items())


def _idea_link(i: IdeaLine) -> str:
    return link(i.permalink, _cut(i.title, MAX_TITLE))


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _engagement(i: IdeaLine) -> str:
    return f"{_n(i.reactions, 'reaction')}, {_n(i.replies, 'reply').replace('replys', 'replies')}"


def _filed_line(f: FiledLine, mrkdwn: bool) -> str:
    if mrkdwn:
        return f"• {link(f.url, f.key)} {link(f.permalink, _cut(f.title, MAX_TITLE))}"
    return f"  {f.key}  {_plain(_cut(f.title, MAX_TITLE))}" + (f"  {f.url}" if f.url else "")


def _dup_line(x: DuplicateLine, mrkdwn: bool) -> str:
    if mrkdwn:
        keys = ", ".join(link(u, k) for k, u in zip(x.keys, x.urls, strict=False))
        return f"• {_idea_link(x.idea)} → {keys}"
    return f"  {_plain(_cut(x.idea.title, MAX_TITLE))} → {', '.join(x.keys)}"


def takeaway_summary(d: TakeawayDigest) -> str:
    """One line: the notification text of the post."""
    noun = "post" if d.total == 1 else "posts"
    return f"Takeaways for {_day_title(d.day)}: {d.total} new {noun}, {len(d.filed)} filed"


def build_takeaway_blocks(d: TakeawayDigest) -> list[Block]:
    """Block Kit for the end-of-day takeaway digest."""
    blocks: list[Block] = [_header(f"Takeaways · {_day_title(d.day)}")]
    if d.total:
        blocks.append(_section(f"*{_n(d.total, 'new post')}:* {_kinds(d)}"))
    else:
        blocks.append(_section("No new posts in the idea channels today."))
    if d.takeaways:
        blocks.append(_section(f"*Key takeaways*\n{esc(d.takeaways)}"))
    elif d.takeaway_ideas:
        blocks += _list_sections(
            "*Key takeaways*",
            [
                f"• {_idea_link(i)}" + (f" — {esc(_cut(i.summary, 300))}" if i.summary else "")
                for i in d.takeaway_ideas
            ],
        )
    if d.filed:
        blocks += _list_sections(
            f"*Tickets filed ({len(d.filed)})*", [_filed_line(f, True) for f in d.filed]
        )
    if d.duplicates:
        blocks += _list_sections(
            f"*Duplicates found ({len(d.duplicates)})*",
            [_dup_line(x, True) for x in d.duplicates],
        )
    if d.most_wanted:
        blocks += _list_sections(
            "*Most wanted* (votes this week)",
            [f"• {_idea_link(i)} — {_n(i.votes, 'vote')}" for i in d.most_wanted],
        )
    if d.top:
        blocks += _list_sections(
            "*Most reactions and replies*",
            [f"• {_idea_link(i)} — {_engagement(i)}" for i in d.top],
        )
    if d.waiting:
        blocks += _list_sections(
            f"*Waiting to be filed ({len(d.waiting)})*",
            [f"• {_idea_link(i)} ({i.kind})" for i in d.waiting],
        )
    blocks.append(_context(f"Times in {esc(d.tz)} · {d.day.isoformat()}"))
    return _fit(blocks)


def takeaway_text(d: TakeawayDigest) -> str:
    """The takeaway digest as readable plain text (for a terminal)."""
    out = [f"Takeaways · {_day_title(d.day)}"]
    out.append(f"{_n(d.total, 'new post')}: {_kinds(d)}" if d.total else "No new posts today.")
    if d.takeaways:
        out += ["", "Key takeaways:", _plain(d.takeaways)]
    elif d.takeaway_ideas:
        out += ["", "Key takeaways:"]
        out += [
            f"  • {_plain(i.title)}" + (f" — {_plain(_cut(i.summary, 300))}" if i.summary else "")
            for i in d.takeaway_ideas
        ]
    if d.filed:
        out += ["", f"Tickets filed ({len(d.filed)}):"] + [_filed_line(f, False) for f in d.filed]
    if d.duplicates:
        out += ["", f"Duplicates found ({len(d.duplicates)}):"]
        out += [_dup_line(x, False) for x in d.duplicates]
    if d.most_wanted:
        out += ["", "Most wanted (votes this week):"]
        out += [
            f"  {_plain(_cut(i.title, MAX_TITLE))} — {_n(i.votes, 'vote')}" for i in d.most_wanted
        ]
    if d.top:
        out += ["", "Most reactions and replies:"]
        out += [f"  {_plain(_cut(i.title, MAX_TITLE))} — {_engagement(i)}" for i in d.top]
    if d.waiting:
        out += ["", f"Waiting to be filed ({len(d.waiting)}):"]
        out += [f"  {_plain(_cut(i.title, MAX_TITLE))} ({i.kind})" for i in d.waiting]
    return "\n".join(out)
