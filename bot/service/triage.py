"""Triage: one post in, one verdict out (kind, title, summary, labels, similar tickets)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from bot.domain.duplicates import is_likely_duplicate
from bot.domain.flags import AllOn, Flags
from bot.domain.labels import merge_labels
from bot.domain.metrics import (
    DUPLICATE_VERDICTS,
    SEARCH_SECONDS,
    TRIAGE_SECONDS,
    Metrics,
    NullMetrics,
    timed,
)
from bot.domain.models import Analysis, Match, Post, Triage
from bot.domain.ports import (
    Analyzer,
    BatchAnalyzer,
    DuplicateJudge,
    Prefetcher,
    QueryShaper,
    TicketIndex,
)
from bot.domain.projects import ProjectRouting
from bot.domain.tracing import SPAN_ANALYZE, SPAN_SEARCH, SPAN_TRIAGE, NoopTracer, Tracer
from bot.service.notes import NotesFinder

logger = logging.getLogger(__name__)

# Posts per piece of a stream: the current piece's and the next one's vectors must both stay in
# the embedder's cache (4,096 texts) until they are used, or the prefetch is paid twice.
STREAM_PIECE = 64


@dataclass(frozen=True)
class TriagePolicy:
    """How similar tickets are presented.

    *top_k* matches above *min_score* are shown as "similar tickets". The best one is only called
    a likely duplicate by ``domain.duplicates.is_likely_duplicate`` (fused score at least
    *duplicate_threshold* and agreeing body and title signals): one cosine alone was measured to
    be a weak verdict.
    """

    top_k: int = 3
    min_score: float = 0.5
    duplicate_threshold: float = 0.70
    max_chars: int = 8000


def _clip(post: Post, max_chars: int) -> Post:
    # Oversized posts are analysed on their head; the full text stays in the store and ticket.
    if len(post.text) <= max_chars:
        return post
    return post.model_copy(update={"text": post.text[:max_chars]})


class Triager:
    """Runs the analyzer and the similar-ticket search for posts.

    The analyzer's optional capabilities (``ports.BatchAnalyzer``, ``DuplicateJudge``,
    ``QueryShaper``) are read once here, from what it declares.
    """

    def __init__(
        self,
        analyzer: Analyzer,
        index: TicketIndex | None,
        policy: TriagePolicy | None = None,
        metrics: Metrics | None = None,
        index_kind: str = "local",
        *,
        flags: Flags | None = None,
        offline: Analyzer | None = None,
        routing: ProjectRouting | None = None,
        notes: NotesFinder | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self.analyzer = analyzer
        self.index = index
        self.policy = policy or TriagePolicy()
        self.metrics: Metrics = metrics or NullMetrics()
        self.index_kind = index_kind  # the ``index`` label: local or pinecone
        self.flags: Flags = flags or AllOn()
        self.tracer: Tracer = tracer or NoopTracer()
        # The analyzer for posts where the ``llm-analysis`` flag is off (None: *analyzer* is
        # already offline, so the flag changes nothing).
        self.offline = offline
        # Which projects' tickets a channel's posts are compared with (JIRA_PROJECTS).
        self.routing = routing
        # Finds the ideas of a long notes post (None: every post is one idea, as before).
        self.notes = notes
        self._judge = analyzer if isinstance(analyzer, DuplicateJudge) else None
        self._batch = analyzer if isinstance(analyzer, BatchAnalyzer) else None
        self._shaper = analyzer if isinstance(analyzer, QueryShaper) else None
        self._prefetcher = analyzer if isinstance(analyzer, Prefetcher) else None

    def _uses_llm(self, post: Post) -> bool:
        return self.offline is None or self.flags.enabled(
            "llm-analysis", post.channel or None, post.user or None
        )

    def _checks_duplicates(self, post: Post) -> bool:
        return self.flags.enabled("duplicate-check", post.channel or None, post.user or None)

    def _search_text(self, text: str) -> str:
        # Searching with the very string the analyzer embeds lets the embedding cache serve both.
        return self._shaper.embedding_text(text) if self._shaper is not None else text

    def _projects(self, post: Post) -> Sequence[str] | None:
        return self.routing.search_projects(post.channel or None) if self.routing else None

    def _search(self, texts: Sequence[str], projects: Sequence[str] | None) -> list[list[Match]]:
        assert self.index is not None
        if projects is None:  # indexes (and test fakes) without project filters keep working
            return self.index.search_many(texts, top_k=self.policy.top_k)
        return self.index.search_many(texts, top_k=self.policy.top_k, projects=projects)

    def _shown(self, matches: Sequence[Match]) -> tuple[Match, ...]:
        return tuple(m for m in matches if m.score >= self.policy.min_score)[: self.policy.top_k]

    def _verdict(
        self,
        analysis: Analysis,
        shown: tuple[Match, ...],
        judged_duplicate: str | None = None,
        query: str = "",
    ) -> Triage:
        best = shown[0] if shown else None
        likely = best is not None and is_likely_duplicate(
            best, self.policy.duplicate_threshold, query=query
        )
        if judged_duplicate is not None:
            # The LLM read both texts: its judgement is evidence beyond one similarity score,
            # but only for a ticket we actually showed it.
            picked = [m for m in shown if m.key == judged_duplicate]
            if picked:
                shown = (picked[0], *(m for m in shown if m.key != judged_duplicate))
                likely = True
        verdict = "likely_duplicate" if likely else ("similar" if shown else "none")
        self.metrics.inc(DUPLICATE_VERDICTS, verdict=verdict)
        fields = analysis.model_dump()
        fields["labels"] = merge_labels(shown, analysis.labels)
        return Triage(**fields, similar=shown, likely_duplicate=likely)

    def triage(self, post: Post) -> Triage:
        """Analyses one post and looks up similar tickets (as the post's flags allow; timed, by
        analyzer); a notes post also gets its ideas (``bot.service.notes``)."""
        with (
            self.tracer.span(SPAN_TRIAGE) as span,
            timed(self.metrics, TRIAGE_SECONDS, analyzer="offline") as labels,
        ):
            result = self._with_ideas(_clip(post, self.policy.max_chars), self._triage(post))
            labels["analyzer"] = result.analyzer
            span.set_attribute("analyzer", result.analyzer)
            span.set_attribute("kind", result.kind)
        return result

    def _with_ideas(self, post: Post, verdict: Triage) -> Triage:
        if self.notes is None:
            return verdict
        return self.notes.attach(
            post, verdict, search=self._checks_duplicates(post), projects=self._projects(post)
        )

    def _triage(self, post: Post) -> Triage:
        post = _clip(post, self.policy.max_chars)
        matches: list[Match] = []
        if self.index is not None and post.text.strip() and self._checks_duplicates(post):
            with (
                self.tracer.span(SPAN_SEARCH, index=self.index_kind) as span,
                timed(self.metrics, SEARCH_SECONDS, index=self.index_kind),
            ):
                projects = self._projects(post)
                if projects is None:
                    matches = self.index.search(
                        self._search_text(post.text), top_k=self.policy.top_k
                    )
                else:
                    matches = self.index.search(
                        self._search_text(post.text), top_k=self.policy.top_k, projects=projects
                    )
                span.set_attribute("matches", len(matches))
        shown = self._shown(matches)
        with self.tracer.span(SPAN_ANALYZE) as span:
            if not self._uses_llm(post):
                assert self.offline is not None
                analysis, judged = self.offline.analyze(post), None
            elif self._judge is not None:
                analysis, judged = self._judge.analyze_with_candidates(post, shown)
            else:
                analysis, judged = self.analyzer.analyze(post), None
            span.set_attribute("analyzer", analysis.analyzer)
        return self._verdict(analysis, shown, judged, query=post.text)

    def triage_many(self, posts: Sequence[Post]) -> list[Triage]:
        """Like :meth:`triage` for many posts, batching the embedding work where adapters allow."""
        posts = [_clip(p, self.policy.max_chars) for p in posts]
        if self._judge is not None or not all(
            self._uses_llm(p) and self._checks_duplicates(p) for p in posts
        ):
            # An LLM makes one call per post anyway (keep its duplicate judgement); and a post
            # whose flags switch the LLM or the search off is triaged its own way.
            return [self.triage(p) for p in posts]
        analyses: list[Analysis] = (
            self._batch.analyze_many(posts)
            if self._batch is not None
            else [self.analyzer.analyze(p) for p in posts]
        )
        if self.index is not None:
            # Posts are searched together per project filter (one channel: one batch).
            found: list[list[Match]] = [[] for _ in posts]
            groups: dict[tuple[str, ...] | None, list[int]] = {}
            for i, p in enumerate(posts):
                wanted = self._projects(p)
                groups.setdefault(tuple(wanted) if wanted is not None else None, []).append(i)
            for projects, idx in groups.items():
                texts = [self._search_text(posts[i].text) for i in idx]
                for i, matches in zip(idx, self._search(texts, projects), strict=True):
                    found[i] = matches
        else:
            found = [[] for _ in posts]
        return [
            self._with_ideas(p, self._verdict(a, self._shown(m), query=p.text))
            for p, a, m in zip(posts, analyses, found, strict=True)
        ]

    def triage_stream(self, batches: Iterable[Sequence[Post]]) -> Iterator[list[Triage]]:
        """:meth:`triage_many` of each batch, in order, with the next batch's embeddings computed
        in a background thread while this one is searched and analysed (the model releases the
        GIL, so its work overlaps the search's Python and numpy work on a second core).

        Batches are cut into pieces of at most ``STREAM_PIECE`` posts (the verdicts of a batch
        still come as one list); *batches* is read one piece ahead of the verdicts. An analyzer
        that cannot prefetch is simply called batch by batch.
        """
        if self._prefetcher is None:
            for batch in batches:
                yield self.triage_many(batch)
            return
        with ThreadPoolExecutor(1, thread_name_prefix="triage-prefetch") as pool:
            pieces = self._pieces(batches)
            current = next(pieces, None)
            ahead: Future[None] | None = (
                pool.submit(self._prefetch, current[1]) if current is not None else None
            )
            done: list[Triage] = []
            while current is not None:
                following = next(pieces, None)
                if ahead is not None:
                    ahead.result()  # this piece's vectors are in the cache (or it failed: logged)
                ahead = pool.submit(self._prefetch, following[1]) if following is not None else None
                done += self.triage_many(current[1])
                if current[0]:  # the last piece of its batch
                    yield done
                    done = []
                current = following

    @staticmethod
    def _pieces(batches: Iterable[Sequence[Post]]) -> Iterator[tuple[bool, Sequence[Post]]]:
        """(last piece of its batch?, posts) for each piece of at most ``STREAM_PIECE`` posts."""
        for batch in batches:
            if not batch:
                yield True, []
            for start in range(0, len(batch), STREAM_PIECE):
                yield start + STREAM_PIECE >= len(batch), batch[start : start + STREAM_PIECE]

    def _prefetch(self, posts: Sequence[Post]) -> None:
        assert self._prefetcher is not None
        try:
            self._prefetcher.prefetch([_clip(p, self.policy.max_chars) for p in posts])
        except Exception:  # triage embeds what is missing itself; the error shows up there too
            logger.warning("triage: prefetching embeddings failed", exc_info=True)
