"""Block Kit builders: pure functions from domain objects to Slack message dicts.

Every builder returns ``(text, blocks)``: *text* is the notification/fallback text. User-provided
text is always escaped (``bot.slack.mrkdwn``) and cut to Slack's limits: 50 blocks per
message, 3,000 characters per section text, 75 per button label, 2,000 per button value.
Builders never raise and never emit a blank text (Slack refuses both with ``invalid_blocks``):
nothing to say is ``("", [])``.
"""

from __future__ import annotations

import json
from typing import Any

from bot.domain.filing import FilingResult
from bot.domain.issue_changes import IssueState
from bot.domain.models import Match, Triage
from bot.slack import loop_blocks
from bot.slack.mrkdwn import escape_mrkdwn, link, neutralise_broadcasts, truncate

MAX_BLOCKS = 50
SECTION_MAX = 3000
BUTTON_LABEL_MAX = 75  # Slack allows 75 characters in a button's plain_text label
TEXT_MAX = 3000
VALUE_MAX = 2000

ACTION_FILE = "ideabot_file"
ACTION_FILE_ANYWAY = "ideabot_file_anyway"
ACTION_COMMENT = "ideabot_comment"
ACTION_RETRY = "ideabot_retry_filing"
ACTION_FILE_IDEA = "ideabot_file_idea"  # one idea of a notes post (bot.slack.notes_blocks)
SHORTCUT_FILE = "ideabot_file_message"
SHORTCUT_ADD_REPLY = "ideabot_add_to_ticket"  # "Add to Jira ticket" on a reply in a filed thread
COMMAND = "/idea"

Block = dict[str, Any]

_KIND_LABEL = {"idea": "💡 Idea", "bug": "🐞 Bug", "question": "❓ Question", "other": "Other"}


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, SECTION_MAX)}}


def _context(text: str) -> Block:
    return {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": truncate(text, SECTION_MAX)}],
    }


def _button(
    label: str,
    action_id: str,
    value: dict[str, str],
    style: str | None = None,
    optional: tuple[str, ...] = (),
) -> Block:
    """A button whose value names its message; *optional* keys are left out (in order) when the
    value would pass Slack's limit, and the click looks them up instead. A value that cannot
    fit at all is left out: the click is then ignored, which beats a message Slack refuses."""
    value = dict(value)
    raw: str | None = json.dumps(value, separators=(",", ":"))
    for key in optional:
        if raw is None or len(raw) <= VALUE_MAX:
            break
        value.pop(key, None)
        raw = json.dumps(value, separators=(",", ":"))
    if raw is not None and len(raw) > VALUE_MAX:
        raw = None
    b: Block = {
        "type": "button",
        "text": {
            "type": "plain_text",
            "text": truncate(label.strip() or action_id, BUTTON_LABEL_MAX),
            "emoji": True,
        },
        "action_id": action_id,
    }
    if raw is not None:
        b["value"] = raw
    if style:
        b["style"] = style
    return b


def _fallback(text: str) -> str:
    return truncate(neutralise_broadcasts(text), TEXT_MAX)


def _cap(blocks: list[Block]) -> list[Block]:
    return blocks[:MAX_BLOCKS]


def match_line(m: Match) -> str:
    """One similar ticket as mrkdwn: linked key, escaped title, similarity."""
    key = link(m.url, m.key) if m.url else escape_mrkdwn(m.key)
    title = escape_mrkdwn(truncate(m.title, 150)) if m.title else ""
    return f"• {key} {title} _({m.score:.0%} similar)_".replace("  ", " ")


def _pack(head: str, lines: list[str], limit: int = SECTION_MAX) -> str:
    """*head* and as many whole *lines* as fit in one section (escaping can make lines long)."""
    out = head
    for i, line in enumerate(lines):
        more = f"\n_…and {len(lines) - i} more_"
        if len(out) + 1 + len(line) + len(more) > limit:
            return out + more
        out += "\n" + line
    return out


def build_triage_reply(
    triage: Triage,
    channel: str,
    ts: str,
    file_emoji: str,
    can_file: bool = True,
    votes: int = 0,
    filed: FilingResult | None = None,
    issue: IssueState | None = None,
    vote_emoji: str = "+1",
) -> tuple[str, list[Block]]:
    """The thread reply to an idea post: kind, title, summary, similar tickets, how to file.

    *votes* (people who reacted to the post) show as "👍 n" when there are any; once *filed*
    (a result with the key), the reply names the ticket instead of offering to file.
    """
    if triage.ideas:
        from bot.slack.notes_blocks import build_notes_reply  # it builds on this module

        return build_notes_reply(triage, channel, ts, file_emoji, votes=votes)
    kind = _KIND_LABEL.get(triage.kind, triage.kind)
    title = escape_mrkdwn(truncate(triage.title, 300))
    summary = escape_mrkdwn(truncate(triage.summary, 1500))
    blocks: list[Block] = [_section(f"*{kind}:* {title}")]
    if summary:
        blocks.append(_section(summary))
    if triage.similar:
        head = "*Possible duplicate:*" if triage.likely_duplicate else "*Similar tickets:*"
        blocks.append(_section(_pack(head, [match_line(m) for m in triage.similar[:10]])))
    if votes > 0:
        blocks.append(_context(loop_blocks.votes_text(votes, vote_emoji)))
    if filed is not None and filed.key:
        state = loop_blocks.issue_state_text(issue) if issue is not None else ""
        blocks.append(_context(f"Filed as {_key_link(filed)}" + (f" · {state}" if state else "")))
    elif can_file:
        blocks.append(_context(f"React with :{file_emoji}: or use the button to file it in Jira."))
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    _button("File as Jira ticket", ACTION_FILE, {"c": channel, "ts": ts}, "primary")
                ],
            }
        )
    text = f"{kind}: {truncate(triage.title, 200)}"
    return _fallback(escape_mrkdwn(text)), _cap(blocks)


