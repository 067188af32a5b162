"""Jira's formats live in the adapter: the wiki markup of descriptions, the JQL of queries."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.adapters.jira_format import (
    cut_utf16,
    marker_query,
    render_wiki,
    safe_link,
    updated_query,
    utf16_len,
    wiki_text,
)
from bot.domain.models import IssueText

# What Jira's BackslashEscapeRendererComponent accepts after a backslash.
_ESCAPABLE = set("-#*_+?^~|%{}[]()!@")
_LIVE = set("[]{}!|")  # link, image, macro, table/link separators
_LINE_START = re.compile(r"^\s*(h[1-6]\.|bq\.|[*#|]|-)")


def test_updated_query_quotes_project_and_orders() -> None:
    since = datetime(2026, 11, 2, 9, 5, tzinfo=UTC)
    assert updated_query("IDEA", None) == 'project = "IDEA" ORDER BY updated ASC'
    assert updated_query("IDEA", since, "statusCategory != Done") == (
        'project = "IDEA" AND (statusCategory != Done) AND updated >= "2026/11/02 09:05" '
        "ORDER BY updated ASC"
    )


def test_marker_query_quotes_values() -> None:
    assert marker_query("AND", 'x"y') == 'project = "AND" AND labels = "x\\"y"'


# --------------------------------------------------------------------------- wiki markup


def _split(rendered: str) -> tuple[str, str, str]:
    """(before, inside, after) the one {noformat} block of our frame."""
    opening = rendered.index("{noformat}\n")
    closing = rendered.rindex("\n{noformat}")
    return rendered[:opening], rendered[opening + 11 : closing], rendered[closing + 11 :]


def _live_markup(text: str) -> list[str]:
    """The markup characters and line-start markup Jira would act on in *text* (outside noformat).

    A backslash before an escapable character and the entity ``&#92;`` are literal text; what is
    left of ``[ ] { } ! |`` would start a link, image, macro or table.
    """
    found: list[str] = []
    literal: list[str] = []  # the text as Jira shows it, escapes replaced by a neutral character
    i = 0
    while i < len(text):
        if text.startswith("\\\\", i):  # a forced line break
            found.append("\\\\")
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in _ESCAPABLE:
            literal.append("x")
            i += 2
            continue
        if text.startswith("&#92;", i):
            literal.append("x")
            i += 5
            continue
        if text[i] in _LIVE:
            found.append(text[i])
        literal.append(text[i])
        i += 1
    # Java's MULTILINE "^" also starts a line after \r, \u0085, \u2028 and \u2029.
    for line in "".join(literal).splitlines():
        if _LINE_START.match(line) and line != "h3. Original post":
            found.append(line[:10])
    return found


def test_person_and_model_text_cannot_link_or_embed() -> None:
    body = IssueText(
        summary="Nice idea !https://evil.example/px.png! and {html}<b>x</b>{html}\nh1. Big",
        original="[fine|https://inside.example] in noformat",
        permalink="https://acme.slack.com/archives/C1/p1700000000123456?thread_ts=1.2&cid=C1",
        author="Mallory [Verify your Jira account|https://evil.example/sso]",
    )
    out = render_wiki(body)
    before, inside, after = _split(out)
    assert _live_markup(before) == [] and _live_markup(after) == []
    assert r"Mallory \[Verify your Jira account\|https://evil.example/sso\]" in after
    assert r"\!https://evil.example/px.png\!" in before
    assert r"\{html\}" in before and "h1&#46; Big" in before
    assert inside == "[fine|https://inside.example] in noformat"  # verbatim, inside noformat
    # our own permalink stays a plain, working link
    assert "Slack thread: https://acme.slack.com/archives/C1/p1700000000123456?thread_ts" in after


def test_permalink_with_markup_or_other_scheme_is_not_a_link() -> None:
    assert safe_link("https://acme.slack.com/archives/C1/p17?thread_ts=1.2&cid=C1")
    for link in (
        "javascript:alert(1)",
        "https://evil.example/x|[a]",
        "https://evil.example/!p.png!",
        "https://evil.example/{adf}",
        "ftp://x.example/a",
        "https://x.example/a b",
        "https:///no-host",
    ):
        assert not safe_link(link), link
        _, _, after = _split(render_wiki(IssueText(original="x", permalink=link)))
        assert _live_markup(after) == [], link
    _, _, after = _split(render_wiki(IssueText(permalink="https://e.example/[x|https://evil]")))
    assert r"Slack thread: https://e.example/\[x\|https://evil\]" in after


def test_backslashes_show_literally() -> None:
    # "\\" is a forced line break in Jira and "\[" an escape: a backslash before either is an
    # entity; elsewhere it is shown as it is.
    assert wiki_text("a\\b\\\\[c") == "a\\b&#92;&#92;\\[c"
    assert wiki_text("bq. quote\n  * item\n----\n# one") == (
        "bq&#46; quote\n  \\* item\n\\-\\-\\-\\-\n\\# one"
    )


def test_noformat_cannot_be_closed_from_the_post() -> None:
    out = render_wiki(IssueText(original="a {noformat} b {NoFormat} c {noformat:title=x}"))
    assert len(re.findall(r"\{noformat", out, re.IGNORECASE)) == 2


def test_cut_by_utf16_units_never_splits_a_pair() -> None:
    assert utf16_len("a😀𝕏") == 5
    assert cut_utf16("a😀𝕏", 4) == "a😀" and cut_utf16("a😀𝕏", 2) == "a"
    assert cut_utf16("abc", 10) == "abc"


def test_astral_post_fits_the_limit_in_utf16_units() -> None:
    for original in ("😀" * 40_000, "x" * 40_000, "\\[" * 20_000):
        out = render_wiki(IssueText(summary="𝕏" * 20_000, original=original, author="😀" * 500))
        assert utf16_len(out) <= 32_767
        assert out.encode("utf-16-le")  # no lone surrogate
        assert len(re.findall(r"\{noformat\}", out)) == 2 and "cut:" in out


_NASTY = st.sampled_from(
    [
        "[",
        "]",
        "|",
        "!",
        "{",
        "}",
        "\\",
        "\n",
        "h1. ",
        "bq. ",
        "----",
        "* ",
        "# ",
        "- ",
        "{noformat}",
        "[~accountid:123]",
        "!https://evil.example/px.png!",
        "[click|https://evil.example]",
        "{adf:display=block}{}{adf}",
        "&#92;",
        "𝕏",
        "😀",
    ]
)
_TEXT = st.lists(st.one_of(_NASTY, st.text(max_size=8)), max_size=30).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(summary=_TEXT, author=_TEXT, original=_TEXT, permalink=_TEXT)
def test_no_markup_from_the_input_survives(
    summary: str, author: str, original: str, permalink: str
) -> None:
    out = render_wiki(
        IssueText(summary=summary, original=original, permalink=permalink, author=author)
    )
    before, inside, after = _split(out)
    assert _live_markup(before) == []
    assert _live_markup(after) == []
    assert not re.search(r"\{noformat", inside, re.IGNORECASE)
    assert utf16_len(out) <= 32_767


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    summary=_TEXT,
    original=_TEXT,
    author=_TEXT,
    limit=st.integers(min_value=1000, max_value=1200),
    repeat=st.integers(min_value=1, max_value=400),
)
def test_any_text_fits_any_limit(
    summary: str, original: str, author: str, limit: int, repeat: int
) -> None:
    body = IssueText(summary=summary * repeat, original=original * repeat, author=author * repeat)
    out = render_wiki(body, limit)
    assert utf16_len(out) <= limit
    before, inside, after = _split(out)
    assert _live_markup(before) == [] and _live_markup(after) == []
    assert not re.search(r"\{noformat", inside, re.IGNORECASE)


def test_the_footer_carries_the_trace_id_and_nothing_else_from_it() -> None:
    from bot.adapters.jira_format import render_wiki
    from bot.domain.models import IssueText

    text = render_wiki(IssueText(summary="s", original="o", trace_id="ab12*[x]"))
    assert text.endswith("Filed by ideabot (trace ab12x).")
    assert render_wiki(IssueText(summary="s", original="o")).endswith("Filed by ideabot.")
