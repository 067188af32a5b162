"""When is a similar ticket *likely the same* ticket? A pure rule over the index's signals.

One score is weak evidence: Bugzilla-style tickets share boilerplate, so unrelated tickets reach
high cosines. The rule asks for agreement: the fused score clears a threshold, the bodies mean
the same (dense body cosine), and the query meets the ticket's title (the better of query-vs-title
and headline-vs-title cosine). Measured on labelled duplicates (bench/eval_duplicates.py, a
balanced set): these defaults give precision ~0.87 at recall ~0.40; the fused score alone at
0.75 gives precision ~0.82 at recall ~0.58.
"""

from __future__ import annotations

from bot.domain.models import Match

DUPLICATE_THRESHOLD = 0.70
FUSED_ONLY_THRESHOLD = 0.75
MIN_BODY = 0.70
MIN_TITLE = 0.80


def is_likely_duplicate(
    match: Match,
    threshold: float = DUPLICATE_THRESHOLD,
    min_body: float = MIN_BODY,
    min_title: float = MIN_TITLE,
    fused_only_threshold: float = FUSED_ONLY_THRESHOLD,
) -> bool:
    """True when *match* (normally the top match) is very probably a duplicate of the query.

    With signals (``body``, ``title``, ``head_title`` cosines from the index): fused score >=
    *threshold*, body cosine >= *min_body* and max(title, head_title) >= *min_title*. Without
    signals only the fused score is known, and it must reach *fused_only_threshold*.
    """
    s = match.signals
    if not s:
        return match.score >= fused_only_threshold
    title = max(s.get("title", 0.0), s.get("head_title", 0.0))
    return match.score >= threshold and s.get("body", 0.0) >= min_body and title >= min_title
