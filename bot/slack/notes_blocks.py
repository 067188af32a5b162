"""Block Kit for a notes post with several ideas: one reply listing each with its own button.

Each idea is a section (number, kind, title, one-line summary) with a "File idea N" button as its
accessory, and a context line with its similar tickets: at most 5 ideas, so at most 13 blocks.
User text is escaped and cut like every other builder's (``bot.slack.blocks``).
"""

from __future__ import annotations

from bot.domain.filing import FilingResult
from bot.domain.models import Idea, Triage
from bot.domain.notes import MAX_IDEAS
from bot.slack.blocks import (
    _KIND_LABEL,
    ACTION_FILE_IDEA,
    SECTION_MAX,
    Block,
    _button,
    _cap,
    _context,
    _fallback,
    _section,
    build_filing_result,
)
from bot.slack.mrkdwn import escape_mrkdwn, link, truncate


def _similar_line(idea: Idea) -> str:
    parts = []
    for m in idea.similar[:3]:
        key = link(m.url, m.key) if m.url else escape_mrkdwn(m.key)
        title = escape_mrkdwn(truncate(m.title, 80)) if m.title else ""
        parts.append(f"{key} {title} ({m.score:.0%})".replace("  ", " "))
    return "Similar: " + " · ".join(parts)


def build_notes_reply(
    triage: Triage, channel: str, ts: str, file_emoji: str, votes: int = 0
) -> tuple[str, list[Block]]:
    """The thread reply to a notes post: each idea with its title, summary, similar tickets and
    a button that files that idea alone (its value names the message and the idea's index)."""
    ideas = triage.ideas[:MAX_IDEAS]
    blocks: list[Block] = [
        _section(f"*📝 {len(ideas)} ideas in these notes.* File the ones worth a ticket:")
    ]
    for n, idea in enumerate(ideas):
        kind = _KIND_LABEL.get(idea.kind, idea.kind)
        title = escape_mrkdwn(truncate(idea.title, 300))
        summary = escape_mrkdwn(truncate(idea.summary, 600))
        section = _section(f"*{n + 1}. {title}*  _{kind}_\n{summary}".rstrip())
        section["accessory"] = _button(
            f"File idea {n + 1}", ACTION_FILE_IDEA, {"c": channel, "ts": ts, "i": str(n)}
        )
        blocks.append(section)
        if idea.similar:
            blocks.append(_context(_similar_line(idea)))
    if votes > 0:
        blocks.append(_context(f"👍 {votes}"))
    blocks.append(
        _context(
            f"Each idea is filed on its own, once. A :{escape_mrkdwn(file_emoji)}: on the post "
            "files nothing by itself: pick the ideas here."
        )
    )
    titles = "; ".join(truncate(i.title, 80) for i in ideas)
    return _fallback(escape_mrkdwn(f"{len(ideas)} ideas in these notes: {titles}")), _cap(blocks)


def build_idea_outcome(
    result: FilingResult, channel: str, ts: str, index: int, title: str
) -> tuple[str, list[Block]]:
    """The thread message for the filing of idea *index* of a notes post: the outcome as for a
    whole post, prefixed with the idea's number and title; a failure gets its own Retry."""
    text, blks = build_filing_result(result)
    if not text:
        return "", []
    named = f"Idea {index + 1} ({escape_mrkdwn(truncate(title, 100))}): "
    text = truncate(named + text, SECTION_MAX)
    blks = [_section(text)]
    if result.status == "failed":
        value = {"c": channel, "ts": ts, "i": str(index)}
        blks.append({"type": "actions", "elements": [_button("Retry", ACTION_FILE_IDEA, value)]})
    return _fallback(text), blks
