"""Jira's own formats: the wiki markup of descriptions and comments, and the adapter's JQL.

The domain hands over plain parts (``IssueText``) and plain values (a marker, a date); only this
module knows how Jira spells them.
"""

from __future__ import annotations

import re
from datetime import datetime
from urllib.parse import urlsplit

from bot.domain.models import IssueText

# Jira's limits are Java String lengths, i.e. UTF-16 code units: an emoji or 𝕏 counts twice.
JIRA_TEXT_LIMIT = 32_767
AUTHOR_LIMIT = 200
_MIN_LIMIT = 1000  # room for the frame, the summary's share and the cut note

# Characters Jira's renderer (BackslashEscapeRendererComponent, and Cloud's wiki-to-ADF converter)
# reads as markup and accepts a backslash escape for: links/mentions [..|..], images !..!, macros
# {..}, tables |, lists/headings at line start * # -, text effects * _ + - ^ ~ ?? and emoticons ( ).
_WIKI_ESCAPE = frozenset("[]{}!|*_+-^~?#()")
# Block markup that starts with letters, which a backslash cannot escape: headings and quotes.
_LINE_MARKUP = re.compile(r"\s*(?:h[1-6]|bq)\.", re.IGNORECASE)
# What may not appear in a permalink shown as a bare link: markup, quotes, spaces and controls.
_UNSAFE_URL = re.compile(r"[\s\x00-\x1f\x7f\[\]{}|!*^\\<>\"'`]")
_NOFORMAT = re.compile(r"\{(\s*noformat)", re.IGNORECASE)


def utf16_len(text: str) -> int:
    """Length of *text* as Jira counts it: UTF-16 code units (astral characters count 2)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def cut_utf16(text: str, units: int) -> str:
    """The longest start of *text* within *units* UTF-16 code units, never half a surrogate pair."""
    data = text.encode("utf-16-le", "surrogatepass")
    if len(data) <= 2 * units:
        return text
    data = data[: 2 * max(0, units)]
    if data and 0xD8 <= data[-1] <= 0xDB:  # the last unit kept is a high surrogate: drop it too
        data = data[:-2]
    return data.decode("utf-16-le", "surrogatepass")


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
    return "".join(_wiki_tokens(text))


def _wiki_tokens(text: str) -> list[str]:
    """wiki_text as one token per input character, so a cut never halves an escape."""
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
    return out


def _wiki_within(text: str, units: int) -> str:
    """wiki_text(*text*) cut to *units* UTF-16 units (with an ellipsis when cut)."""
    tokens = _wiki_tokens(text)
    if sum(utf16_len(t) for t in tokens) <= units:
        return "".join(tokens)
    kept: list[str] = []
    used = 1  # the ellipsis
    for token in tokens:
        used += utf16_len(token)
        if used > units:
            break
        kept.append(token)
    return "".join(kept) + "…"


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
    are escaped, and the permalink is a link only when it is a plain http(s) URL. Each part has a
    share of Jira's *limit*, counted in UTF-16 code units as Jira does; the post gets the rest and
    is cut, with a note, when it does not fit.
    """
    if limit < _MIN_LIMIT:
        raise ValueError(f"a Jira text limit below {_MIN_LIMIT} leaves no room for the post")
    head = f"{_wiki_within(body.summary.strip(), limit // 4)}\n\nh3. Original post\n"
    tail_parts = []
    if body.permalink:
        link = body.permalink.strip()
        shown = link if safe_link(link) and utf16_len(link) <= limit // 8 else None
        tail_parts.append(f"Slack thread: {shown or _wiki_within(link, limit // 8)}")
    if body.author:
        author = cut_utf16(" ".join(body.author.split()), AUTHOR_LIMIT)
        tail_parts.append(f"Posted by: {_wiki_within(author, limit // 8)}")
    trace = "".join(c for c in (body.trace_id or "") if c.isalnum())[:64]
    # The trace id finds this filing's log lines (and spans) from the issue.
    tail_parts.append(f"Filed by ideabot (trace {trace})." if trace else "Filed by ideabot.")
    tail = _wiki_thread(body, limit // 4) + "\n\n" + "\n".join(tail_parts)
    frame = f"{head}{{noformat}}\n\n{{noformat}}{tail}"
    room = limit - utf16_len(frame)
    text = noformat(body.original)
    if utf16_len(text) > room:
        # The note's digits are counted at their widest, so the cut text plus note always fit.
        note_room = utf16_len(f"\n… (cut: {len(text)} more characters in Slack)")
        kept = cut_utf16(text, room - note_room)
        text = f"{kept}\n… (cut: {len(text) - len(kept)} more characters in Slack)"
    return f"{head}{{noformat}}\n{text}\n{{noformat}}{tail}"


def _wiki_thread(body: IssueText, units: int) -> str:
    """The replies under the post (``IssueText.thread``), one escaped line each, within *units*:
    replies that do not fit are counted in the closing "and N more" line."""
    thread = body.thread
    if thread is None or not thread.replies:
        return ""
    lines: list[str] = []
    used = 0
    more = thread.more
    for n, reply in enumerate(thread.replies):
        author = _wiki_within(" ".join(reply.author.split()), 100)
        line = f"*{author}*: {_wiki_within(reply.text, max(100, units // 4))}"
        if used + utf16_len(line) + 1 > units - 40:  # room for the closing line
            more += len(thread.replies) - n
            break
        lines.append(line)
        used += utf16_len(line) + 1
    if more:
        lines.append(f"_and {more} more in Slack_")
    return "\n\nh3. Thread\n" + "\n".join(lines)


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
