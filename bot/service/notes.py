"""Notes with many ideas: finds them in a long post and looks up similar tickets for each.

Runs inside triage (``Triager``) after the post's own verdict: a post of at least
``NotesPolicy.min_chars`` characters in a channel where the ``notes-ideas`` flag is on is read
by the :class:`~bot.domain.notes.IdeaExtractor`; with at least ``min_ideas`` ideas the verdict
carries them (``Triage.ideas``) and the reply lists them, each with its own file button
(``bot.service.file_idea``). Anything less, or any failure, leaves the verdict as it was: such
a post is answered exactly as before.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from bot.domain.flags import AllOn, Flags
from bot.domain.metrics import NOTES_IDEAS, NOTES_POSTS, Metrics, NullMetrics
from bot.domain.models import Idea, Match, Post, Triage
from bot.domain.notes import IdeaExtractor, NotesPolicy
from bot.domain.ports import TicketIndex

logger = logging.getLogger(__name__)

FLAG = "notes-ideas"


@dataclass
class NotesFinder:
    """Adds the ideas of a notes post to its verdict (see the module docstring)."""

    extractor: IdeaExtractor
    index: TicketIndex | None = None
    policy: NotesPolicy = field(default_factory=NotesPolicy)
    top_k: int = 3
    min_score: float = 0.5
    flags: Flags = field(default_factory=AllOn)
    metrics: Metrics = field(default_factory=NullMetrics)

    def wants(self, post: Post) -> bool:
        """True when *post* is long enough and the flag is on for its channel and author."""
        return self.policy.long_enough(post.text) and self.flags.enabled(
            FLAG, post.channel or None, post.user or None
        )

    def attach(self, post: Post, verdict: Triage, *, search: bool = True) -> Triage:
        """*verdict* with the ideas of *post* when it is a notes post, else *verdict* itself.

        *search* False skips the similar-ticket lookups (the ``duplicate-check`` flag is off).
        """
        if not self.wants(post):
            return verdict
        try:
            ideas = self.extractor.extract(post, self.policy.max_ideas)[: self.policy.max_ideas]
        except Exception:
            logger.warning("idea extraction failed for %s; answered as one post", post.id)
            logger.debug("idea extraction failure", exc_info=True)
            self.metrics.inc(NOTES_POSTS, outcome="failed")
            return verdict
        if len(ideas) < self.policy.min_ideas:
            self.metrics.inc(NOTES_POSTS, outcome="single")
            return verdict
        if search:
            ideas = self._with_similar(ideas)
        self.metrics.inc(NOTES_POSTS, outcome="notes")
        self.metrics.inc(NOTES_IDEAS, float(len(ideas)), analyzer=self.extractor.name)
        # A post that proposes several things is not chit-chat, whatever it read as whole.
        kind = "idea" if verdict.kind in ("other", "question") else verdict.kind
        return verdict.model_copy(update={"ideas": tuple(ideas), "kind": kind})

    def _with_similar(self, ideas: list[Idea]) -> list[Idea]:
        if self.index is None:
            return ideas
        texts = [f"{i.title}\n{i.summary}" for i in ideas]
        try:
            found = self.index.search_many(texts, top_k=self.top_k)
        except Exception:
            logger.warning("similar-ticket search failed for the ideas of a notes post")
            logger.debug("search failure", exc_info=True)
            return ideas
        return [
            idea.model_copy(update={"similar": self._shown(matches)})
            for idea, matches in zip(ideas, found, strict=True)
        ]

    def _shown(self, matches: list[Match]) -> tuple[Match, ...]:
        return tuple(m for m in matches if m.score >= self.min_score)[: self.top_k]
