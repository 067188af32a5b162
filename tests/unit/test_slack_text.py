from __future__ import annotations

import pytest

from bot.slack.mrkdwn import (
    escape_mrkdwn,
    has_broadcast,
    link,
    neutralise_broadcasts,
    truncate,
)


@pytest.mark.parametrize(
    "text",
    [
        "<!channel> hi",
        "<!here|here>",
        "<!everyone>",
        "@channel",
        "@here now",
        "@Everyone",
        "<@U123> look",
        "<!subteam^S1|@devs>",
        "<http://evil|click>",
    ],
)
def test_escaped_text_has_no_live_markup(text: str) -> None:
    out = escape_mrkdwn(text)
    assert "<" not in out and ">" not in out
    assert not has_broadcast(out)


def test_escape_ampersand_first() -> None:
    assert escape_mrkdwn("a & <b>") == "a &amp; &lt;b&gt;"


def test_neutralise_keeps_links() -> None:
    out = neutralise_broadcasts("<https://x|X> <!channel> <!subteam^S1>")
    assert "<https://x|X>" in out and not has_broadcast(out)


def test_truncate_never_splits_an_entity() -> None:
    t = truncate("a" * 8 + "&amp;" + "b" * 10, 11)
    assert t.endswith("…") and "&am" not in t and len(t) <= 11


def test_link_refuses_odd_urls() -> None:
    assert link("https://jira/browse/P-1", "P-1") == "<https://jira/browse/P-1|P-1>"
    assert "<" not in link("javascript:alert(1)", "<!here>")
