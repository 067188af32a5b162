"""Jira's own formats: the wiki markup of descriptions and comments, and the adapter's JQL.

The domain hands over plain parts (``IssueText``) and plain values (a marker, a date); only this
module knows how Jira spells them.
"""

from __future__ import annotations

import re
from datetime import datetime
from urllib.parse import urlsplit

from bot.domain.models import IssueText

JIRA_TEXT_LIMIT = 32_767
AUTHOR_LIMIT = 200

# Characters Jira's renderer (BackslashEscapeRendererComponent, and Cloud's wiki-to-ADF converter)
# reads as markup and accepts a backslash escape for: links/mentions [..|..], images !..!, macros
# {..}, tables |, lists/headings at line start * # -, text effects * _ + - ^ ~ ?? and emoticons ( ).
_WIKI_ESCAPE = frozenset("[]{}!|*_+-^~?#()")
# Block markup that starts with letters, which a backslash cannot escape: headings and quotes.
_LINE_MARKUP = re.compile(r"\s*(?:h[1-6]|bq)\.", re.IGNORECASE)
# What may not appear in a permalink shown as a bare link: markup, quotes, spaces and controls.
_UNSAFE_URL = re.compile(r"[\s\x00-\x1f\x7f\[\]{}|!*^\\<>\"'`]")
_NOFORMAT = re.compile(r"\{(\s*noformat)", re.IGNORECASE)


def noformat(text: str) -> str:
    """Text safe inside ``{noformat}``: no ``{noformat…}`` of any case may close the block early."""
    return _NOFORMAT.sub(r"{ \1", text)


def wiki_text(text: str) -> str:
    """*text* (from a person or a model) as wiki markup that Jira shows literally.

    Markup characters get a backslash escape; a backslash itself stays as it is unless an escape or
    a second backslash follows (``\\\\`` is a forced line break), where it becomes ``&#92;``; a line
    that would start a heading or quote (``h1.``, ``bq.``) gets its dot as ``&#46;``. Every kind of
    line break becomes ``\\n``: Java's ``^`` also starts a line after ``\\r``, U+2028 and U+2029.
    """
    out: list[str] = []
    for n, line in enumerate(text.splitlines()):
        if n:
            out.append("\n")
        dot = m.end() - 1 if (m := _LINE_MARKUP.match(line)) else -1
        for i, ch in enumerate(line):
            if i == dot:
                out.append("&#46;")
            elif ch in _WIKI_ESCAPE:
                out.append("\\" + ch)
            elif ch == "\\":
                nxt = line[i + 1] if i + 1 < len(line) else ""
                out.append("&#92;" if nxt == "\\" or nxt in _WIKI_ESCAPE else ch)
            else:
                out.append(ch)
    return "".join(out)


def safe_link(url: str) -> bool:
    """True when *url* can stand in wiki markup as a bare link: http(s), a host, no markup."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not _UNSAFE_URL.search(url)


def render_wiki(body: IssueText, limit: int = JIRA_TEXT_LIMIT) -> str:
    """The description (or comment) in wiki markup: summary, the post verbatim, link, author.

    The post sits in ``{noformat}``; the summary and the author's name (from a model and a person)
    are escaped, and the permalink is a link only when it is a plain http(s) URL. The original
    text is cut so that the whole stays within Jira's *limit* characters.
    """
    head = f"{wiki_text(body.summary.strip())}\n\nh3. Original post\n"
    tail_parts = []
    if body.permalink:
        link = body.permalink.strip()
        tail_parts.append(f"Slack thread: {link if safe_link(link) else wiki_text(link)}")
    if body.author:
        author = " ".join(body.author.split())[:AUTHOR_LIMIT]
        tail_parts.append(f"Posted by: {wiki_text(author)}")
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
