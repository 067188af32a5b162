"""End to end: opening the App Home tab publishes the person's ideas, the team's most wanted and
the recently filed (issue 11, part 4). Signed events into the real Bolt app; FakeSlack checks
Slack's limits on views.publish."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.domain.models import Ticket
from bot.domain.ports import StoredPost
from tests.fakes.wiring import Rig

CHANNEL = "CIDEAS01"


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path, channels=(CHANNEL, "CSECRET1"))
    yield r
    r.close()


def _open_home(rig: Rig, user: str) -> list[dict[str, Any]]:
    before = len(rig.slack.calls_to("views.publish"))
    event = {"type": "app_home_opened", "user": user, "channel": "D1", "tab": "home"}
    assert rig.send_event(event)[0] == 200
    rig.wait_idle()
    calls = rig.slack.calls_to("views.publish")
    assert len(calls) == before + 1
    assert calls[-1]["user_id"] == user
    return rig.slack.homes[user]


def _text(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


_n = iter(range(1, 10_000))


def _now_ts() -> str:
    return f"{time.time():.0f}.{next(_n):06d}"


def _post(rig: Rig, text: str, user: str, channel: str = CHANNEL, **extra: Any) -> str:
    ev = rig.message(text, channel=channel, user=user, ts=_now_ts(), **extra)
    rig.send_event(ev)
    return str(ev["ts"])


def test_home_for_someone_with_no_ideas(rig: Rig) -> None:
    blocks = _open_home(rig, "UNOBODY")
    text = _text(blocks)
    assert "You have not posted an idea yet." in text and "<#CIDEAS01>" in text


def test_home_with_three_ideas_votes_ticket_and_the_team_lists(rig: Rig) -> None:
    a = _post(rig, "Add dark mode to the dashboard", "UALICE")
    b = _post(rig, "The export crashes on big files", "UALICE")
    c = _post(rig, "Could the bot speak German?", "UALICE")
    other = _post(rig, "Add a CSV export button", "UBOB")
    secret = _post(rig, "Secret plan for a new product", "UCAROL", channel="CSECRET1",
                   channel_type="group")  # fmt: skip
    rig.wait_idle()
    for voter in ("UBOB", "UCAROL", "UDAN"):
        rig.send_event(rig.reaction(CHANNEL, a, user=voter, name="+1"))
    rig.send_event(rig.reaction(CHANNEL, other, user="UALICE", name="+1"))
    for voter in ("UALICE", "UBOB"):
        rig.send_event(rig.reaction("CSECRET1", secret, user=voter, name="+1", item_user="UCAROL"))
    rig.send_event(rig.reaction(CHANNEL, a, user="UBOB", name="ticket"))
    rig.wait_idle()
    key = rig.store.get_filing(CHANNEL, a).issue_key  # type: ignore[union-attr]
    assert key
    blocks = _open_home(rig, "UALICE")
    assert len(blocks) <= 100
    text = _text(blocks)
    mine = text[: text.index("Most wanted this week")]
    for title in ("Add dark mode to the dashboard", "The export crashes", "speak German"):
        assert title in mine
    assert "💡 Idea · 👍 3 ·" in mine and key in mine and "🐞 Bug" in mine and "❓ Question" in mine
    wanted = text[text.index("Most wanted this week") : text.index("Recently filed")]
    assert wanted.index("Add dark mode") < wanted.index("Add a CSV export")
    # A private channel's post shows in its author's own list only.
    assert "Secret plan" not in text
    assert "Secret plan" in _text(_open_home(rig, "UCAROL"))
    recent = text[text.index("Recently filed") :]
    assert "Add dark mode" in recent and key in recent
    assert b and c


def test_home_with_two_hundred_ideas_stays_within_the_limits(rig: Rig) -> None:
    now = datetime.now(UTC)
    for n in range(200):
        rig.store.save_post(
            StoredPost(
                channel=CHANNEL,
                ts=f"{now.timestamp():.0f}.{n:06d}",
                user="UMANY",
                text=f"idea {n}",
                created=now,
                kind="idea",
                title=f"Idea number {n} " + "with a long title " * 20,
            )
        )
    blocks = _open_home(rig, "UMANY")  # FakeSlack refuses more than 100 blocks
    assert len(blocks) <= 100
    assert "and 170 more" in _text(blocks)
    assert "Idea number 199" in _text(blocks)  # the newest first


def test_the_messages_tab_publishes_nothing(rig: Rig) -> None:
    rig.send_event({"type": "app_home_opened", "user": "UALICE", "tab": "messages"})
    rig.wait_idle()
    assert rig.slack.calls_to("views.publish") == []


def test_ticket_status_from_the_catalogue_and_done_ideas_leave_most_wanted(rig: Rig) -> None:
    a = _post(rig, "Add dark mode to the dashboard", "UALICE")
    b = _post(rig, "Add a CSV export button", "UALICE")
    rig.wait_idle()
    for ts in (a, b):
        rig.send_event(rig.reaction(CHANNEL, ts, user="UBOB", name="+1"))
        rig.send_event(rig.reaction(CHANNEL, ts, user="UCAROL", name="ticket"))
    rig.wait_idle()
    key_a = rig.store.get_filing(CHANNEL, a).issue_key  # type: ignore[union-attr]
    key_b = rig.store.get_filing(CHANNEL, b).issue_key  # type: ignore[union-attr]
    assert key_a and key_b
    # What sync-jira keeps: each ticket's status.
    rig.store.put_tickets(
        "PROJ",
        [
            Ticket(key=key_a, title="Dark mode", status="In Progress"),
            Ticket(key=key_b, title="CSV export", status="Done"),
        ],
    )
    text = _text(_open_home(rig, "UDAN"))
    wanted = text[text.index("Most wanted this week") : text.index("Recently filed")]
    assert "Add dark mode" in wanted and "_In Progress_" in wanted
    assert "CSV export" not in wanted  # done: no longer wanted
    mine = _text(_open_home(rig, "UALICE"))
    assert "_Done_" in mine
