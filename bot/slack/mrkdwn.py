"""Making user text safe to echo into Slack mrkdwn.

Slack treats ``&``, ``<`` and ``>`` as control characters: ``<!channel>``, ``<@U123>`` and
``<http://x|label>`` are only special because of the angle brackets. Escaping the three characters
turns every such construct in user text into literal text, so an echoed post can never notify a
channel or a person. Plain-word broadcasts (``@channel``, ``@here``, ``@everyone``) are also
neutralised: with ``link_names`` they would ping, and they look alarming even without it.
"""

from __future__ import annotations

import re

# A zero-width joiner after "@" keeps the text readable while breaking Slack's keyword match.
_ZWJ = "\u2060"
_BROADCAST_WORD = re.compile(r"@(channel|here|everyone)\b", re.IGNORECASE)
_BROADCAST_TAG = re.compile(r"<!(channel|here|everyone)(\|[^>]*)?>", re.IGNORECASE)
_SUBTEAM_TAG = re.compile(r"<!subteam\^[^>]*>", re.IGNORECASE)


def escape_mrkdwn(text: str) -> str:
    """Escapes ``&``, ``<`` and ``>`` as Slack requires, and defuses plain-word broadcasts."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _BROADCAST_WORD.sub(lambda m: f"@{_ZWJ}{m.group(1)}", text)


def neutralise_broadcasts(text: str) -> str:
    """Turns ``<!channel>``-style tags and ``@here`` words in *already-mrkdwn* text harmless.

    Use on text that legitimately contains markup (our own links) but might carry a broadcast.
    """
    text = _BROADCAST_TAG.sub(lambda m: f"@{_ZWJ}{m.group(1).lower()}", text)
    text = _SUBTEAM_TAG.sub("@group", text)
    return _BROADCAST_WORD.sub(lambda m: f"@{_ZWJ}{m.group(1)}", text)


def has_broadcast(text: str) -> bool:
    """True when *text* would notify a whole channel or group if posted as mrkdwn."""
    return bool(_BROADCAST_TAG.search(text) or _SUBTEAM_TAG.search(text)) or bool(
        re.search(r"(?<![\w\u2060])@(channel|here|everyone)\b", text, re.IGNORECASE)
    )


_CUT_ENTITY = re.compile(r"&[a-zA-Z]{0,4}$")
# A link or mention we built (user text has its "<" escaped) that the cut left open.
_CUT_MARKUP = re.compile(r"<(?:[^<>\s]{0,7}|(?:https?://|mailto:|[@#!])[^<>]*)$")


def truncate(text: str, limit: int, marker: str = "…") -> str:
    """At most *limit* characters, ending with *marker* when cut.

    Never splits an escape (``&amp;``) or a link/mention: an open ``<https://…|label`` would make
    Slack render the rest of the section as a broken link, so a cut one is dropped whole.
    """
    if len(text) <= limit:
        return text
    cut = text[: max(0, limit - len(marker))]
    cut = _CUT_MARKUP.sub("", cut)
    cut = _CUT_ENTITY.sub("", cut)
    return cut + marker


def link(url: str, label: str) -> str:
    """A mrkdwn link whose label is escaped; *url* must be one we built (http/https only)."""
    scheme, _, rest = url.partition("://")
    if (
        scheme not in ("https", "http")
        or not rest
        or any(c in url for c in "<>|")
        or (any(c.isspace() for c in url))
    ):
        return escape_mrkdwn(label)
    return f"<{url}|{escape_mrkdwn(label).replace('|', '¦')}>"
