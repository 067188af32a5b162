"""The offline analyzer: learns kinds from examples or the backlog; extracts title and summary."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from bot.adapters.analyzer_offline import (
    EXAMPLES_PATH,
    Hyper,
    OfflineAnalyzer,
    intent_prior,
    load_examples,
)
from bot.config import DEFAULT_TYPE_KINDS
from bot.domain.models import KINDS, SUMMARY_MAX, TITLE_MAX, Analysis, Match, Post, Ticket
from bot.domain.ports import Analyzer

_WORD = re.compile(r"[a-z0-9]+")


class BagEmbedder:
    """Hashes words into 384 signed buckets and normalises: texts sharing words are close."""

    model_id = "bag-of-words-test"
    dim = 384

    def __init__(self) -> None:
        self.batches: list[int] = []

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.batches.append(len(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                h = zlib.crc32(word.encode())
                out[row, h % self.dim] += 1.0 if h & 1 else -1.0
            norm = float(np.linalg.norm(out[row]))
            if norm:
                out[row] /= norm
            else:
                out[row, 0] = 1.0
        return out


class ListIndex:
    """A TicketIndex over a list of labelled tickets; counts how often it is asked for them."""

    def __init__(self, embedder: BagEmbedder, tickets: Sequence[Ticket] = ()) -> None:
        self.embedder = embedder
        self.tickets: list[Ticket] = []
        self.vectors: list[npt.NDArray[np.float32]] = []
        self.labelled_calls = 0
        self._version = 0
        self.fail_version = False
        if tickets:
            self.upsert(tickets)

    def upsert(self, tickets: Sequence[Ticket]) -> int:
        keys = {t.key for t in tickets}
        kept = [
            (t, v) for t, v in zip(self.tickets, self.vectors, strict=True) if t.key not in keys
        ]
        vecs = self.embedder.embed([t.text() for t in tickets])
        self.tickets = [t for t, _ in kept] + list(tickets)
        self.vectors = [v for _, v in kept] + list(vecs)
        self._version += 1
        return len(tickets)

    def delete(self, keys: Sequence[str]) -> None:
        self.tickets = [t for t in self.tickets if t.key not in keys]
        self._version += 1

    def search(self, text: str, top_k: int = 10) -> list[Match]:
        return []

    def search_many(self, texts: Sequence[str], top_k: int = 10) -> list[list[Match]]:
        return [[] for _ in texts]

    def count(self) -> int:
        return len(self.tickets)

    def labelled(self) -> list[tuple[Ticket, npt.NDArray[np.float32]]]:
        self.labelled_calls += 1
        return [(t, v) for t, v in zip(self.tickets, self.vectors, strict=True) if t.type]

    def version(self) -> str:
        if self.fail_version:
            raise ConnectionError("index unreachable")
        return str(self._version)


def _backlog(marker_type: str, n: int = 12) -> list[Ticket]:
    """A backlog where every ticket about "frobnicator" carries *marker_type*."""
    out: list[Ticket] = []
    for i in range(n):
        out.append(Ticket(key=f"B-{i}", title=f"Crash in module {i} with error", type="Bug"))
        out.append(Ticket(key=f"S-{i}", title=f"Add export option number {i}", type="Story"))
        out.append(
            Ticket(key=f"F-{i}", title=f"frobnicator panel {i} frobnicator", type=marker_type)
        )
    return out


FROB = Post(id="p", text="the frobnicator panel frobnicator")


def test_implements_the_analyzer_port_and_names_itself() -> None:
    analyzer = OfflineAnalyzer(BagEmbedder(), None, DEFAULT_TYPE_KINDS)
    assert isinstance(analyzer, Analyzer)
    result = analyzer.analyze(Post(id="1", text="The export button crashes the app"))
    assert result.analyzer == "offline" == analyzer.name
    assert result.kind in KINDS
    assert 0.0 <= result.confidence <= 1.0
    assert analyzer.source == "examples"


def test_cold_mode_learns_the_projects_own_examples() -> None:
    analyzer = OfflineAnalyzer(BagEmbedder(), None, DEFAULT_TYPE_KINDS)
    rows = load_examples(EXAMPLES_PATH)
    results = analyzer.analyze_many([Post(id=str(i), text=t) for i, (t, _) in enumerate(rows)])
    right = sum(r.kind == k for r, (_, k) in zip(results, rows, strict=True))
    assert right / len(rows) > 0.9


HELP_WITH_ERROR = Post(
    id="h",
    text="Getting a KeyError when I load my settings file\nI am trying to load the settings from "
    "a JSON file and the app stops with KeyError: 'port'. I am new to this, what am I missing?",
)
BUG_WITH_TRACE = Post(
    id="b",
    text="Export crashes with KeyError on empty rows\nSteps: export a sheet with an empty row. "
    "Expected a CSV, got:\n```\nFile \"export.py\", line 12, in row?.get\nKeyError: 'port'\n```",
)


def test_cold_prior_turns_a_close_call_on_a_help_seeking_post_into_a_question() -> None:
    kinds = ("idea", "bug", "question", "other")
    probs = np.asarray([[0.1, 0.45, 0.4, 0.05]] * 2, dtype=np.float32)
    texts = [HELP_WITH_ERROR.text, BUG_WITH_TRACE.text]
    out = intent_prior(probs, kinds, texts, 0.5)
    assert [kinds[int(i)] for i in out.argmax(axis=1)] == ["question", "bug"]
    assert np.allclose(out.sum(axis=1), 1.0)
    assert np.allclose(out[1], probs[1])  # no cue: unchanged


def test_cold_mode_reads_a_help_seeking_error_post_as_a_question() -> None:
    def analyse(hyper: Hyper) -> list[Analysis]:
        analyzer = OfflineAnalyzer(BagEmbedder(), None, DEFAULT_TYPE_KINDS, hyper=hyper)
        return analyzer.analyze_many([HELP_WITH_ERROR, BUG_WITH_TRACE])

    plain = analyse(Hyper(intent_prior=0.0))
    helped, bug = analyse(Hyper())
    assert helped.kind == "question" and helped.confidence > plain[0].confidence
    # a "?" inside a stack trace asks nothing: the report stays a bug, as sure as before
    assert bug.kind == "bug" and bug.confidence == pytest.approx(plain[1].confidence, abs=0.02)


CHANGE_TITLED = Post(
    id="c",
    text="Add a CSV export to the monthly report\nThe finance team copies the table by hand "
    "every month and the numbers come out wrong.",
)


def test_cold_prior_raises_idea_for_a_post_titled_as_a_change() -> None:
    kinds = ("idea", "bug", "question", "other")
    probs = np.asarray([[0.3, 0.5, 0.15, 0.05]] * 2, dtype=np.float32)
    texts = [CHANGE_TITLED.text, BUG_WITH_TRACE.text]
    assert intent_prior(probs, kinds, texts, 0.0, 0.0)[0].argmax() == 1
    out = intent_prior(probs, kinds, texts, 0.0, 1.0)
    assert out[0, 0] / out[0, 1] == pytest.approx(np.e * 0.3 / 0.5, rel=1e-5)
    assert [kinds[int(i)] for i in out.argmax(axis=1)] == ["idea", "bug"]
    assert np.allclose(out[1], probs[1])  # a title that names a failure: unchanged


def test_cold_mode_is_surer_of_an_idea_titled_as_a_change() -> None:
    def analyse(hyper: Hyper) -> Analysis:
        analyzer = OfflineAnalyzer(BagEmbedder(), None, DEFAULT_TYPE_KINDS, hyper=hyper)
        return analyzer.analyze(CHANGE_TITLED)

    plain, titled = analyse(Hyper(change_title_prior=0.0)), analyse(Hyper())
    assert titled.kind == "idea"
    assert plain.kind != "idea" or titled.confidence > plain.confidence


def test_own_examples_cover_every_kind_with_several_dozen_each() -> None:
    rows = load_examples(EXAMPLES_PATH)
    for kind in KINDS:
        assert sum(k == kind for _, k in rows) >= 40
    texts = [t for t, _ in rows]
    assert len(set(texts)) == len(texts)


def test_load_examples_rejects_an_unknown_kind(tmp_path: Path) -> None:
    path = tmp_path / "kinds.jsonl"
    path.write_text(json.dumps({"text": "hello", "kind": "rant"}) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="rant"):
        load_examples(path)


def test_examples_path_is_configurable(tmp_path: Path) -> None:
    path = tmp_path / "kinds.jsonl"
    lines = [{"text": f"zebra stripes number {i}", "kind": "bug"} for i in range(5)]
    lines += [{"text": f"giraffe necks number {i}", "kind": "question"} for i in range(5)]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    analyzer = OfflineAnalyzer(BagEmbedder(), None, {}, examples_path=path)
    assert analyzer.analyze(Post(id="1", text="so many zebra stripes")).kind == "bug"
    assert analyzer.analyze(Post(id="2", text="long giraffe necks")).kind == "question"


def test_learns_from_the_backlog_once_enough_tickets_are_labelled() -> None:
    emb = BagEmbedder()
    index = ListIndex(emb, _backlog("Question"))
    analyzer = OfflineAnalyzer(emb, index, DEFAULT_TYPE_KINDS, min_labelled=30)
    assert analyzer.analyze(FROB).kind == "question"
    assert analyzer.source == "backlog"


def test_retrains_when_the_index_version_changes() -> None:
    emb = BagEmbedder()
    index = ListIndex(emb, _backlog("Question"))
    analyzer = OfflineAnalyzer(emb, index, DEFAULT_TYPE_KINDS, min_labelled=30)
    assert analyzer.analyze(FROB).kind == "question"
    assert index.labelled_calls == 1
    analyzer.analyze(FROB)
    assert index.labelled_calls == 1  # same version: no retraining

    index.upsert(_backlog("Bug"))  # the same tickets, re-typed: frobnicator is now a bug
    assert analyzer.analyze(FROB).kind == "bug"
    assert index.labelled_calls == 2


def test_too_few_labelled_tickets_fall_back_to_own_examples() -> None:
    emb = BagEmbedder()
    backlog = [t for t in _backlog("Question") if t.key.startswith("F-")]  # one kind only
    backlog += [Ticket(key="X-1", title="Crash in login", type="Bug")]
    index = ListIndex(emb, backlog)
    analyzer = OfflineAnalyzer(emb, index, DEFAULT_TYPE_KINDS, min_labelled=30)
    assert analyzer.source == "examples"

    few = ListIndex(emb, _backlog("Question", n=5))  # 15 tickets, three kinds
    assert OfflineAnalyzer(emb, few, DEFAULT_TYPE_KINDS, min_labelled=30).source == "examples"
    assert OfflineAnalyzer(emb, few, DEFAULT_TYPE_KINDS, min_labelled=10).source == "backlog"


def test_unknown_issue_types_are_ignored() -> None:
    emb = BagEmbedder()
    index = ListIndex(emb, _backlog("Chore"))  # "chore" maps to no kind: 24 usable tickets
    analyzer = OfflineAnalyzer(emb, index, DEFAULT_TYPE_KINDS, min_labelled=20)
    assert analyzer.source == "backlog"
    assert analyzer.analyze(FROB).kind != "question"


def test_other_stays_detectable_with_a_backlog_that_has_none() -> None:
    emb = BagEmbedder()
    index = ListIndex(emb, _backlog("Question"))
    analyzer = OfflineAnalyzer(emb, index, DEFAULT_TYPE_KINDS, min_labelled=30)
    result = analyzer.analyze(Post(id="1", text="Thanks everyone, have a great weekend!"))
    assert analyzer.source == "backlog"
    assert result.kind == "other"


def test_an_unreachable_index_does_not_stop_triage() -> None:
    emb = BagEmbedder()
    index = ListIndex(emb, _backlog("Question"))
    index.fail_version = True
    analyzer = OfflineAnalyzer(emb, index, DEFAULT_TYPE_KINDS)
    assert analyzer.analyze(FROB).kind in KINDS
    assert analyzer.source == "examples"


def test_concurrent_first_calls_train_once() -> None:
    emb = BagEmbedder()
    index = ListIndex(emb, _backlog("Question"))
    analyzer = OfflineAnalyzer(emb, index, DEFAULT_TYPE_KINDS)
    results: list[Analysis] = []
    barrier = threading.Barrier(6)

    def work() -> None:
        barrier.wait()
        results.append(analyzer.analyze(FROB))

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert index.labelled_calls == 1
    assert {r.kind for r in results} == {"question"}


def test_analyze_many_batches_embeddings_and_keeps_order() -> None:
    emb = BagEmbedder()
    analyzer = OfflineAnalyzer(emb, None, DEFAULT_TYPE_KINDS)
    analyzer.analyze(Post(id="warm", text="warm up"))
    posts = [
        Post(id="a", text="How do I reset my password?"),
        Post(id="b", text=":tada:"),
        Post(id="c", text="The export crashes with an error when the file is large"),
    ]
    emb.batches.clear()
    many = analyzer.analyze_many(posts)
    assert emb.batches == [2]  # one call, the emoji-only post needs no embedding
    assert [a.title for a in many] == [analyzer.analyze(p).title for p in posts]
    assert many[1].kind == "other"


@pytest.mark.parametrize(
    "text",
    ["", "   ", ":tada: :rocket:", "<!channel> <@U123ABC>", "🎉🎉", "<https://example.com>"],
)
def test_posts_without_words_are_other_with_a_valid_title(text: str) -> None:
    result = OfflineAnalyzer(BagEmbedder(), None, DEFAULT_TYPE_KINDS).analyze(
        Post(id="1", text=text)
    )
    assert result.kind == "other"
    assert result.title
    assert result.labels == ()


def test_hostile_long_post_is_truncated_cleanly() -> None:
    text = "<!channel> :fire: " + "The upload page breaks on large files. " * 520
    assert len(text) > 20_000
    result = OfflineAnalyzer(BagEmbedder(), None, DEFAULT_TYPE_KINDS).analyze(
        Post(id="1", text=text)
    )
    assert result.title == "Upload page breaks on large files"  # ticket titles drop the article
    assert len(result.summary) <= SUMMARY_MAX
    assert "<!channel>" not in result.summary and ":fire:" not in result.summary
    assert len(result.labels) <= 5


def test_title_summary_and_labels_are_extracted() -> None:
    post = Post(
        id="1",
        text="hey team :bulb: what if we added dark mode to the <https://x.io/dash|dashboard>? "
        "The white background hurts at night. <@U42> would love your take.",
    )
    result = OfflineAnalyzer(BagEmbedder(), None, DEFAULT_TYPE_KINDS).analyze(post)
    assert result.title == "Add dark mode to the dashboard"
    assert len(result.title) <= TITLE_MAX
    assert result.summary.startswith("Add dark mode to the dashboard")
    assert "The white background hurts at night." in result.summary
    assert "dark-mode" in result.labels and "dashboard" in result.labels
    assert all(label == label.lower() for label in result.labels)


def test_importing_the_module_does_not_import_onnxruntime() -> None:
    code = (
        "import sys, bot.adapters.analyzer_offline; "
        "print('onnxruntime' in sys.modules, 'tokenizers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_clear_examples_with_the_real_embedder() -> None:
    from bot.adapters.embedder_onnx import OnnxEmbedder

    analyzer = OfflineAnalyzer(OnnxEmbedder(), None, DEFAULT_TYPE_KINDS)
    cases = {
        "The app crashes when I upload a PNG": "bug",
        "What if we added dark mode to the dashboard?": "idea",
        "How do I reset my password?": "question",
        "thanks everyone, have a great weekend!": "other",
    }
    results = analyzer.analyze_many([Post(id=str(i), text=t) for i, t in enumerate(cases)])
    assert [r.kind for r in results] == list(cases.values())
    assert all(r.confidence > 0.4 for r in results)


class RecordingEmbedder(BagEmbedder):
    """A BagEmbedder that remembers every text it was asked to embed."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.texts.extend(texts)
        return super().embed(texts)


