"""The App Home tab as Block Kit: a pure builder from ``bot.domain.home.HomeView``.

Slack refuses a Home view of more than 100 blocks, a section text over 3,000 characters and a
header over 150, so every list is capped and what is left out is counted ("and N more").
"""

from __future__ import annotations

from typing import Any

from bot.domain.home import HomeIdea, HomeView
from bot.slack.mrkdwn import escape_mrkdwn, link, truncate

Block = dict[str, Any]

MAX_BLOCKS = 100  # Slack's limit for a Home tab view
SECTION_MAX = 3000
HEADER_MAX = 150
TITLE_MAX = 150  # of one idea's title on its line
MINE_MAX = 30  # of the person's ideas shown (newest first)
LIST_MAX = 10  # of the team's lists

_KIND = {"idea": "💡 Idea", "bug": "🐞 Bug", "question": "❓ Question", "other": "Other"}


def _header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": text[:HEADER_MAX]}}


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, SECTION_MAX)}}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": truncate(text, 2000)}]}


def idea_line(idea: HomeIdea, *, show_status: bool = True) -> str:
    """One idea: its title (linked to the post when known), kind, votes, ticket and status."""
    title = truncate(" ".join(idea.title.split()) or "(untitled)", TITLE_MAX)
    head = f"*{link(idea.permalink, title)}*" if idea.permalink else f"*{escape_mrkdwn(title)}*"
    parts = [_KIND.get(idea.kind, escape_mrkdwn(idea.kind))]
    if idea.votes:
        parts.append(f"👍 {idea.votes}")
    if idea.key:
        ticket = link(idea.url, idea.key) if idea.url else escape_mrkdwn(idea.key)
        if show_status and idea.status:
            ticket += f" _{escape_mrkdwn(truncate(idea.status, 40))}_"
        parts.append(ticket)
    else:
        parts.append("not filed yet")
    return f"{head}\n{' · '.join(parts)}"


def _ideas(ideas: list[HomeIdea], limit: int, total: int | None = None) -> list[Block]:
    shown = ideas[:limit]
    blocks = [_section(idea_line(i)) for i in shown]
    more = (total if total is not None else len(ideas)) - len(shown)
    if more > 0:
        blocks.append(_context(f"and {more} more"))
    return blocks


def how_to(view: HomeView) -> str:
    """The line on how to use the bot."""
    where = ", ".join(f"<#{c}>" for c in view.channels[:10]) or "an idea channel"
    return (
        f"Post an idea in {where} and I answer in its thread with what I understood and similar "
        f"tickets. React with :{view.file_emoji}: (or press *File as Jira ticket*) to file it, "
        "exactly once; 👍 counts as a vote. *Add to Jira ticket* on a later reply adds it to the "
        "ticket. `/idea <text>` posts and files in one go."
    )


def build_home(view: HomeView) -> list[Block]:
    """The Home tab's blocks for *view* (at most ``MAX_BLOCKS``)."""
    mine: list[Block] = [_header("Your ideas")]
    if view.mine_total == 0:
        mine.append(_section("You have not posted an idea yet."))
    else:
        mine += _ideas(view.mine, MINE_MAX, view.mine_total)
    wanted: list[Block] = [{"type": "divider"}, _header("Most wanted this week")]
    wanted += _ideas(view.most_wanted, LIST_MAX) or [_context("No votes on open ideas yet.")]
    recent: list[Block] = [{"type": "divider"}, _header("Recently filed")]
    recent += _ideas(view.recently_filed, LIST_MAX) or [_context("Nothing filed this week.")]
    tail: list[Block] = [{"type": "divider"}, _context(how_to(view))]
    room = MAX_BLOCKS - len(wanted) - len(recent) - len(tail)
    if len(mine) > room:
        # Only reachable when the caps above are raised: the person's list gives way.
        keep = max(1, room - 1)
        left = view.mine_total - (keep - 1)
        mine = [*mine[:keep], _context(f"and {left} more")]
    return mine + wanted + recent + tail


def home_view(blocks: list[Block]) -> dict[str, Any]:
    """The ``view`` argument of ``views.publish`` for a Home tab."""
    return {"type": "home", "blocks": blocks}
