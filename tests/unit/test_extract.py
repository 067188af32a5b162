"""Text helpers of the offline analyzer: cleaning, titles, summaries, labels, features."""

from __future__ import annotations

import pytest

from bot.adapters.extract import (
    MAX_WORK_CHARS,
    hashed_counts,
    keyword_labels,
    main_sentences,
    make_summary,
    make_title,
    ngrams,
    slack_to_text,
    strip_lead_in,
    title_and_summary,
)
from bot.domain.models import SUMMARY_MAX, TITLE_MAX


def test_slack_markup_is_removed_and_link_labels_kept() -> None:
    text = (
        "<!channel> <@U123ABC> see <https://example.com/a|the spec> and <#C42|design> :bulb: 🎉 "
        "ping @maria, code:\n```stack trace here```\nthanks"
    )
    out = slack_to_text(text)
    for gone in ("<", ">", "!channel", "U123ABC", ":bulb:", "🎉", "@maria", "stack trace", "https"):
        assert gone not in out
    assert "the spec" in out and "#design" in out and "thanks" in out


def test_code_blocks_can_be_replaced_by_a_marker() -> None:
    assert "codeblock" in slack_to_text("it fails\n```boom```", code=" codeblock ")


def test_work_is_bounded_for_huge_posts() -> None:
    assert len(slack_to_text("a " * 50_000)) <= MAX_WORK_CHARS


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("hey team, idea: dark mode for the dashboard", "dark mode for the dashboard"),
        ("Hi all! What if we added dark mode", "add dark mode"),
        ("I think we should cache search results", "cache search results"),
        ("it would be nice to have a keyboard shortcut", "a keyboard shortcut"),
        ("Feature request: bulk edit tags", "bulk edit tags"),
        ("So, not sure if this is a bug but the badge is wrong", "the badge is wrong"),
        ("The export fails", "The export fails"),
    ],
)
def test_lead_ins_are_stripped(sentence: str, expected: str) -> None:
    assert strip_lead_in(sentence) == expected


def test_title_is_the_main_sentence_cleaned_and_capitalised() -> None:
    text = "Good morning folks! :wave:\n<@U1> we should add a retry button on failed webhooks."
    assert make_title(text, "idea") == "Add a retry button on failed webhooks"
    assert title_and_summary(text + " It hurts.", "idea") == (
        "Add a retry button on failed webhooks",
        "Add a retry button on failed webhooks. It hurts.",
    )


def test_question_titles_prefer_the_question_and_keep_the_mark() -> None:
    text = "I'm setting up SSO for our workspace. How do I upload the SAML metadata?"
    assert make_title(text, "question") == "How do I upload the SAML metadata?"
    assert main_sentences(text)[0].startswith("I'm setting up SSO")


@pytest.mark.parametrize("text", ["", "   ", ":tada:", "<@U1> <!here>", "🎉", "<http://x.io>"])
def test_empty_posts_get_a_fallback_title_and_empty_summary(text: str) -> None:
    assert make_title(text) == "Untitled post"
    assert make_summary(text) == ""


def test_long_titles_are_cut_at_a_word() -> None:
    text = "The dashboard " + "really " * 60 + "needs a dark mode"
    title = make_title(text)
    assert len(title) <= TITLE_MAX
    assert title.endswith("…")
    assert "\n" not in title


def test_a_single_20000_char_word_still_gives_bounded_output() -> None:
    text = "x" * 20_000
    assert len(make_title(text)) <= TITLE_MAX
    assert len(make_summary(text)) <= SUMMARY_MAX
    assert all(len(label) <= 30 for label in keyword_labels(text))


def test_summary_is_at_most_three_sentences_and_600_chars() -> None:
    text = "Exports fail. Billing shows NaN. Search is slow. Login loops forever. Logs are empty."
    assert make_summary(text) == "Exports fail. Billing shows NaN. Search is slow."
    long = " ".join(f"Sentence number {i} is " + "quite long " * 30 + "." for i in range(5))
    assert len(make_summary(long)) <= SUMMARY_MAX


def test_keyword_labels_prefer_rare_words_and_the_title() -> None:
    text = "The export button on the billing page crashes. The page is the billing page."
    assert keyword_labels(text, limit=2) == ["page", "billing"]
    common = {"page": 0.1, "billing": 0.1}
    assert keyword_labels(text, idf=lambda w: common.get(w, 1.0), limit=2) == ["export", "button"]
    assert keyword_labels(text, limit=1, focus="Billing crashes") == ["billing"]
    assert keyword_labels("thanks so much!!") == []


def test_ngrams_include_bigrams_question_marks_and_lead_features() -> None:
    grams = ngrams("How do I reset it?", lead=2)
    assert {"how", "how do", "?", "it ?", "^how", "^how do"} <= set(grams)
    assert "^reset" not in grams


def test_hashed_counts_are_deterministic_and_sublinear() -> None:
    a, b = hashed_counts(["crash crash crash", "crash crash crash"], 1 << 10)
    assert a == b
    assert max(a.values()) < 3.0


@pytest.mark.parametrize(
    ("post", "title"),
    [
        (
            "hey team :bulb: what if the dashboard had a dark theme? my eyes hurt",
            "Dark theme for the dashboard",
        ),
        ("What if our mobile app supported offline mode?", "Offline mode for our mobile app"),
        ("Idea: what if this page showed the due date", "Due date for this page"),
        ("what if we added SSO", "Add SSO"),
    ],
)
def test_hypothetical_wishes_read_as_ticket_titles(post: str, title: str) -> None:
    assert title_and_summary(post, "idea")[0] == title
