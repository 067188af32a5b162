"""Reading fields of Slack payloads defensively: a field of the wrong type or shape is absent.

Slack's payloads are documented, but a listener must not raise on one that is not (an older
app version, a new subtype, a hostile request that passed the signature check with a leaked
secret). Ids and timestamps are checked for shape and length (the store's columns are 40
characters), so nothing odd reaches a use case or the database.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

# Slack ids: upper-case letters and digits (C…, G…, D…, U…, W…, B…, T…); tests use the same.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
# Slack message timestamps: epoch seconds with microseconds, "1700000000.000100".
_TS = re.compile(r"\d{1,12}\.\d{1,9}")
_EVENT_ID = re.compile(r"[A-Za-z0-9_.-]{1,100}")


def as_dict(value: Any) -> dict[str, Any]:
    """*value* when it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def slack_id(value: Any) -> str | None:
    """A channel, user, team or bot id, or None when *value* is not one."""
    return value if isinstance(value, str) and _ID.fullmatch(value) else None


def slack_ts(value: Any) -> str | None:
    """A message timestamp ("1700000000.000100"), or None when *value* is not one."""
    return value if isinstance(value, str) and _TS.fullmatch(value) else None


def text_of(value: Any) -> str:
    """Message text: a string, else empty."""
    return value if isinstance(value, str) else ""


def event_id_of(body: Any) -> str | None:
    """The Events API envelope's event id (for redelivery checks), or None."""
    value = as_dict(body).get("event_id")
    return value if isinstance(value, str) and _EVENT_ID.fullmatch(value) else None


def nested_id(body: dict[str, Any], key: str) -> str | None:
    """``body[key]["id"]`` as a Slack id (interactive payloads: ``user``, ``channel``, ``team``)."""
    return slack_id(as_dict(body.get(key)).get("id"))


class ShortcutMessage(NamedTuple):
    """The message a message shortcut was used on, and who used it."""

    channel: str
    ts: str
    requester: str
    text: str | None  # as it is now (an edited text included)
    author: str | None
    thread_ts: str | None


def message_shortcut(body: Any) -> ShortcutMessage | None:
    """The message of a message-shortcut payload; None when the payload lacks what is needed."""
    body = as_dict(body)
    message = as_dict(body.get("message"))
    channel, user = nested_id(body, "channel"), nested_id(body, "user")
    ts = slack_ts(message.get("ts")) or slack_ts(body.get("message_ts"))
    if not channel or not ts or not user:
        return None
    text = message.get("text")
    return ShortcutMessage(
        channel=channel,
        ts=ts,
        requester=user,
        text=text if isinstance(text, str) else None,
        author=slack_id(message.get("user")),
        thread_ts=slack_ts(message.get("thread_ts")),
    )
