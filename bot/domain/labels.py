"""Labels in the team's own vocabulary: those of the most similar tickets, weighted by similarity.

A team that labels its Jira tickets ``billing`` or ``mobile`` wants new tickets labelled the same
way, not with whatever words a post happens to use. The labels and components of the similar
tickets triage found vote with their similarity scores; a label that enough of them agree on
comes first, and the analyzer's own keyphrases fill the rest.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.domain.models import Match

MIN_VOTE = 0.6  # one close ticket (score >= 0.6), or two looser ones, carry a label over
TEAM_LIMIT = 2  # leave room for at least one label from the post itself
MAX_LABELS = 3


def _norm(label: str) -> str:
    return "-".join(label.strip().lower().split())


def team_labels(matches: Sequence[Match], min_vote: float = MIN_VOTE) -> list[str]:
    """Labels of *matches* whose summed scores reach *min_vote*, best first (ties: first seen)."""
    votes: dict[str, float] = {}
    for m in matches:
        for label in dict.fromkeys(_norm(x) for x in m.labels if x.strip()):
            votes[label] = votes.get(label, 0.0) + m.score
    ranked = sorted(votes, key=lambda k: -votes[k])
    return [k for k in ranked if votes[k] >= min_vote]


def merge_labels(
    matches: Sequence[Match], own: Sequence[str], limit: int = MAX_LABELS
) -> tuple[str, ...]:
    """The team's labels (at most ``TEAM_LIMIT``) then the post's own, without repeats."""
    out: list[str] = []
    for label in [*team_labels(matches)[:TEAM_LIMIT], *own]:
        if label and label not in out:
            out.append(label)
    return tuple(out[:limit])
