"""LLM metrics: calls by outcome, latency, fallbacks by reason, tokens when the provider reports
them; recorded by the analyzer and the free-text prompt runner against the scripted fake model."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bot.adapters.analyzer_llm import LlmAnalyzer
from bot.adapters.ideas_llm import LlmIdeaExtractor
from bot.adapters.llm_text import run_text_prompt
from bot.domain.metrics import LLM_CALL_SECONDS, LLM_CALLS, LLM_FALLBACKS, LLM_TOKENS
from bot.domain.models import Analysis, Idea, Post
from tests.fakes.chat_model import ScriptedChatModel
from tests.fakes.metrics import RecordingMetrics

GOOD: dict[str, Any] = {"kind": "bug", "confidence": 0.8, "title": "App crashes on upload"}
POST = Post(id="C1:1.0", text="The app crashes every time I upload a photo", channel="C1")
DAY = {"day": "Monday", "posts": "- Dark mode please"}


class Offline:
    name = "offline"

    def analyze(self, post: Post) -> Analysis:
        return Analysis(
            kind="other", confidence=0.4, title="Offline", summary="", analyzer="offline"
        )


@pytest.fixture
def made() -> Iterator[list[ScriptedChatModel]]:
    fakes: list[ScriptedChatModel] = []
    yield fakes
    for fake in fakes:
        fake.release()


def _model(made: list[ScriptedChatModel], *responses: Any, **kw: Any) -> ScriptedChatModel:
    fake = ScriptedChatModel(responses=list(responses), **kw)
    made.append(fake)
    return fake


def test_a_good_call_counts_its_latency_and_the_tokens_the_provider_reported(
    made: list[ScriptedChatModel],
) -> None:
    metrics = RecordingMetrics()
    fake = _model(made, GOOD, GOOD, usage=(120, 30))
    analyzer = LlmAnalyzer(fake, Offline(), metrics=metrics)
    assert analyzer.analyze(POST).analyzer == "llm:fake-chat"
    assert analyzer.analyze(POST).analyzer == "llm:fake-chat"
    assert metrics.count(LLM_CALLS, task="triage", outcome="ok") == 2
    assert len(metrics.values(LLM_CALL_SECONDS, task="triage")) == 2
    assert metrics.count(LLM_TOKENS, task="triage", direction="input") == 240
    assert metrics.count(LLM_TOKENS, task="triage", direction="output") == 60
    assert metrics.total(LLM_FALLBACKS) == 0


def test_no_token_counts_when_the_provider_reports_none(made: list[ScriptedChatModel]) -> None:
    metrics = RecordingMetrics()
    LlmAnalyzer(_model(made, GOOD), Offline(), metrics=metrics).analyze(POST)
    assert metrics.count(LLM_CALLS, task="triage", outcome="ok") == 1
    assert metrics.total(LLM_TOKENS) == 0


@pytest.mark.parametrize(
    ("responses", "kw", "reason"),
    [
        ((GOOD,), {"delay": 60.0}, "timeout"),
        ((ConnectionError("provider down"),), {}, "error"),
        (({"kind": "feature request", "title": "x"},), {}, "invalid_output"),
        (("no json here",), {"tools": False}, "invalid_output"),
    ],
    ids=["timeout", "error", "invalid-structured", "invalid-text"],
)
def test_each_fallback_is_counted_by_its_reason(
    made: list[ScriptedChatModel], responses: tuple[Any, ...], kw: dict[str, Any], reason: str
) -> None:
    metrics = RecordingMetrics()
    fake = _model(made, *responses, **kw)
    analysis = LlmAnalyzer(fake, Offline(), timeout=0.05, metrics=metrics).analyze(POST)
    assert analysis.analyzer.startswith("offline (llm fallback")
    assert metrics.count(LLM_FALLBACKS, task="triage", reason=reason) == 1
    assert metrics.count(LLM_CALLS, task="triage", outcome=reason) == 1
    assert metrics.count(LLM_CALLS, task="triage", outcome="ok") == 0
    assert len(metrics.values(LLM_CALL_SECONDS, task="triage")) == 1


def test_a_model_that_cannot_be_built_is_an_unavailable_fallback_without_latency() -> None:
    metrics = RecordingMetrics()
    LlmAnalyzer("nosuchprovider:m", Offline(), metrics=metrics).analyze(POST)
    assert metrics.count(LLM_FALLBACKS, task="triage", reason="unavailable") == 1
    assert metrics.values(LLM_CALL_SECONDS, task="triage") == []


def test_text_prompts_are_counted_under_their_own_task(made: list[ScriptedChatModel]) -> None:
    metrics = RecordingMetrics()
    fake = _model(made, "• Dark mode is wanted", RuntimeError("down"), "  ", usage=(50, 8))
    assert run_text_prompt(fake, "takeaways", DAY, timeout=5, metrics=metrics)
    assert run_text_prompt(fake, "takeaways", DAY, timeout=5, metrics=metrics) is None
    assert run_text_prompt(fake, "takeaways", DAY, timeout=5, metrics=metrics) is None
    assert metrics.count(LLM_CALLS, task="takeaways", outcome="ok") == 1
    assert metrics.count(LLM_FALLBACKS, task="takeaways", reason="error") == 1
    assert metrics.count(LLM_FALLBACKS, task="takeaways", reason="invalid_output") == 1
    assert metrics.count(LLM_TOKENS, task="takeaways", direction="input") == 100  # 2 answers
    assert run_text_prompt("nosuchprovider:m", "takeaways", DAY, metrics=metrics) is None
    assert metrics.count(LLM_FALLBACKS, task="takeaways", reason="unavailable") == 1


class OfflineIdeas:
    name = "offline"

    def extract(self, post: Post, limit: int = 5) -> list[Idea]:
        return [Idea(title="Offline idea")]


def test_idea_extraction_is_counted_too(made: list[ScriptedChatModel]) -> None:
    metrics = RecordingMetrics()
    ideas = {"ideas": [{"title": "Add alerts"}, {"title": "Cap meetings"}]}
    fake = _model(made, ideas, RuntimeError("down"), usage=(300, 40))
    extractor = LlmIdeaExtractor(fake, fallback=OfflineIdeas(), metrics=metrics)
    task = extractor.prompt.name
    assert len(extractor.extract(POST)) == 2
    assert [i.title for i in extractor.extract(POST)] == ["Offline idea"]
    assert metrics.count(LLM_CALLS, task=task, outcome="ok") == 1
    assert metrics.count(LLM_FALLBACKS, task=task, reason="error") == 1
    assert metrics.count(LLM_TOKENS, task=task, direction="output") == 40
    assert len(metrics.values(LLM_CALL_SECONDS, task=task)) == 2
