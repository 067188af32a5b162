"""The App Home builder against Block Kit's limits: nobody's ideas, three, two hundred."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.domain.home import HomeIdea, HomeView
from bot.slack.home_blocks import MAX_BLOCKS, build_home


def _idea(n: int, **kw: Any) -> HomeIdea:
    base: dict[str, Any] = {
        "channel": "C1",
        "ts": f"17000000{n:02d}.000100",
        "title": f"Idea number {n}",
        "kind": "idea",
        "votes": n % 7,
    }
    base.update(kw)
    return HomeIdea(**base)


def _texts(blocks: list[dict[str, Any]]) -> list[str]:
    out = []
    for b in blocks:
        if "text" in b:
            out.append(b["text"]["text"])
        out += [e["text"] for e in b.get("elements", [])]
    return out


def check_limits(blocks: list[dict[str, Any]]) -> None:
    """Slack's limits for a Home view: 100 blocks, section text 3000, header 150, context 10
    elements, and the whole view well within its 250 kB."""
    assert 0 < len(blocks) <= MAX_BLOCKS
    for b in blocks:
        assert b["type"] in {"header", "section", "context", "divider"}
        if b["type"] == "header":
            assert b["text"]["type"] == "plain_text" and 0 < len(b["text"]["text"]) <= 150
        if b["type"] == "section":
            assert 0 < len(b["text"]["text"]) <= 3000
        if b["type"] == "context":
            assert 0 < len(b["elements"]) <= 10
            assert all(0 < len(e["text"]) <= 3000 for e in b["elements"])
    assert len(json.dumps({"type": "home", "blocks": blocks})) < 250_000


def test_a_person_with_no_ideas() -> None:
    blocks = build_home(HomeView(user="U1", channels=("CIDEAS",)))
    check_limits(blocks)
    text = "\n".join(_texts(blocks))
    assert "You have not posted an idea yet." in text
    assert "No votes on open ideas yet." in text and "Nothing filed this week." in text
    assert "<#CIDEAS>" in text and ":ticket:" in text  # how to use it


def test_three_ideas_with_kind_votes_ticket_and_status() -> None:
    mine = [
        _idea(
            1, votes=3, key="PROJ-1", url="https://jira.example/browse/PROJ-1", status="In Progress"
        ),
        _idea(2, kind="bug", votes=0),
        _idea(
            3,
            kind="question",
            title="Can we <!channel> *do* this?",
            permalink="https://x.slack.com/p1",
        ),
    ]
    blocks = build_home(HomeView(user="U1", mine=mine, mine_total=3, most_wanted=mine[:1]))
    check_limits(blocks)
    text = "\n".join(_texts(blocks))
    assert "💡 Idea · 👍 3 · <https://jira.example/browse/PROJ-1|PROJ-1> _In Progress_" in text
    assert "🐞 Bug · not filed yet" in text
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text  # nobody is notified
    assert not any(t.startswith("and ") for t in _texts(blocks))  # all three are shown


@pytest.mark.parametrize("total", [200, 10_000])
def test_two_hundred_ideas_are_truncated_with_a_count(total: int) -> None:
    mine = [_idea(n % 100, title="x" * 500) for n in range(30)]
    team = [_idea(n, title="y" * 5000) for n in range(10)]
    view = HomeView(user="U1", mine=mine, mine_total=total, most_wanted=team, recently_filed=team)
    blocks = build_home(view)
    check_limits(blocks)
    assert f"and {total - 30} more" in _texts(blocks)


def test_the_block_budget_holds_whatever_the_lists_hold() -> None:
    many = [_idea(n % 100) for n in range(500)]
    view = HomeView(user="U1", mine=many, mine_total=500, most_wanted=many, recently_filed=many)
    check_limits(build_home(view))
