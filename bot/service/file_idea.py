"""Filing one idea of a notes post: the "File idea N" button of the notes reply.

The idea is read from the post's stored verdict (``Triage.ideas``, index N) and filed through
the same exactly-once engine as a whole post (``Filer.submit``), under the idea's own filing id
(``bot.domain.notes.idea_ts``): pressing the same idea's button twice, by one person or two,
files one issue; two different ideas file two. The same access rules and flags apply as for any
filing (``FileMessage``). A likely duplicate is not offered instead: the reply already showed
each idea's similar tickets next to its button.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot.domain.filing import FilingJob, FilingResult
from bot.domain.models import Frozen, MessageRef, Triage
from bot.domain.notes import idea_ts

if TYPE_CHECKING:
    from bot.service.file_message import FileMessage

logger = logging.getLogger(__name__)

GONE = "That post was deleted, so there is nothing to file."
NO_IDEA = (
    "That idea is no longer in the post (it was edited since); "
    "use the buttons of the bot's current reply."
)
PICK = (
    "This post holds {n} ideas, so a reaction files nothing by itself: "
    "file the ones you want with their buttons in the bot's reply."
)


class IdeaRequest(Frozen):
    """A request to file idea *index* (0-based) of a notes post."""

    ref: MessageRef  # the notes post
    index: int
    requester: str


def file_idea(use: FileMessage, req: IdeaRequest) -> FilingResult:
    """Files idea ``req.index`` of the post ``req.ref`` once; tells the requester when it was
    filed before, is being filed, or cannot be (the thread hears the outcome of a filing)."""
    ref = req.ref
    stored = use.store.get_post(ref.channel, ref.ts)
    thread = (stored.thread_ts or stored.ts) if stored is not None else ref.ts
    refused = _refusal(use, req)
    if refused is None:
        if stored is None or stored.deleted:
            refused = FilingResult("unavailable", message=GONE)
        else:
            triage = Triage.from_stored(stored.triage_json)
            ideas = triage.ideas if triage is not None else ()
            if not 0 <= req.index < len(ideas):
                refused = FilingResult("unavailable", message=NO_IDEA)
    if refused is not None:
        use.notifier.to_requester(ref, req.requester, thread, refused)
        return refused
    assert stored is not None and triage is not None
    idea = triage.ideas[req.index]
    person = use.chat.person(stored.user) if stored.user else None
    job = FilingJob(
        channel=ref.channel,
        ts=idea_ts(ref.ts, req.index),
        reply_ts=thread,
        requester=req.requester,
        text=idea.excerpt or idea.summary or idea.title,
        kind=idea.kind,
        title=idea.title,
        summary=idea.summary,
        labels=idea.labels,
        author=stored.user,
        author_name=person.name if person else None,
        author_email=person.email if person else None,
        permalink=stored.permalink or use.chat.permalink(ref.channel, ref.ts),
        is_private=stored.is_private,
    )
    result = use.filer.submit(job)
    logger.info("idea %d of %s: %s", req.index, ref.key, result.status)
    if result.status in ("already", "in_progress", "unavailable"):
        use.notifier.to_requester(ref, req.requester, thread, result)
    return result


def _refusal(use: FileMessage, req: IdeaRequest) -> FilingResult | None:
    if not use.may_file(req.requester):
        return FilingResult("denied")
    if not use.flags.enabled("filing", req.ref.channel, req.requester):
        from bot.service.file_message import FILING_OFF

        return FilingResult("unavailable", message=FILING_OFF)
    if not use.filer.configured:
        return FilingResult("unavailable", message="Jira is not configured for this bot.")
    return None


def pick_instead(triage: Triage | None) -> FilingResult | None:
    """The answer to a reaction (or shortcut) on a notes post: pick the ideas, nothing filed."""
    if triage is None or not triage.ideas:
        return None
    return FilingResult("unavailable", message=PICK.format(n=len(triage.ideas)))
