"""The thread as context: which replies a filing carries, and how they reach Jira."""

from __future__ import annotations

from bot.adapters.jira_format import JIRA_TEXT_LIMIT, render_wiki, utf16_len
from bot.domain.models import ChatMessage, IssueText
from bot.domain.threads import ThreadLimits, neutralise, thread_context, with_thread

NAMES = {"U1": "Ann", "U2": "Ben"}


def _msgs(n: int, text: str = "reply {n}") -> list[ChatMessage]:
    root = ChatMessage(ts="100.000000", text="the idea", user="U1")
    bot = ChatMessage(ts="100.500000", text="Idea: …", user="UBOT", by_bot=True)
    return [root, bot] + [
        ChatMessage(
            ts=f"{101 + i}.000000",
            text=text.replace("{n}", str(i)),
            user="U2",
            thread_ts="100.000000",
        )
        for i in range(n)
    ]


def test_mentions_are_neutralised() -> None:
    text = (
        "hey <!here> and <!channel|channel>, <@U1> said <#C1|ideas> <https://x.io|docs> "
        "&lt;!here&gt;"
    )
    out = neutralise(text, NAMES.get)
    assert out == "hey here and channel, Ann said #ideas docs <!here>"
    assert neutralise("<@U9|someone> <!subteam^S1|@devs>", NAMES.get) == "someone devs"


def test_replies_in_order_without_the_root_and_bots() -> None:
    ctx = thread_context(list(reversed(_msgs(3))), "100.000000", NAMES.get)
    assert [(r.author, r.text) for r in ctx.replies] == [
        ("Ben", "reply 0"),
        ("Ben", "reply 1"),
        ("Ben", "reply 2"),
    ]
    assert ctx.more == 0


def test_caps_count_the_rest() -> None:
    ctx = thread_context(_msgs(30), "100.000000", NAMES.get, ThreadLimits(replies=20))
    assert len(ctx.replies) == 20 and ctx.more == 10
    long = thread_context(
        _msgs(10, "x" * 5000),
        "100.000000",
        NAMES.get,
        ThreadLimits(reply_chars=1000, total_chars=3000),
    )
    assert [len(r.text) for r in long.replies] == [1000, 1000, 1000] and long.more == 7
    assert with_thread("post", long).endswith("- and 7 more")
    assert with_thread("post", None) == "post"


def test_the_description_stays_within_jiras_limit_with_a_huge_thread() -> None:
    ctx = thread_context(
        _msgs(100, "[~admin] {code} 𝕏" * 200),
        "100.000000",
        NAMES.get,
        ThreadLimits(replies=100, reply_chars=4000, total_chars=400_000),
    )
    text = render_wiki(IssueText(summary="s", original="o" * 40_000, thread=ctx))
    assert utf16_len(text) <= JIRA_TEXT_LIMIT
    assert "h3. Thread" in text and "more in Slack_" in text
    assert "[~admin]" not in text  # escaped: no Jira mention
