from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.filing import FilingResult
from bot.domain.models import Match, Triage
from bot.slack import blocks
from bot.slack.mrkdwn import has_broadcast


def _triage(**kw: object) -> Triage:
    base: dict[str, object] = {
        "kind": "idea",
        "confidence": 0.9,
        "title": "Dark mode",
        "summary": "Night theme",
        "analyzer": "t",
    }
    base.update(kw)
    return Triage(**base)  # type: ignore[arg-type]


def _sections(bl: list[dict[str, object]]) -> list[str]:
    return [b["text"]["text"] for b in bl if b["type"] == "section"]  # type: ignore[index]


def test_triage_reply_shape_and_limits() -> None:
    matches = tuple(
        Match(key=f"P-{i}", title="t" * 500, score=0.6, url=f"https://j/browse/P-{i}")
        for i in range(30)
    )
    text, bl = blocks.build_triage_reply(
        _triage(summary="s" * 5000, similar=matches), "C1", "1.2", "ticket"
    )
    assert len(bl) <= blocks.MAX_BLOCKS
    assert all(len(s) <= blocks.SECTION_MAX for s in _sections(bl))
    button = bl[-1]["elements"][0]  # type: ignore[index]
    assert button["action_id"] == blocks.ACTION_FILE
    assert json.loads(button["value"]) == {"c": "C1", "ts": "1.2"}
    assert len(button["text"]["text"]) <= blocks.BUTTON_LABEL_MAX
    assert "Dark mode" in text


def test_triage_reply_escapes_user_text() -> None:
    _, bl = blocks.build_triage_reply(
        _triage(title="<!channel> now", summary="@here <@U1>"), "C1", "1.2", "ticket"
    )
    dumped = json.dumps(bl)
    assert not has_broadcast(" ".join(_sections(bl))) and "<@U1>" not in dumped


def test_duplicate_offer_buttons() -> None:
    m = Match(key="PROJ-" + "9" * 200, title="x", score=0.97, url="https://j/browse/PROJ-9")
    _, bl = blocks.build_duplicate_offer(m, "C1", "1.2")
    els = bl[1]["elements"]  # type: ignore[index]
    assert [e["action_id"] for e in els] == [blocks.ACTION_COMMENT, blocks.ACTION_FILE_ANYWAY]
    assert all(len(e["text"]["text"]) <= blocks.BUTTON_LABEL_MAX for e in els)
    assert json.loads(els[0]["value"])["k"] == m.key


def test_filing_results() -> None:
    text, _ = blocks.build_filing_result(FilingResult("filed", key="P-1", url="https://j/P-1"))
    assert "<https://j/P-1|P-1>" in text
    text, _ = blocks.build_filing_result(FilingResult("rejected", message="field <!here> bad"))
    assert not has_broadcast(text)
    assert blocks.build_filing_result(FilingResult("duplicate")) == ("", [])


def test_slack_entities_are_not_escaped_twice() -> None:
    from bot.adapters.jira_format import render_wiki
    from bot.domain.models import IssueText, clean_title, slack_unescape

    # Slack sends "A & B <3" as "A &amp; B &lt;3"; people should read what they typed.
    assert clean_title("Export A &amp; B &lt;3 &lt;!here&gt;") == "Export A & B <3 <!here>"
    body = IssueText(original=slack_unescape("Export A &amp; B &lt;3 &amp;lt;"))
    assert "Export A & B <3 &lt;" in render_wiki(body)


# ------------------------------------------------------------------ never blank, never raise


@pytest.mark.parametrize("text", ["", "   ", "\n\t \n"])
def test_a_blank_notice_renders_nothing(text: str) -> None:
    assert blocks.build_notice(text) == ("", [])
    assert blocks.build_filing_result(FilingResult("unavailable", message=text))[0].strip()


def test_a_long_non_ascii_key_keeps_the_offer_within_slacks_value_limit() -> None:
    m = Match(key="ключ-" * 120, title="x", score=0.97)  # 600 characters, 6 bytes each in JSON
    _, bl = blocks.build_duplicate_offer(m, "C1", "1.2")
    els = bl[1]["elements"]  # type: ignore[index]
    assert all(len(e["value"]) <= blocks.VALUE_MAX for e in els)
    # the key is left out: the button names the message, and the key is looked up on click
    assert json.loads(els[0]["value"]) == {"c": "C1", "ts": "1.2"}


def _elements(bl: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for b in bl if b["type"] == "actions" for e in b["elements"]]


def _valid(bl: list[dict[str, Any]]) -> None:
    """What Slack refuses: too many blocks, empty or long texts, long labels and values."""
    assert len(bl) <= blocks.MAX_BLOCKS
    for b in bl:
        texts = [b["text"]] if "text" in b else list(b.get("elements", []))
        for t in texts:
            if t.get("type") in ("mrkdwn", "plain_text"):
                assert t["text"].strip() and len(t["text"]) <= blocks.SECTION_MAX
    for e in _elements(bl):
        assert e["text"]["text"].strip() and len(e["text"]["text"]) <= blocks.BUTTON_LABEL_MAX
        assert len(e.get("value", "")) <= blocks.VALUE_MAX


_any_text = st.text(max_size=3000)


@settings(max_examples=300, deadline=None)
@given(
    key=st.text(min_size=1, max_size=3000),
    title=_any_text,
    channel=st.text(max_size=50),
    ts=st.text(max_size=50),
    score=st.floats(0, 1),
    message=_any_text,
    votes=st.integers(-5, 10**6),
)
def test_builders_never_raise_and_stay_within_slacks_limits(
    key: str, title: str, channel: str, ts: str, score: float, message: str, votes: int
) -> None:
    m = Match(key=key, title=title, score=score, url="https://j/browse/X")
    for text, bl in (
        blocks.build_duplicate_offer(m, channel, ts),
        blocks.build_triage_reply(
            _triage(title=f"t {title}", similar=(m,)), channel, ts, "ticket", votes=votes
        ),
        blocks.build_notice(message),
        blocks.build_denied(message),
        blocks.build_filing_result(FilingResult("unavailable", message=message)),
        blocks.build_filing_result(FilingResult("rejected", message=message)),
        blocks.build_edited_after_filing(FilingResult("already", key=key), True),
        blocks.build_post_deleted(FilingResult("already", key=key)),
    ):
        _valid(bl)
        assert len(text) <= blocks.TEXT_MAX
        assert not has_broadcast(text)


def test_triage_reply_shows_votes_and_the_ticket_once_filed() -> None:
    _, bl = blocks.build_triage_reply(_triage(), "C1", "1.2", "ticket", votes=3)
    assert "👍 3" in json.dumps(bl, ensure_ascii=False)
    assert _elements(bl)[0]["action_id"] == blocks.ACTION_FILE
    filed = FilingResult("already", key="P-1", url="https://j/P-1")
    _, bl = blocks.build_triage_reply(_triage(), "C1", "1.2", "ticket", votes=0, filed=filed)
    dumped = json.dumps(bl, ensure_ascii=False)
    assert "👍" not in dumped and "<https://j/P-1|P-1>" in dumped and _elements(bl) == []
