"""What a post does (asks, proposes, reports, or only notes), its title and its labels."""

from __future__ import annotations

import pytest

from bot.adapters.extract import make_title
from bot.adapters.keyphrases import is_topic_word, keyphrase_labels
from bot.adapters.post_intent import proposes, seeks_help, settle_kind, titled_as_change
from bot.domain.labels import merge_labels, team_labels
from bot.domain.models import Match


@pytest.mark.parametrize(
    ("model_says", "text", "kind"),
    [
        # notes and announcements that neither ask nor propose
        ("question", "The panel discussed how platform teams can improve developer experience.",
         "other"),
        ("idea", "Heads up: the staging cluster will be down for maintenance tonight.", "other"),
        ("bug", "Recap of the retro: we agreed to keep a deploy freeze after 3pm.", "other"),
        # ... unless they ask or propose
        ("question", "Notes from the sync: does anyone know who owns the build cache?", "question"),
        ("idea", "Recap: we should move the retro to Thursdays.", "idea"),
        # a reported failure in an announcement is still a bug
        ("bug", "Heads up: login fails with a 500 for everyone since the deploy.", "bug"),
        # outside notes, a "question" without a question mark keeps the model's word
        ("question", "Data is lost on page refresh; tried redux-persist.", "question"),
        # ordinary posts keep the model's word
        ("question", "How do I rotate the staging API token", "question"),
        ("bug", "The CSV export downloads an empty file.", "bug"),
        ("other", "Thanks all!", "other"),
    ],
)  # fmt: skip
def test_settle_kind(model_says: str, text: str, kind: str) -> None:
    assert settle_kind(model_says, text) == kind


@pytest.mark.parametrize(
    ("text", "titled"),
    [
        ("Add a CSV export to the monthly report\nThe finance team asks for it every month.", True),
        ("Settings: allow a dark theme", True),
        ("[Editor] Support soft tabs", True),
        ("\n  Make the sidebar resizable", True),
        # a title that names what is wrong, an instruction, an announcement
        ("The add button does nothing on Safari", False),
        ("Make sure you rotate the staging token today", False),
        ("Update: the deploy is done", False),
        ("Fix: login fails after the upgrade", False),
        # only the first line counts
        ("Login fails after the upgrade\nAdd this to the known issues.", False),
    ],
)  # fmt: skip
def test_a_title_that_opens_with_a_verb_of_change_reads_as_a_request(
    text: str, titled: bool
) -> None:
    assert titled_as_change(text) is titled


@pytest.mark.parametrize(
    ("text", "helps", "proposes_change"),
    [
        # a help-seeking post that describes an error: it asks for help, proposes nothing
        ("Getting KeyError when loading my settings\nI am trying to load them from a JSON file "
         "and it stops with KeyError: 'port'. What am I missing?", True, False),
        ("Is there a way to run two instances on one machine?", True, False),
        # a bug report whose only "?" is in a stack trace or a URL does not seek help
        ("Export crashes on empty rows\nExpected a CSV, got:\nFile \"export.py\", line 12, in "
         "row?.get\nKeyError: 'port' (GET /export?sheet=1)", False, False),
        # a proposal
        ("It would be nice to export the report as a PDF.", False, True),
    ],
)  # fmt: skip
def test_help_seeking_and_proposals_are_told_apart(
    text: str, helps: bool, proposes_change: bool
) -> None:
    assert seeks_help(text) is helps
    assert proposes(text) is proposes_change


@pytest.mark.parametrize(
    ("post", "kind", "title"),
    [
        ("After yesterday's on-call: it would be really nice if pager alerts linked to the "
         "runbook", "idea", "Pager alerts linked to the runbook"),
        ("So I was wondering whether we could get read-only access to the prod database for "
         "support, they keep pinging engineers", "idea",
         "Read-only access to the prod database for support"),
        ("Does anyone know how to rotate the staging API token?", "question",
         "How to rotate the staging API token?"),
        ("Is there a way to mute the deploy bot?", "question", "How to mute the deploy bot?"),
        ("The CSV export is broken again; it downloads an empty file", "bug",
         "CSV export is broken again"),
    ],
)  # fmt: skip
def test_titles_read_like_tickets(post: str, kind: str, title: str) -> None:
    assert make_title(post, kind) == title


def test_labels_are_topics_not_verbs_or_filler() -> None:
    text = (
        "The panel discussed how platform teams can improve developer experience. "
        "Interesting point made about golden paths for platform teams."
    )
    labels = keyphrase_labels(text, limit=3, focus="Panel on platform teams")
    assert labels and labels[0] == "platform-teams"
    for bad in ("discussed", "interesting", "point", "made", "improve", "can"):
        assert all(bad not in label.split("-") for label in labels)
    assert not is_topic_word("discussed") and not is_topic_word("wondering")
    assert is_topic_word("billing") and is_topic_word("dashboard")
    assert keyphrase_labels("thanks so much!!") == []


def test_team_labels_come_first_weighted_by_similarity() -> None:
    close = Match(key="A-1", score=0.8, labels=("Billing", "export"))
    loose = Match(key="A-2", score=0.35, labels=("billing", "mobile"))
    other = Match(key="A-3", score=0.3, labels=("mobile",))
    assert team_labels([close, loose, other]) == ["billing", "export", "mobile"]
    assert team_labels([other]) == []  # one loose ticket is not the team's word
    assert merge_labels([close, loose, other], ("csv", "billing")) == ("billing", "export", "csv")
    assert merge_labels([], ("csv",)) == ("csv",)
