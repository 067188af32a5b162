"""What the listeners share: their dependencies and the filing flow from a Slack message."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from bot.adapters.slack_chat import SlackChat
from bot.config import Settings
from bot.domain.filing import FilingRequest, FilingResult, FilingService, may_file
from bot.domain.models import Post, Triage
from bot.domain.ports import Store
from bot.domain.triage import TriageService
from bot.slack import blocks

logger = logging.getLogger(__name__)


@dataclass
class Deps:
    """Everything a listener may use, wired once in ``bot.slack.app``."""

    settings: Settings
    store: Store
    triage: TriageService
    filing: FilingService
    chat: SlackChat
    idea_channels: set[str] = field(default_factory=set)

    def first_delivery(self, body: dict[str, Any]) -> bool:
        """False for a redelivery of an event already handled (Slack retries, X-Slack-Retry-Num).

        Checked in the listener, after the ack, so the database write never delays the ack.
        """
        event_id = body.get("event_id")
        if not event_id:
            return True
        if self.store.first_delivery(str(event_id)):
            return True
        logger.info("ignoring redelivered event %s", event_id)
        return False

    def is_idea_channel(self, channel: str) -> bool:
        return channel in self.idea_channels

    def may_file(self, user: str) -> bool:
        return may_file(
            user,
            self.settings.file_allowed_users,
            self.settings.file_allowed_groups,
            self.chat.usergroup_members,
        )


@dataclass(frozen=True)
class Message:
    """A Slack message to file, as far as the event told us."""

    channel: str
    ts: str
    text: str | None = None
    user: str | None = None
    thread_ts: str | None = None


def stored_triage(raw: str | None) -> Triage | None:
    if not raw:
        return None
    try:
        return Triage.model_validate_json(raw)
    except ValueError:
        return None


def file_message(
    deps: Deps,
    msg: Message,
    requester: str,
    *,
    force: bool = False,
    comment_on: str | None = None,
) -> FilingResult | None:
    """Access check, gathering the post, one ``FilingService.file`` call and the answer to Slack.

    Outcomes after the claim (filed, queued, rejected) are reported by the filing notifier; this
    renders the ones that concern only the requester or need a choice.
    """
    if not deps.may_file(requester):
        denied, blks = blocks.build_denied()
        deps.chat.ephemeral(msg.channel, requester, denied, blks, thread_ts=msg.thread_ts)
        return FilingResult("denied")
    stored = deps.store.get_post(msg.channel, msg.ts)
    text, thread_ts = msg.text, msg.thread_ts
    author: str | None = msg.user
    triage = stored_triage(stored.triage_json) if stored else None
    permalink = stored.permalink if stored else None
    if stored is not None:
        text = stored.text or text
        author = author or stored.user
        thread_ts = thread_ts or stored.thread_ts
    if text is None:
        found = deps.chat.fetch_message(msg.channel, msg.ts, thread_ts)
        if found is not None:
            text = found.text
            author = author or found.user
            thread_ts = thread_ts or found.thread_ts
    if not text:
        deps.chat.ephemeral(
            msg.channel, requester, "I could not read that message, so nothing was filed."
        )
        return None
    author = author or ""
    post = Post(
        id=f"{msg.channel}:{msg.ts}", text=text, channel=msg.channel, user=author, ts=msg.ts
    )
    if triage is None:
        triage = deps.triage.triage(post)
    person = deps.chat.person(author) if author else None
    req = FilingRequest(
        channel=msg.channel,
        ts=msg.ts,
        text=text,
        requester=requester,
        author=author,
        author_name=person.name if person else None,
        author_email=person.email if person else None,
        permalink=permalink or deps.chat.permalink(msg.channel, msg.ts),
        thread_ts=thread_ts if thread_ts and thread_ts != msg.ts else None,
        is_private=deps.chat.channel_is_private(msg.channel),
        triage=triage,
        force=force,
        comment_on=comment_on,
    )
    result = deps.filing.file(req)
    if result.status == "duplicate" and result.match is not None:
        text_, blks = blocks.build_duplicate_offer(result.match, msg.channel, msg.ts)
        deps.chat.post(msg.channel, text_, blks, thread_ts=req.reply_ts)
    elif result.status in ("already", "in_progress", "unavailable"):
        text_, blks = blocks.build_filing_result(result)
        deps.chat.ephemeral(msg.channel, requester, text_, blks, thread_ts=req.thread_ts)
    return result
