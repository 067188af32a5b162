"""Finding the ideas in a notes post with an LLM: ``prompts/ideas.prompt.yaml``, one call.

The chain is ``prompt | model.with_structured_output(IdeasOutput)`` (or the JSON read from the
text, for models without structured output). The answer is validated here: at most *limit*
ideas, each with a non-empty title (cleaned, mentions and broadcasts removed), a kind of idea or
bug, a one-line summary. A timeout, an error or an invalid answer falls back to the offline
extractor, so a notes post is never left unread because the model failed.

LangChain is imported on first use.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from bot.adapters.llm_text import (
    ChatModelSource,
    LlmTimeout,
    LlmUnavailable,
    TokenCounter,
    call_with_timeout,
    defuse_mentions,
    json_object_in,
    record_llm_call,
)
from bot.adapters.prompts import Prompt, PromptError, load_prompt
from bot.domain.metrics import Metrics, NullMetrics
from bot.domain.models import Idea, Post, plain_text
from bot.domain.notes import MAX_IDEAS, IdeaExtractor

if TYPE_CHECKING:
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.runnables import Runnable, RunnableConfig

logger = logging.getLogger(__name__)

PROMPT_NAME = "ideas"
PROMPT_VARIABLES = frozenset({"post"})
_MAX_IN = 20  # a model that answers with more than this is not following the prompt


class InvalidIdeas(ValueError):
    """The model answered, but not with a list of ideas we can use."""


class IdeaOutput(BaseModel):
    """One idea as the model states it."""

    model_config = ConfigDict(extra="ignore")

    title: str
    summary: str = ""
    kind: str = "idea"
    quote: str = ""

    @field_validator("title")
    @classmethod
    def _title(cls, v: str) -> str:
        v = plain_text(defuse_mentions(v))
        if not v:
            raise ValueError("empty title")
        return v

    @field_validator("kind", mode="before")
    @classmethod
    def _kind(cls, v: Any) -> Any:
        return "bug" if isinstance(v, str) and v.strip().lower() == "bug" else "idea"


class IdeasOutput(BaseModel):
    """The separate actionable ideas of one long Slack post (at most 5)."""

    model_config = ConfigDict(extra="ignore")

    ideas: list[IdeaOutput] = []

    @field_validator("ideas")
    @classmethod
    def _not_flooded(cls, v: list[IdeaOutput]) -> list[IdeaOutput]:
        if len(v) > _MAX_IN:
            raise ValueError(f"{len(v)} ideas")
        return v


def parse_ideas(text: str) -> IdeasOutput:
    """Reads ``IdeasOutput`` from a text answer (bare, fenced or embedded JSON)."""
    try:
        data = json_object_in(text)
    except ValueError as exc:
        raise InvalidIdeas(str(exc)) from None
    return IdeasOutput.model_validate(data)


class LlmIdeaExtractor:
    """``IdeaExtractor`` backed by a chat model, with the offline *fallback* for every failure."""

    def __init__(
        self,
        model: BaseChatModel | str,
        fallback: IdeaExtractor,
        timeout: float = 20.0,
        prompt: Prompt | str | None = None,
        model_name: str | None = None,
        prompts_dir: str | os.PathLike[str] | None = None,
        max_chars: int = 8000,
        metrics: Metrics | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.prompt = (
            prompt
            if isinstance(prompt, Prompt)
            else load_prompt(prompt or PROMPT_NAME, prompts_dir)
        )
        if set(self.prompt.input_variables) != PROMPT_VARIABLES:
            raise PromptError(
                f"{self.prompt.path or self.prompt.id}: idea extraction needs input_variables "
                f"{sorted(PROMPT_VARIABLES)}, it declares {list(self.prompt.input_variables)}"
            )
        self.fallback = fallback
        self.timeout = timeout
        self.max_chars = max_chars
        self.metrics: Metrics = metrics or NullMetrics()  # ideabot_llm_*, task = the prompt
        self._source = ChatModelSource(
            model, timeout, self.prompt.model_parameters, label=model_name
        )
        self.name = f"llm:{self._source.label}"
        self._chain: Runnable[dict[str, Any], Any] | None = None
        self._lock = threading.Lock()

    def extract(self, post: Post, limit: int = MAX_IDEAS) -> list[Idea]:
        """The model's ideas for *post* (at most *limit*); the fallback's on any failure."""
        tokens = TokenCounter()
        started = time.perf_counter()
        try:
            out = self._call(post, tokens)
            ideas = self._to_ideas(out, limit)
            record_llm_call(
                self.metrics, self.prompt.name, "ok", time.perf_counter() - started, tokens
            )
            return ideas
        except LlmTimeout:
            reason = "timeout"
        except LlmUnavailable as exc:
            logger.warning("llm idea extraction unavailable: %s", exc)
            reason = "unavailable"
        except (InvalidIdeas, ValidationError) as exc:
            logger.warning(
                "llm prompt=%s post=%s: invalid output (%s)",
                self.prompt.id,
                post.id,
                type(exc).__name__,
            )
            reason = "invalid output"
        except Exception as exc:
            logger.warning(
                "llm prompt=%s post=%s failed: %s", self.prompt.id, post.id, type(exc).__name__
            )
            logger.debug("llm failure detail", exc_info=True)
            reason = "error"
        outcome = reason.replace(" ", "_")  # the bounded label value: invalid output -> _
        took = 0.0 if outcome == "unavailable" else time.perf_counter() - started
        record_llm_call(self.metrics, self.prompt.name, outcome, took, tokens)
        logger.info("llm prompt=%s post=%s: offline ideas (%s)", self.prompt.id, post.id, reason)
        return self.fallback.extract(post, limit)

    def _runnable(self) -> Runnable[dict[str, Any], Any]:
        if self._chain is not None:
            return self._chain
        with self._lock:
            if self._chain is None:
                model = self._source.get()
                template = self.prompt.to_langchain()
                try:
                    self._chain = template | model.with_structured_output(IdeasOutput)
                except NotImplementedError:
                    from langchain_core.output_parsers import StrOutputParser

                    self._chain = template | model | StrOutputParser()
            return self._chain

    def _call(self, post: Post, tokens: TokenCounter | None = None) -> IdeasOutput:
        chain = self._runnable()
        inputs = self.prompt.inputs(post=post.text[: self.max_chars])
        config: RunnableConfig = {
            "run_name": self.prompt.id,
            "tags": [self.prompt.id],
            "metadata": {"prompt": self.prompt.id, "post_id": post.id},
            "callbacks": (tokens or TokenCounter()).callbacks(),
        }
        logger.info(
            "llm call prompt=%s model=%s post=%s", self.prompt.id, self._source.label, post.id
        )
        raw = call_with_timeout(
            lambda: chain.invoke(inputs, config=config), self.timeout, self.prompt.id
        )
        if isinstance(raw, IdeasOutput):
            return raw
        if raw is None:
            raise InvalidIdeas("the model made no structured answer")
        if isinstance(raw, str):
            return parse_ideas(raw)
        if isinstance(raw, dict):
            return IdeasOutput.model_validate(raw)
        raise InvalidIdeas(f"unexpected answer type {type(raw).__name__}")

    @staticmethod
    def _to_ideas(out: IdeasOutput, limit: int) -> list[Idea]:
        ideas: list[Idea] = []
        seen: set[str] = set()
        for item in out.ideas:
            key = item.title.lower()
            if key in seen:
                continue
            seen.add(key)
            ideas.append(
                Idea(
                    kind="bug" if item.kind == "bug" else "idea",
                    title=item.title,
                    summary=defuse_mentions(item.summary),
                    excerpt=defuse_mentions(item.quote) or item.title,
                )
            )
            if len(ideas) >= limit:
                break
        return ideas
