"""End to end: a Slack Connect channel (shared with another organisation) never shows internal
tickets where external guests read; members of the workspace get them ephemerally."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.domain.models import Ticket
from bot.slack.notifier_connect import FOR_MEMBERS
from tests.fakes.wiring import Rig

SHARED = "CSHARED1"
SECRET_TITLE = "Dark mode for the dashboard at night"
TICKET = Ticket(
    key="PROJ-7",
    title=SECRET_TITLE,
    description="night theme for the ops dashboard",
    url="http://jira.internal/browse/PROJ-7",
)
INTERNAL = ("PROJ-", SECRET_TITLE, "jira.internal", "browse/")


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path, channels=("CIDEAS01", SHARED), tickets=[TICKET])
    r.slack.set_shared(SHARED)
    r.slack.add_user("UGUEST", email="guest@partner.example", team_id="TPARTNER")
    r.slack.add_user("UALICE", email="alice@example.com")
    r.slack.add_user("UBOB", email="bob@example.com")
    yield r
    r.close()


def _seen_by_guests(rig: Rig) -> str:
    """Everything the bot sent where the guest can read it: the shared channel's messages and
    updates, and every ephemeral addressed to the guest."""
    out = []
    for method, params in rig.slack.calls:
        if params.get("channel") != SHARED:
            continue
        if method in ("chat.postMessage", "chat.update") or (
            method == "chat.postEphemeral" and params.get("user") == "UGUEST"
        ):
            out.append(json.dumps(params))
    return "\n".join(out)


def _ephemerals_to(rig: Rig, user: str) -> str:
    return "\n".join(
        json.dumps(p)
        for p in rig.slack.calls_to("chat.postEphemeral")
        if p.get("user") == user and p.get("channel") == SHARED
    )


def test_an_external_guest_sees_no_internal_ticket_title_or_link(rig: Rig) -> None:
    # The guest posts an idea that resembles an internal ticket, then files it with the emoji.
    ev = rig.message("dark mode for the dashboard please", channel=SHARED, user="UGUEST")
    rig.send_event(ev)
    rig.wait_idle()
    replies = rig.slack.thread_replies(SHARED, ev["ts"])
    assert len(replies) == 1  # the triage reply is there, without the similar tickets
    rig.send_event(rig.reaction(SHARED, ev["ts"], user="UGUEST", item_user="UGUEST"))
    rig.wait_idle()
    assert len(rig.jira.issues) == 1  # filed (the guest may file), but told no key
    filed_key = next(iter(rig.jira.issues))
    assert FOR_MEMBERS.split(",")[0] in _ephemerals_to(rig, "UGUEST")

    # A member posts and files in the same channel: they get the details, ephemerally.
    ev2 = rig.message("dark mode for the dashboard at night please", channel=SHARED)
    rig.send_event(ev2)
    rig.wait_idle()
    rig.send_event(rig.reaction(SHARED, ev2["ts"], user="UBOB", name="ticket"))
    rig.wait_idle()
    assert "PROJ-7" in _ephemerals_to(rig, "UALICE")  # the similar ticket, to the author
    bob = _ephemerals_to(rig, "UBOB")
    assert "PROJ-" in bob  # the duplicate offer or the filing result, to the requester

    seen = _seen_by_guests(rig)
    assert seen  # the guest does see the bot's replies...
    for secret in (*INTERNAL, filed_key):
        assert secret not in seen  # ...but no ticket title, key or link
    reacted = rig.slack.calls_to("reactions.add")
    assert {"channel": SHARED, "timestamp": ev["ts"], "name": "white_check_mark"} in reacted


def test_other_channels_keep_the_usual_replies(rig: Rig) -> None:
    ev = rig.message("dark mode for the dashboard please")
    rig.send_event(ev)
    rig.wait_idle()
    reply = json.dumps(rig.slack.thread_replies("CIDEAS01", ev["ts"])[0])
    assert "PROJ-7" in reply
    assert rig.slack.calls_to("chat.postEphemeral") == []