def build_duplicate_offer(match: Match, channel: str, ts: str) -> tuple[str, list[Block]]:
    """Asks whether to comment on an existing ticket instead of filing a new one."""
    key_link = link(match.url, match.key) if match.url else escape_mrkdwn(match.key)
    title = escape_mrkdwn(truncate(match.title, 200))
    blocks: list[Block] = [
        _section(
            f"This looks like {key_link} {title} ({match.score:.0%} similar). "
            "Add this post to it, or file a new ticket anyway?"
        ),
        {
            "type": "actions",
            "elements": [
                _button(
                    f"Comment on {match.key} instead",
                    ACTION_COMMENT,
                    {"c": channel, "ts": ts, "k": match.key},
                    "primary",
                    optional=("k",),
                ),
                _button("File anyway", ACTION_FILE_ANYWAY, {"c": channel, "ts": ts}),
            ],
        },
    ]
    return _fallback(f"This looks like {escape_mrkdwn(match.key)}: comment or file anyway?"), blocks


def build_filing_result(result: FilingResult) -> tuple[str, list[Block]]:
    """The thread message for a filing outcome; ("", []) when nothing should be said."""
    key_link = _key_link(result)
    if result.status == "filed":
        text = f"Filed as {key_link} :white_check_mark:"
    elif result.status == "commented":
        text = f"Added this post to {key_link} as a comment."
    elif result.status == "already":
        text = f"Already filed as {key_link}."
    elif result.status == "queued":
        text = "Jira is not answering right now; the ticket is queued and will be filed shortly."
    elif result.status == "rejected":
        text = ":warning: " + escape_mrkdwn(rejection_message(result))
    elif result.status == "failed":
        text = ":warning: " + escape_mrkdwn(failure_message(result))
    elif result.status == "in_progress":
        text = "This post is being filed already."
    elif result.status in ("denied", "unavailable"):
        text = escape_mrkdwn((result.message or "").strip() or "This post cannot be filed.")
    else:
        return "", []
    return _fallback(text), [_section(text)]


def build_filing_failed(
    result: FilingResult, channel: str, ts: str, comment_on: str | None = None
) -> tuple[str, list[Block]]:
    """The thread message when the bot gave up on a filing, with a Retry button."""
    text, blks = build_filing_result(result)
    value = {"c": channel, "ts": ts, **({"k": comment_on} if comment_on else {})}
    blks.append({"type": "actions", "elements": [_button("Retry", ACTION_RETRY, value)]})
    return text, blks


def failure_message(result: FilingResult) -> str:
    """A human sentence for a filing the bot gave up on (plain text, not yet escaped)."""
    why = f" The last error was: {truncate(result.message, 300)}." if result.message else ""
    return f"I could not reach Jira to file this, and stopped trying.{why} Nothing was filed yet."


def rejection_message(result: FilingResult) -> str:
    """A human sentence naming what Jira refused (plain text, not yet escaped)."""
    if result.fields:
        named = "; ".join(f"{name}: {msg}" for name, msg in sorted(result.fields.items()))
        return (
            f"Jira refused the ticket because of field(s) {named}. "
            "An admin needs to adjust the Jira project or the bot's settings "
            "(JIRA_ISSUE_TYPES); nothing was filed."
        )
    if result.message and result.message.strip():
        return f"Jira refused the ticket: {result.message.strip()}. Nothing was filed."
    return "Jira refused the ticket. Nothing was filed."


def build_denied(allowed_hint: str | None = None) -> tuple[str, list[Block]]:
    """The ephemeral explanation for someone who may not file."""
    text = "Only some people can file Jira tickets from Slack here"
    hint = (allowed_hint or "").strip()
    text += f" ({escape_mrkdwn(truncate(hint, 500))})." if hint else "."
    text += " Ask one of them to react, or ask an admin to add you."
    return _fallback(text), [_section(text)]


def build_notice(text: str) -> tuple[str, list[Block]]:
    """A one-section message of plain *text* (escaped); ("", []) when *text* is blank."""
    if not text.strip():
        return "", []
    safe = escape_mrkdwn(text.strip())
    return _fallback(safe), [_section(safe)]


def build_edited_after_filing(
    filed: FilingResult, commented: bool | None
) -> tuple[str, list[Block]]:
    """The thread note for a post edited after filing ("already") or while being filed."""
    if filed.status != "already" or not filed.key:
        text = "This post was edited while it was being filed; the ticket gets the earlier text."
        return _fallback(text), [_section(text)]
    key_link = _key_link(filed)
    text = f"This post was edited after it was filed as {key_link}; the ticket keeps the text it"
    text += " was filed with."
    if commented is True:
        text += f" I added the new text to {key_link} as a comment."
    elif commented is False:
        text += f" I could not add the new text to {key_link} (Jira did not answer)."
    return _fallback(text), [_section(text)]


def build_post_deleted(filed: FilingResult | None) -> tuple[str, list[Block]]:
    """What replaces a deleted post's triage reply: its summary goes, and so does the button."""
    if filed is not None and filed.status == "already" and filed.key:
        text = f"The post was deleted; {_key_link(filed)} keeps the text it was filed with."
    else:
        text = "The post was deleted, so there is nothing to file."
    return _fallback(text), [_context(text)]


def _key_link(result: FilingResult) -> str:
    """The result's key as mrkdwn, linked when the result has a URL."""
    key = truncate(result.key or "", 200)
    return link(result.url, key) if result.url and key else escape_mrkdwn(key)
