"""The LLM analyzer: one chat-model call per post through ``prompts/triage.prompt.yaml``.

The chain is ``prompt | model.with_structured_output(TriageOutput)``; models without structured
output get ``prompt | model`` and the JSON object is read from the text. Whatever the model says
is validated here: it can only choose a kind from ``KINDS``, a confidence in [0, 1], a cleaned
title and labels, and a ``duplicate_of`` among the candidate keys it was shown. Any failure
(timeout, provider error, invalid output) falls back to the offline analyzer, and the analysis
says so (``"offline (llm fallback: timeout)"``).

LangChain is imported on first use, not at module import (the CLI must start fast).
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from bot.adapters.llm_text import (
    ChatModelSource,
    LlmTimeout,
    LlmUnavailable,
    TokenCounter,
    call_with_timeout,
    json_object_in,
    record_llm_call,
)
from bot.adapters.prompts import Prompt, PromptError, load_prompt
from bot.domain.metrics import Metrics, NullMetrics
from bot.domain.models import Analysis, Match, Post, plain_text
from bot.domain.ports import Analyzer

if TYPE_CHECKING:
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.runnables import Runnable, RunnableConfig

logger = logging.getLogger(__name__)

PROMPT_NAME = "triage"
PROMPT_VARIABLES = frozenset({"post", "candidates"})
_MAX_LABELS_IN = 20


class InvalidOutput(ValueError):
    """The model answered, but not with something we can use."""


class TriageOutput(BaseModel):
    """Triage of one Slack post: kind, confidence, title, summary, labels, duplicate_of."""

    model_config = ConfigDict(extra="ignore")

    kind: Literal["idea", "bug", "question", "other"]
    confidence: float = 0.5
    title: str
    summary: str = ""
    labels: list[str] = []
    duplicate_of: str | None = None

    @field_validator("kind", mode="before")
    @classmethod
    def _kind(cls, v: Any) -> Any:
        # "Bug" and " idea " are the same answer; "feature request" is not, and fails.
        return v.strip().lower() if isinstance(v, str) else v

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, v: Any) -> Any:
        if v is None:
            return []
        if isinstance(v, str):
            return [p for p in re.split(r"[,\s]+", v) if p]
        return v


def parse_json_output(text: str) -> TriageOutput:
    """Reads a ``TriageOutput`` from a text answer (bare JSON, fenced JSON or JSON inside prose)."""
    try:
        data = json_object_in(text)
    except ValueError as exc:
        raise InvalidOutput(str(exc)) from None
    return TriageOutput.model_validate(data)


def format_candidates(candidates: Sequence[Match]) -> str:
    """One ``KEY: title`` line per candidate ticket (empty when there are none)."""
    return "\n".join(
        f"{plain_text(m.key)}: {plain_text(m.title)[:200]}".rstrip(": ") for m in candidates
    )


def pick_duplicate(answer: str | None, candidates: Sequence[Match]) -> str | None:
    """The candidate key the model named, spelled as in *candidates*; ``None`` for anything else."""
    if not answer:
        return None
    wanted = answer.strip().strip("[]<>()`'\"* ").upper()
    for m in candidates:
        if m.key.upper() == wanted:
            return m.key
    return None


class LlmAnalyzer:
    """``Analyzer`` backed by a chat model, with an offline *fallback* for every failure."""

    def __init__(
        self,
        model: BaseChatModel | str,
        fallback: Analyzer,
        timeout: float = 20.0,
        prompt: Prompt | str | None = None,
        max_post_chars: int = 8000,
        model_name: str | None = None,
        prompts_dir: str | os.PathLike[str] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """*model* is a LangChain chat model or ``"provider:model"`` (built on first use).

        *metrics* records each call (``ideabot_llm_*``: outcome, latency, tokens when the
        provider reports them, and each fallback to the offline analyzer by reason).

        *model_name* names the model in ``Analysis.analyzer`` (``llm:<model_name>``); by default
        the spec, or the instance's own model name.

        *prompt* is a loaded ``Prompt`` or a prompt name (default ``triage``), read from
        *prompts_dir* (the ``PROMPTS_DIR`` setting; default: the shipped prompts). It must declare
        exactly the variables ``post`` and ``candidates``.
        """
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.prompt = (
            prompt
            if isinstance(prompt, Prompt)
            else load_prompt(prompt or PROMPT_NAME, prompts_dir)
        )
        if set(self.prompt.input_variables) != PROMPT_VARIABLES:
            raise PromptError(
                f"{self.prompt.path or self.prompt.id}: the analyzer needs input_variables "
                f"{sorted(PROMPT_VARIABLES)}, it declares {list(self.prompt.input_variables)}"
            )
        self.timeout = timeout
        self.fallback = fallback
        self.metrics: Metrics = metrics or NullMetrics()
        self.max_post_chars = max_post_chars
        self._source = ChatModelSource(
            model, timeout, self.prompt.model_parameters, label=model_name
        )
        self.name = f"llm:{self._source.label}"
        self._chain: Runnable[dict[str, Any], Any] | None = None
        self._structured = True
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ public

    def analyze(self, post: Post) -> Analysis:
        """Classifies and summarises *post* (no duplicate candidates)."""
        return self.analyze_with_candidates(post, ())[0]

    def analyze_with_candidates(
        self, post: Post, candidates: Sequence[Match]
    ) -> tuple[Analysis, str | None]:
        """Analyses *post* and says which of *candidates* (if any) it duplicates, in ONE call.

        The second item is a key from *candidates* or ``None``; it is ``None`` on fallback.
        """
        tokens = TokenCounter()
        started = time.perf_counter()

        def recorded(outcome: str) -> None:
            took = time.perf_counter() - started
            record_llm_call(self.metrics, self.prompt.name, outcome, took, tokens)

        try:
            out = self._call(post, candidates, tokens)
            analysis = self._to_analysis(out)
        except LlmTimeout:
            recorded("timeout")
            return self._fall_back(post, "timeout"), None
        except LlmUnavailable as exc:
            logger.warning("llm analyzer unavailable: %s", exc)
            recorded("unavailable")
            return self._fall_back(post, "unavailable"), None
        except (InvalidOutput, ValidationError) as exc:
            logger.warning(
                "llm prompt=%s post=%s: invalid output (%s)",
                self.prompt.id,
                post.id,
                _short_reason(exc),
            )
            recorded("invalid_output")
            return self._fall_back(post, "invalid output"), None
        except Exception as exc:
            if _is_parse_error(exc):
                logger.warning("llm prompt=%s post=%s: unparsable output", self.prompt.id, post.id)
                recorded("invalid_output")
                return self._fall_back(post, "invalid output"), None
            # Provider messages can echo request details; the class name is enough at WARNING.
            logger.warning(
                "llm prompt=%s post=%s failed: %s", self.prompt.id, post.id, type(exc).__name__
            )
            logger.debug("llm failure detail", exc_info=True)
            recorded("error")
            return self._fall_back(post, "error"), None
        recorded("ok")
        return analysis, pick_duplicate(out.duplicate_of, candidates)

    # ------------------------------------------------------------------ internals

    def _runnable(self) -> Runnable[dict[str, Any], Any]:
        if self._chain is not None:
            return self._chain
        with self._lock:
            if self._chain is None:
                model = self._source.get()
                template = self.prompt.to_langchain()
                try:
                    self._chain = template | model.with_structured_output(TriageOutput)
                    self._structured = True
                except NotImplementedError:
                    from langchain_core.output_parsers import StrOutputParser

                    logger.info(
                        "model %s has no structured output; reading JSON from text",
                        self._source.label,
                    )
                    self._chain = template | model | StrOutputParser()
                    self._structured = False
            return self._chain

    def _call(
        self, post: Post, candidates: Sequence[Match], tokens: TokenCounter | None = None
    ) -> TriageOutput:
        chain = self._runnable()
        inputs = self.prompt.inputs(
            post=post.text[: self.max_post_chars], candidates=format_candidates(candidates)
        )
        config: RunnableConfig = {
            "run_name": self.prompt.id,
            "tags": [self.prompt.id],
            "metadata": {"prompt": self.prompt.id, "post_id": post.id},
            "callbacks": (tokens or TokenCounter()).callbacks(),
        }
        logger.info(
            "llm call prompt=%s model=%s post=%s candidates=%d",
            self.prompt.id,
            self._source.label,
            post.id,
            len(candidates),
        )
        raw = call_with_timeout(
            lambda: chain.invoke(inputs, config=config), self.timeout, self.prompt.id
        )
        if isinstance(raw, TriageOutput):
            return raw
        if raw is None:
            raise InvalidOutput("the model made no structured answer")
        if isinstance(raw, str):
            return parse_json_output(raw)
        if isinstance(raw, dict):
            return TriageOutput.model_validate(raw)
        raise InvalidOutput(f"unexpected answer type {type(raw).__name__}")

    def _to_analysis(self, out: TriageOutput) -> Analysis:
        confidence = float(out.confidence)
        if not math.isfinite(confidence):
            raise InvalidOutput("confidence is not a number")
        return Analysis(
            kind=out.kind,
            confidence=min(1.0, max(0.0, confidence)),
            title=out.title,
            summary=out.summary,
            labels=tuple(str(label) for label in out.labels[:_MAX_LABELS_IN]),
            analyzer=self.name,
        )

    def _fall_back(self, post: Post, reason: str) -> Analysis:
        analysis = self.fallback.analyze(post)
        logger.info(
            "llm prompt=%s post=%s: using %s (%s)",
            self.prompt.id,
            post.id,
            analysis.analyzer,
            reason,
        )
        return analysis.model_copy(
            update={"analyzer": f"{analysis.analyzer} (llm fallback: {reason})"}
        )


def _is_parse_error(exc: Exception) -> bool:
    try:
        from langchain_core.exceptions import OutputParserException
    except ImportError:  # pragma: no cover - langchain is a hard dependency
        return False
    return isinstance(exc, OutputParserException)


def _short_reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        return f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('type', 'invalid')}"
    return str(exc)[:120]
