"""When is a similar ticket *likely the same* ticket? A pure rule over the index's signals.

One score is weak evidence: Bugzilla-style tickets share boilerplate, so unrelated tickets reach
high cosines. The rule asks for agreement: the fused score (weighted mean of the raw signals)
clears a floor, the bodies mean the same (dense body cosine) and the query meets the ticket's
title (the better of query-vs-title and headline-vs-title cosine). Thresholds chosen by
cross-validation over folds of labelled duplicates (bench/eval_fusion_cv.py), for precision;
z-scores of the signals (how far the match stands above the corpus) were measured there too and
separated duplicates from near-misses no better.

A veto comes first: templated tickets that differ only in a version, number or identifier
("Upgrade libfoo to 2.3.1" / "Upgrade libfoo to 2.4.0") are different work, however high every
score is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.domain.models import Match

DUPLICATE_THRESHOLD = 0.70
FUSED_ONLY_THRESHOLD = 0.75
MIN_BODY = 0.75
MIN_TITLE = 0.75
# Share of the two titles' other words that must agree for them to count as one template.
TEMPLATE_OVERLAP = 0.5

# A token with a digit in it: versions (2.3.1, v2, 3.x), numbers (404, 2024), keys (IDEA-12),
# hashes (9f2c1ab).
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*[A-Za-z0-9]|[A-Za-z0-9]")
_DIGIT = re.compile(r"\d")
_FILLER = frozenset(
    "a an the to of in on for from and or with at by is are be this that it as into".split()
)


def _headline(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")[:300]


def _canonical(identifier: str) -> str:
    # "v13.0" and "13" name the same version.
    if identifier[:1] == "v" and identifier[1:2].isdigit():
        identifier = identifier[1:]
    while identifier.endswith(".0") and identifier.count(".") >= 1:
        identifier = identifier[:-2]
    return identifier


def _split(text: str) -> tuple[set[str], set[str]]:
    """(identifier tokens, other words) of *text*, lower-case."""
    ids: set[str] = set()
    other: set[str] = set()
    for tok in _TOKEN.findall(text.lower()):
        tok = tok.rstrip(".-")
        if _DIGIT.search(tok):
            ids.add(_canonical(tok))
        elif tok not in _FILLER:
            other.add(tok)
    return ids, other


def differs_only_in_identifiers(query: str, title: str, overlap: float = TEMPLATE_OVERLAP) -> bool:
    """True when *query*'s first line and *title* follow one template with other identifiers.

    Both name identifiers (tokens with a digit), neither set contains the other ("to 2.4.0" vs
    "from 2.3.1 to 2.4.0" may well be one ticket; "2.3.1" vs "2.4.0" is not), and at least
    *overlap* of their other words are shared.
    """
    q_ids, q_words = _split(_headline(query))
    t_ids, t_words = _split(_headline(title))
    if not q_ids or not t_ids or q_ids <= t_ids or t_ids <= q_ids:
        return False
    union = q_words | t_words
    return bool(union) and len(q_words & t_words) / len(union) >= overlap


@dataclass(frozen=True)
class DuplicateRule:
    """The likely-duplicate rule; ``check(match, query)`` decides for the best match.

    With signals: fused score >= *min_score*, body cosine >= *min_body* and max(title,
    head_title) >= *min_title*; without any, the fused score alone (*fused_only_threshold*).
    *veto* applies :func:`differs_only_in_identifiers` first.
    """

    min_score: float = DUPLICATE_THRESHOLD
    min_body: float = MIN_BODY
    min_title: float = MIN_TITLE
    fused_only_threshold: float = FUSED_ONLY_THRESHOLD
    veto: bool = True

    def check(self, match: Match, query: str = "") -> bool:
        """True when *match* is very probably a duplicate of *query*."""
        if self.veto and query and differs_only_in_identifiers(query, match.title):
            return False
        s = match.signals
        if not s:
            return match.score >= self.fused_only_threshold
        title = max(s.get("title", 0.0), s.get("head_title", 0.0))
        return (
            match.score >= self.min_score
            and s.get("body", 0.0) >= self.min_body
            and title >= self.min_title
        )


def is_likely_duplicate(
    match: Match,
    threshold: float = DUPLICATE_THRESHOLD,
    min_body: float = MIN_BODY,
    min_title: float = MIN_TITLE,
    fused_only_threshold: float = FUSED_ONLY_THRESHOLD,
    query: str = "",
) -> bool:
    """:class:`DuplicateRule` with these thresholds (the fused score floor is *threshold*)."""
    rule = DuplicateRule(
        min_score=threshold,
        min_body=min_body,
        min_title=min_title,
        fused_only_threshold=fused_only_threshold,
    )
    return rule.check(match, query)