def test_the_headline_is_embedded_in_the_same_call_as_the_index_would() -> None:
    from bot.adapters.index_local import embed_queries
    from bot.adapters.lexical import headline

    emb = RecordingEmbedder()
    analyzer = OfflineAnalyzer(emb, None, DEFAULT_TYPE_KINDS)
    analyzer.analyze(Post(id="warm", text="warm up"))
    text = (
        "Export to CSV drops the last row\n"
        "When I export the quarterly report the final line is missing from the file, every time."
    )
    emb.batches.clear()
    emb.texts.clear()
    analyzer.analyze(Post(id="1", text=text))
    body = analyzer.embedding_text(text)
    assert emb.batches == [2]  # one call: the post and its headline
    assert emb.texts == [body, headline(body)]
    # Triage's search embeds exactly these strings, so a caching embedder serves both.
    search = RecordingEmbedder()
    embed_queries(search, [body])
    assert search.texts == emb.texts


def test_a_headline_that_is_the_whole_post_costs_no_second_pass() -> None:
    emb = RecordingEmbedder()
    analyzer = OfflineAnalyzer(emb, None, DEFAULT_TYPE_KINDS)
    analyzer.analyze(Post(id="warm", text="warm up"))
    emb.texts.clear()
    analyzer.analyze(Post(id="1", text="How do I reset my password?"))
    assert emb.texts == ["How do I reset my password?"]


