"""Emoji that say what to file (``FILE_EMOJI``): an issue type, a project, or a label.

``FILE_EMOJI=ticket`` (one emoji, files by the analysed kind) keeps working; a map gives each
emoji its meaning::

    FILE_EMOJI=bug=Bug,bulb=Story,ticket=*,triage=project:TRI,eyes=label:needs-triage

``*`` files by the analysed kind; ``project:KEY`` files into that project (a triage project);
``label:name`` files as usual with that label added; anything else is an issue type.

A message is filed once whatever the number of emoji on it (the exactly-once key is the
message): the first emoji to reach the bot decides what it is filed as; a later, different
emoji is told it was filed already.
"""

from __future__ import annotations

import re
from typing import Any

from bot.domain.models import Frozen, clean_label
from bot.domain.projects import project_key

ANY_KIND = "*"
_EMOJI = re.compile(r"^[a-z0-9_+\-']+$")


class EmojiAction(Frozen):
    """What one file emoji files: *issue_type* (None: by the analysed kind), into *project*
    (None: the channel's), with *label* added."""

    issue_type: str | None = None
    project: str | None = None
    label: str | None = None


def _emoji(raw: str) -> str:
    name = raw.strip().strip(":").lower()
    if not name or not _EMOJI.match(name):
        raise ValueError(f"expected an emoji name such as 'ticket', got {raw.strip()!r}")
    return name


def _action(raw: str, emoji: str) -> EmojiAction:
    value = raw.strip()
    kind, colon, rest = value.partition(":")
    if value == ANY_KIND:
        return EmojiAction()
    if colon and kind.strip().lower() == "project":
        return EmojiAction(project=project_key(rest, f"{emoji}: "))
    if colon and kind.strip().lower() == "label":
        label = clean_label(rest)
        if not label or label.startswith("ideabot"):
            raise ValueError(f"{emoji}: {rest.strip()!r} is not a label the bot may set")
        return EmojiAction(label=label)
    if not value:
        raise ValueError(f"{emoji}: empty meaning (an issue type, *, project:KEY or label:name)")
    return EmojiAction(issue_type=value)


def parse_file_emoji(raw: Any) -> dict[str, EmojiAction]:
    """``FILE_EMOJI`` -> emoji name -> what it files; a single name means ``name=*``.

    Raises ValueError naming the entry at fault."""
    if isinstance(raw, dict):
        pairs = [(str(k), str(v)) for k, v in raw.items()]
    else:
        text = str(raw).strip()
        if "=" not in text and "," not in text:
            return {_emoji(text): EmojiAction()}
        pairs = []
        for part in text.split(","):
            if not part.strip():
                continue
            name, eq, value = part.partition("=")
            if not eq:
                raise ValueError(f"expected emoji=meaning pairs separated by commas, got {part!r}")
            pairs.append((name, value))
    out: dict[str, EmojiAction] = {}
    for name, value in pairs:
        emoji = _emoji(name)
        if emoji in out:
            raise ValueError(f"{emoji} is listed twice")
        out[emoji] = _action(value, emoji)
    if not out:
        raise ValueError("expected at least one emoji")
    return out


def hint_emoji(actions: dict[str, EmojiAction]) -> str:
    """The emoji the triage reply suggests: the first that files by kind, else the first."""
    return next((e for e, a in actions.items() if a == EmojiAction()), next(iter(actions)))
