"""Triage of a stream of batches: the next batch is embedded while this one is searched.

On the real offline analyzer, local index and embedding cache, with the hashing embedder.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from bot.adapters.analyzer_offline import OfflineAnalyzer
from bot.adapters.embedder_cache import CachedEmbedder
from bot.adapters.extract import slack_to_text
from bot.adapters.index_local import LocalIndex
from bot.config import DEFAULT_TYPE_KINDS
from bot.domain.models import Analysis, Match, Post, Ticket
from bot.service.triage import STREAM_PIECE, Triager
from tests.fakes.embedder import HashEmbedder
from tests.fakes.memory_store import MemoryStore

TICKETS = [
    Ticket(key="APP-1", title="Dark mode for the dashboard", description="A dark theme."),
    Ticket(key="APP-2", title="App crashes when uploading a photo", description="Android."),
    Ticket(key="APP-3", title="How do I rotate API keys?", description="Runbook question."),
]
TEXTS = [
    "Could we get a dark mode for the dashboard? My eyes hurt at night",
    "The android app crashes when I upload a photo from the gallery",
    "how do I rotate the staging API keys without downtime?",
    "thanks all, have a nice weekend! :tada:",
    ":wave:",
]


class ThreadRecordingEmbedder(HashEmbedder):
    """Records which thread asked for each text; *seen* is set when *watch* is embedded."""

    def __init__(self, watch: str = "") -> None:
        super().__init__()
        self.threads: dict[str, str] = {}
        self.watch = watch
        self.seen = threading.Event()

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        for t in texts:
            self.threads[t] = threading.current_thread().name
            if self.watch and self.watch in t:
                self.seen.set()
        return super().embed(texts)


def _posts(n: int, tag: str = "") -> list[Post]:
    return [Post(id=f"{tag}{i}", text=f"{TEXTS[i % len(TEXTS)]} {tag}{i}") for i in range(n)]


def _triager(inner: HashEmbedder) -> tuple[Triager, OfflineAnalyzer]:
    embedder = CachedEmbedder(inner)
    index = LocalIndex(embedder, MemoryStore(), "P")
    index.upsert(TICKETS)
    analyzer = OfflineAnalyzer(embedder, index, DEFAULT_TYPE_KINDS)
    return Triager(analyzer, index), analyzer


def test_a_stream_gives_each_batchs_verdicts_in_order_as_triage_many_does() -> None:
    batches = [_posts(3, "a"), [], _posts(STREAM_PIECE + 5, "b"), _posts(1, "c")]
    streamed = list(_triager(HashEmbedder())[0].triage_stream(batches))
    one_by_one = [_triager(HashEmbedder())[0].triage_many(b) for b in batches]
    assert [len(v) for v in streamed] == [3, 0, STREAM_PIECE + 5, 1]
    assert streamed == one_by_one
    assert streamed[0][1].similar[0].key == "APP-2"


def test_every_text_is_embedded_once_and_only_ahead_of_its_batch() -> None:
    inner = ThreadRecordingEmbedder()
    triager, analyzer = _triager(inner)
    analyzer.analyze_many(_posts(1, "warm"))  # trains the classifier (embeds its examples)
    before, inner.threads = inner.texts, {}
    verdicts = list(triager.triage_stream([_posts(4, "a"), _posts(4, "b")]))
    assert [len(v) for v in verdicts] == [4, 4]
    # The posts and their headlines: analysis and search both found them in the cache.
    assert inner.texts - before == len(inner.threads)
    assert set(inner.threads.values()) == {"triage-prefetch_0"}
    assert all(any(p.id in t for t in inner.threads) for p in _posts(4, "b"))


def test_the_next_batch_is_embedded_while_this_one_is_searched() -> None:
    inner = ThreadRecordingEmbedder(watch="second0")
    triager, _ = _triager(inner)
    index = triager.index
    assert index is not None
    plain_search = index.search_many
    overlapped: list[bool] = []

    def search_many(texts: Sequence[str], top_k: int = 10) -> list[list[Match]]:
        if any("first" in t for t in texts):
            # Without the overlap nothing embeds the second batch until this search returns.
            overlapped.append(inner.seen.wait(timeout=30))
        return plain_search(texts, top_k)

    index.search_many = search_many  # type: ignore[method-assign]
    list(triager.triage_stream([_posts(2, "first"), _posts(2, "second")]))
    assert overlapped == [True]


class FailingPrefetch:
    """A batch analyzer whose prefetch always fails."""

    name = "offline"

    def analyze(self, post: Post) -> Analysis:
        return Analysis(kind="idea", confidence=0.5, title=post.text, summary="", analyzer="x")

    def analyze_many(self, posts: Sequence[Post]) -> list[Analysis]:
        return [self.analyze(p) for p in posts]

    def prefetch(self, posts: Sequence[Post]) -> None:
        raise RuntimeError("model unavailable")


def test_a_failing_prefetch_does_not_fail_triage() -> None:
    triager = Triager(FailingPrefetch(), None)
    verdicts = list(triager.triage_stream([_posts(2), _posts(1)]))
    assert [[v.title for v in vs] for vs in verdicts] == [
        [p.text for p in _posts(2)],
        [p.text for p in _posts(1)],
    ]


def test_an_analyzer_that_cannot_prefetch_is_triaged_batch_by_batch() -> None:
    class Plain:
        name = "plain"

        def analyze(self, post: Post) -> Analysis:
            return Analysis(kind="idea", confidence=0.5, title=post.id, summary="", analyzer="p")

    verdicts = list(Triager(Plain(), None).triage_stream([_posts(2), [], _posts(1, "z")]))
    assert [[v.title for v in vs] for vs in verdicts] == [["0", "1"], [], ["z0"]]


def test_prefetched_posts_are_analysed_without_another_model_pass() -> None:
    inner = HashEmbedder()
    _, analyzer = _triager(inner)
    analyzer.analyze_many(_posts(1, "warm"))
    posts = _posts(5, "p")
    analyzer.prefetch(posts)
    calls = inner.calls
    analyzed = analyzer.analyze_many(posts)
    assert inner.calls == calls
    assert [a.kind for a in analyzed][4] == "other"  # an emoji alone: nothing to file


def test_cleaning_remembers_results_per_code_marker() -> None:
    text = "see ```trace here``` please"
    assert slack_to_text(text, code=" codeblock ") == "see codeblock please"
    assert slack_to_text(text) == "see please"
    assert slack_to_text(text, 10, " codeblock ") == "see codebl"