def test_head_scale_zero_skips_the_headline_pass() -> None:
    emb = RecordingEmbedder()
    analyzer = OfflineAnalyzer(emb, None, DEFAULT_TYPE_KINDS, hyper=Hyper(head_scale=0.0))
    analyzer.analyze(Post(id="warm", text="warm up"))
    emb.texts.clear()
    result = analyzer.analyze(Post(id="1", text="Export drops a row\nThe final line is missing."))
    assert emb.texts == ["Export drops a row\nThe final line is missing."]
    assert result.kind in KINDS


def test_ticket_titles_are_embedded_once_across_retrainings() -> None:
    emb = RecordingEmbedder()
    backlog = _backlog("Question")
    index = ListIndex(emb, backlog)
    analyzer = OfflineAnalyzer(emb, index, DEFAULT_TYPE_KINDS, min_labelled=30)
    emb.texts.clear()
    assert analyzer.analyze(FROB).kind == "question"
    titles = {t.title for t in backlog}
    assert titles <= set(emb.texts)

    new = Ticket(key="F-new", title="frobnicator drawer frobnicator", type="Question")
    index.upsert([new])
    emb.texts.clear()
    assert analyzer.analyze(FROB).kind == "question"
    assert index.labelled_calls == 2
    # Only the new ticket's title (and the post itself) needed the model.
    assert not titles & set(emb.texts)
    assert new.title in emb.texts


