"""A filing Jira keeps failing ends, through the real app: "failed", a Retry button, an ERROR
line for the operator; the button (or a new reaction) files it once Jira is back."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.slack import blocks
from tests.fakes.wiring import Rig


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path, filing_max_attempts=2, filing_max_age_hours=24)
    yield r
    r.close()


def _retry_button(reply: dict[str, Any]) -> dict[str, Any] | None:
    for block in reply.get("blocks") or []:
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if element.get("action_id") == blocks.ACTION_RETRY:
                return dict(element)
    return None


def _give_up(rig: Rig, text: str) -> dict[str, Any]:
    """Posts *text*, asks to file it and lets both attempts fail; returns the message event."""
    rig.jira.fail_next("/rest/api/2/issue", 503, times=2, method="POST")
    ev = rig.message(text)
    rig.send_event(rig.reaction("CIDEAS01", ev["ts"]))
    rig.wait_idle()
    assert rig.worker.run_once(rig.clock.advance(600)) == 1
    assert rig.jira.issues == {}
    filing = rig.store.get_filing("CIDEAS01", ev["ts"])
    assert filing is not None and filing.state == "failed"
    assert rig.store.pending() == []
    return ev


def test_the_retry_button_files_what_the_bot_gave_up_on(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="bot.service.filing"):
        ev = _give_up(rig, "Add dark mode")
    assert any("giving up" in r.message and "outbox item" in r.message for r in caplog.records)
    replies = rig.slack.thread_replies("CIDEAS01", ev["ts"])
    button = _retry_button(replies[-1])
    assert len(replies) == 2 and "queued" in json.dumps(replies[0]) and button is not None
    assert "stopped trying" in json.dumps(replies[-1])
    assert rig.worker.run_once(rig.clock.advance(3600)) == 0  # nothing left to retry by itself
    rig.send_interactive(rig.button(blocks.ACTION_RETRY, json.loads(button["value"])))
    rig.wait_idle()
    assert len(rig.jira.issues) == 1
    filing = rig.store.get_filing("CIDEAS01", ev["ts"])
    assert filing is not None and filing.state == "filed"
    assert "Filed as" in json.dumps(rig.slack.thread_replies("CIDEAS01", ev["ts"])[-1])


def test_a_new_reaction_after_giving_up_files_it(rig: Rig) -> None:
    ev = _give_up(rig, "Export to CSV")
    rig.send_event(rig.reaction("CIDEAS01", ev["ts"], user="UCAROL"))
    rig.wait_idle()
    assert len(rig.jira.issues) == 1
    filing = rig.store.get_filing("CIDEAS01", ev["ts"])
    assert filing is not None and filing.state == "filed"
