"""Jira's own formats: the wiki markup of descriptions and comments, and the adapter's JQL.

The domain hands over plain parts (``IssueText``) and plain values (a marker, a date); only this
module knows how Jira spells them.
"""

from __future__ import annotations

from datetime import datetime

from bot.domain.models import IssueText

JIRA_TEXT_LIMIT = 32_767


def noformat(text: str) -> str:
    """Text safe inside ``{noformat}``: a literal ``{noformat}`` would close the block early."""
    return text.replace("{noformat}", "{ noformat }")


def render_wiki(body: IssueText, limit: int = JIRA_TEXT_LIMIT) -> str:
    """The description (or comment) in wiki markup: summary, the post verbatim, link, author.

    The original text is cut so that the whole stays within Jira's *limit* characters.
    """
    head = f"{body.summary.strip()}\n\nh3. Original post\n"
    tail_parts = []
    if body.permalink:
        tail_parts.append(f"Slack thread: {body.permalink}")
    if body.author:
        tail_parts.append(f"Posted by: {noformat(body.author)[:200]}")
    tail_parts.append("Filed by ideabot.")
    tail = "\n\n" + "\n".join(tail_parts)
    frame = len(head) + len(tail) + len("{noformat}\n\n{noformat}")
    room = max(0, limit - frame - 40)
    text = noformat(body.original)
    if len(text) > room:
        note = f"\n… (cut: {len(text) - room} more characters in Slack)"
        text = text[: max(0, room - len(note))] + note
    out = f"{head}{{noformat}}\n{text}\n{{noformat}}{tail}"
    return out[:limit]


def quote(value: str) -> str:
    """A JQL string literal (reserved words and spaces stay values)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def marker_query(project: str, marker: str) -> str:
    """The issues of *project* that carry the label *marker*."""
    return f"project = {quote(project)} AND labels = {quote(marker)}"


def updated_query(project: str, since: datetime | None, narrow: str | None = None) -> str:
    """The issues of *project* updated at or after *since* (all when None), oldest first.

    *since* must already be in the time zone Jira reads JQL dates in (the account's own).
    *narrow* is an operator's extra JQL (``JIRA_SYNC_JQL``), kept in parentheses.
    """
    parts = [f"project = {quote(project)}"]
    if narrow:
        parts.append(f"({narrow})")
    if since is not None:
        parts.append(f'updated >= "{since.strftime("%Y/%m/%d %H:%M")}"')
    return " AND ".join(parts) + " ORDER BY updated ASC"