class TitledIndex(ListIndex):
    """Hands out [body | title] vectors, as an index that stores title vectors may."""

    def labelled(self) -> list[tuple[Ticket, npt.NDArray[np.float32]]]:
        self.labelled_calls += 1
        titles = self.embedder.embed([t.title for t in self.tickets])
        return [
            (t, np.concatenate([v, tv]))
            for t, v, tv in zip(self.tickets, self.vectors, titles, strict=True)
            if t.type
        ]


def test_title_vectors_given_by_the_index_are_used_without_embedding() -> None:
    emb = RecordingEmbedder()
    index = TitledIndex(emb, _backlog("Question"))
    analyzer = OfflineAnalyzer(emb, index, DEFAULT_TYPE_KINDS, min_labelled=30)
    assert analyzer.source == "backlog"
    emb.texts.clear()
    index.labelled_calls = 0
    index._version += 1  # retrain: the index embeds the titles, the analyzer must not
    assert analyzer.analyze(FROB).kind == "question"
    assert analyzer.source == "backlog"
    assert emb.texts.count("frobnicator panel 0 frobnicator") == 1  # by the index only


def test_sparse_products_match_dense_numpy() -> None:
    from bot.adapters.kind_model import sparse_rows

    rng = np.random.default_rng(1)
    counts = [{int(k): 1.0 for k in rng.choice(50, size=5, replace=False)} for _ in range(7)]
    counts[3] = {}
    weight = np.ones(50, dtype=np.float32)
    x = sparse_rows(counts, weight)
    dense = np.zeros((7, 50), dtype=np.float32)
    dense[x.rows, x.cols] = x.vals
    w_t = rng.normal(size=(3, 50)).astype(np.float32)
    g_t = rng.normal(size=(3, 7)).astype(np.float32)
    np.testing.assert_allclose(x.dot(w_t), (dense @ w_t.T).T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(x.transpose(50).dot(g_t), (dense.T @ g_t.T).T, rtol=1e-5, atol=1e-5)


class QueuedRunner:
    """A TrainRunner that keeps the jobs until the test runs them: what a background thread
    would do later, made deterministic."""

    def __init__(self) -> None:
        self.jobs: list[Callable[[], None]] = []

    def __call__(self, job: Callable[[], None]) -> None:
        self.jobs.append(job)

    def run(self) -> None:
        jobs, self.jobs = self.jobs, []
        for job in jobs:
            job()


def test_training_in_background_never_makes_a_request_wait() -> None:
    emb = BagEmbedder()
    index = ListIndex(emb, _backlog("Question"))
    runner = QueuedRunner()
    analyzer = OfflineAnalyzer(emb, index, DEFAULT_TYPE_KINDS, min_labelled=30)
    analyzer.train_in_background(runner)
    assert len(runner.jobs) == 1 and index.labelled_calls == 0  # handed over, not run

    # Before the job runs, requests are served by the examples' model and queue nothing more.
    analyzer.analyze(FROB)
    analyzer.analyze(FROB)
    assert index.labelled_calls == 0 and len(runner.jobs) == 1
    assert analyzer.source == "examples" and not analyzer.trained()

    runner.run()
    assert analyzer.trained() and analyzer.source == "backlog"
    assert analyzer.analyze(FROB).kind == "question"

    # The backlog changes: the next request still gets the previous model's answer at once.
    index.upsert(_backlog("Bug"))
    assert analyzer.analyze(FROB).kind == "question"
    assert index.labelled_calls == 1 and len(runner.jobs) == 1
    runner.run()
    assert analyzer.analyze(FROB).kind == "bug"
    assert index.labelled_calls == 2 and not runner.jobs


def test_a_failing_background_training_keeps_the_model_and_tries_again() -> None:
    emb = BagEmbedder()
    index = ListIndex(emb, _backlog("Question"))
    runner = QueuedRunner()
    analyzer = OfflineAnalyzer(emb, index, DEFAULT_TYPE_KINDS, min_labelled=30)
    analyzer.train_in_background(runner)
    runner.run()
    index.upsert(_backlog("Bug"))
    analyzer.analyze(FROB)
    assert len(runner.jobs) == 1
    index.fail_version = True  # the job cannot read the index
    runner.run()
    assert analyzer.analyze(FROB).kind == "question"  # still the last good model
    index.fail_version = False
    analyzer.analyze(FROB)  # schedules again: the failed job did not stay "pending"
    runner.run()
    assert analyzer.analyze(FROB).kind == "bug"


def test_by_default_training_runs_in_a_daemon_thread() -> None:
    from bot.adapters.analyzer_offline import in_background

    emb = BagEmbedder()
    index = ListIndex(emb, _backlog("Question"))
    analyzer = OfflineAnalyzer(emb, index, DEFAULT_TYPE_KINDS, min_labelled=30)
    assert analyzer.train_in is None  # batch commands and benches train inline
    analyzer.train_in_background(in_background)
    for t in threading.enumerate():
        if t.name == "kind-model-training":
            t.join(timeout=60)
    assert analyzer.trained() and analyzer.source == "backlog"
