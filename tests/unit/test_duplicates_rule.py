"""The likely-duplicate rule: agreement of signals, and the veto for templated tickets."""

from __future__ import annotations

import pytest

from bot.domain.duplicates import DuplicateRule, differs_only_in_identifiers, is_likely_duplicate
from bot.domain.models import Match

STRONG = {"body": 0.9, "title": 0.6, "head_title": 0.95, "lexical": 1.0, "lexical_abs": 0.6}


@pytest.mark.parametrize(
    ("query", "title"),
    [
        ("Upgrade libfoo to 2.3.1", "Upgrade libfoo to 2.4.0"),
        ("Remove release 3.1 from the download page", "Remove release 2.9 from the download page"),
        ("Bump jackson-databind to v2.15", "Bump jackson-databind to v2.16"),
        ("Error 404 on the export page\nIt fails every time.", "Error 500 on the export page"),
        ("Backport IDEA-12 to the 4.x branch", "Backport IDEA-19 to the 4.x branch"),
    ],
)
def test_templated_tickets_with_other_identifiers_are_vetoed(query: str, title: str) -> None:
    assert differs_only_in_identifiers(query, title)
    assert not DuplicateRule().check(Match(key="A", title=title, score=0.95, signals=STRONG), query)


@pytest.mark.parametrize(
    ("query", "title"),
    [
        # the same identifiers, or one side naming a superset: may well be the same work
        ("Upgrade libfoo from 2.3.1 to 2.4.0", "Upgrade libfoo to 2.4.0"),
        ("SeaMonkey crashes on MacOS Ventura 13.0", "SeaMonkey crashes on macOS Ventura 13"),
        # only one side names a version
        ("Crash on startup in 2.53.1", "Crash on startup"),
        # different identifiers but different work is not this veto's business
        ("Upgrade libfoo to 2.3.1", "Dark mode for the 2.4 dashboard settings page"),
        ("No identifiers at all", "Nothing here either"),
    ],
)
def test_other_differences_are_not_vetoed(query: str, title: str) -> None:
    assert not differs_only_in_identifiers(query, title)


def test_rule_fires_on_agreeing_signals_and_not_on_weak_ones() -> None:
    rule = DuplicateRule()
    title = "Upgrade libfoo to 2.4.0"
    assert rule.check(Match(key="A", title=title, score=0.9, signals=STRONG), title)
    assert not rule.check(Match(key="A", title=title, score=0.6, signals=STRONG), title)
    weak_title = {**STRONG, "head_title": 0.5}
    assert not rule.check(Match(key="A", title=title, score=0.9, signals=weak_title), title)
    weak_body = {**STRONG, "body": 0.6}
    assert not rule.check(Match(key="A", title=title, score=0.9, signals=weak_body), title)
    # without signals only the fused score is known
    assert rule.check(Match(key="A", score=0.76))
    assert not rule.check(Match(key="A", score=0.74))


def test_veto_can_be_switched_off_and_the_function_form_takes_the_query() -> None:
    m = Match(key="A", title="Upgrade libfoo to 2.4.0", score=0.9, signals=STRONG)
    assert DuplicateRule(veto=False).check(m, "Upgrade libfoo to 2.3.1")
    assert not is_likely_duplicate(m, query="Upgrade libfoo to 2.3.1")
    assert is_likely_duplicate(m, query="Upgrade libfoo to 2.4.0")
    assert is_likely_duplicate(m)  # no query: nothing to compare
