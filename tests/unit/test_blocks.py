from __future__ import annotations

import json

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
