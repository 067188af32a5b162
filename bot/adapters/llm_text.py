"""Running prompt files against a chat model: model resolution, time limits, free-text prompts.

LangChain is imported only when a model is first used, so importing this module stays cheap.
``run_text_prompt`` serves the digests (takeaways, meetings overview): it returns ``None`` instead
of raising when the model is missing, slow or failing, so a digest can go out without that part.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from bot.adapters.prompts import Prompt, load_prompt
from bot.domain.metrics import (
    LLM_CALL_SECONDS,
    LLM_CALLS,
    LLM_FALLBACKS,
    LLM_TOKENS,
    Metrics,
    NullMetrics,
)

if TYPE_CHECKING:
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.runnables import RunnableConfig

logger = logging.getLogger(__name__)

T = TypeVar("T")


class LlmTimeout(TimeoutError):
    """The model did not answer within the time limit."""


class LlmUnavailable(RuntimeError):
    """The model could not be built (unknown provider, integration package not installed)."""


def parse_model_spec(spec: str) -> tuple[str, str]:
    """Splits ``"openai:gpt-4o-mini"`` into ``("openai", "gpt-4o-mini")``."""
    provider, sep, name = spec.strip().partition(":")
    if not sep or not provider.strip() or not name.strip():
        raise ValueError(f"expected provider:model (e.g. openai:gpt-4o-mini), got {spec!r}")
    return provider.strip(), name.strip()


def _client_limits(provider: str, timeout: float) -> dict[str, Any]:
    """Client settings that bound one request, for the providers known to take them.

    Retries are off: the worker thread gives up at *timeout*, so a client retry after a slow
    answer would only spend tokens in an abandoned thread.
    """
    if provider in {"openai", "azure_openai", "anthropic"}:
        return {"timeout": timeout, "max_retries": 0}
    if provider == "ollama":
        return {"client_kwargs": {"timeout": timeout}}
    return {}


def build_chat_model(
    spec: str, timeout: float | None = None, params: Mapping[str, Any] | None = None
) -> BaseChatModel:
    """Builds a chat model from ``provider:model`` with LangChain's ``init_chat_model``.

    *timeout* (and no retries) is handed to the provider client where it is known to accept it;
    the worker thread's limit applies to every provider. *params* (the prompt's
    ``model_parameters``) go to the model as keyword arguments and win over those defaults.
    Raises ``LlmUnavailable`` when the model cannot be built.
    """
    provider, name = parse_model_spec(spec)
    kwargs = _client_limits(provider, timeout) if timeout is not None else {}
    kwargs.update(params or {})
    try:
        from langchain.chat_models import init_chat_model

        return init_chat_model(name, model_provider=provider, **kwargs)
    except ImportError as exc:
        raise LlmUnavailable(
            f"{spec}: the integration package is missing ({exc.name or exc}); "
            f"install ideabot[{provider}]"
        ) from None
    except Exception as exc:
        raise LlmUnavailable(f"{spec}: {type(exc).__name__}: {exc}") from None


def model_label(model: BaseChatModel | str) -> str:
    """A short name for logs and ``Analysis.analyzer``: the spec, or the model's own name."""
    if isinstance(model, str):
        return model.strip()
    for attr in ("model_name", "model", "model_id"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(model).__name__


def with_parameters(model: BaseChatModel, params: Mapping[str, Any]) -> BaseChatModel:
    """*model* with the prompt's ``model_parameters`` that it has fields for (a shallow copy).

    Parameters the model class does not define are left out rather than sent to a provider
    that may reject them; the model is returned as is when nothing changes.
    """
    fields = getattr(type(model), "model_fields", {})
    update = {k: v for k, v in params.items() if k in fields and getattr(model, k, None) != v}
    if not update:
        return model
    logger.debug("model %s: applying prompt parameters %s", model_label(model), sorted(update))
    return model.model_copy(update=update)


class ChatModelSource:
    """A chat model given as an instance, or as a spec built on first use (thread-safe).

    The prompt's *params* (``model_parameters``) are applied either way: passed to
    ``init_chat_model`` for a spec, set on a copy of an instance (see ``with_parameters``).
    """

    def __init__(
        self,
        model: BaseChatModel | str,
        timeout: float | None = None,
        params: Mapping[str, Any] | None = None,
        label: str | None = None,
    ) -> None:
        if isinstance(model, str):
            parse_model_spec(model)  # fail fast on a malformed spec, without importing LangChain
        self._given = model
        self._timeout = timeout
        self._params = dict(params or {})
        self._model: BaseChatModel | None = (
            None if isinstance(model, str) else with_parameters(model, self._params)
        )
        self._lock = threading.Lock()
        self.label = label or model_label(model)

    def get(self) -> BaseChatModel:
        """The model; built from the spec the first time. Raises ``LlmUnavailable``."""
        if self._model is not None:
            return self._model
        with self._lock:
            if self._model is None:
                assert isinstance(self._given, str)
                self._model = build_chat_model(self._given, self._timeout, self._params)
            return self._model


def call_with_timeout(fn: Callable[[], T], timeout: float, name: str = "llm-call") -> T:
    """Runs *fn* in a daemon thread and waits at most *timeout* seconds for it.

    Raises ``LlmTimeout`` when time is up (the thread is abandoned, not killed: a daemon thread
    cannot hold the process open), else returns *fn*'s value or re-raises its exception.
    """
    box: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc
        finally:
            done.set()

    # Copy the context so LangChain callbacks and tracing see the caller's run.
    ctx = contextvars.copy_context()
    threading.Thread(target=ctx.run, args=(work,), name=name, daemon=True).start()
    if not done.wait(timeout):
        raise LlmTimeout(f"no answer within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


class TokenCounter:
    """Sums the tokens a provider reports (LangChain's ``usage_metadata`` on each answer) over
    one call. ``callbacks()`` goes in the call's ``RunnableConfig``; it sees structured-output
    answers too, which reach the caller as a parsed object without the message."""

    def __init__(self) -> None:
        self.input = 0
        self.output = 0
        self.reported = False

    def add(self, usage: Mapping[str, Any] | None) -> None:
        if not usage:
            return
        self.input += int(usage.get("input_tokens") or 0)
        self.output += int(usage.get("output_tokens") or 0)
        self.reported = True

    def callbacks(self) -> list[Any]:
        from langchain_core.callbacks import BaseCallbackHandler

        counter = self

        class _Handler(BaseCallbackHandler):
            def on_llm_end(self, response: Any, **kwargs: Any) -> None:
                for generations in getattr(response, "generations", None) or []:
                    for generation in generations:
                        message = getattr(generation, "message", None)
                        counter.add(getattr(message, "usage_metadata", None))

        return [_Handler()]


# Why an LLM call gave no usable answer, as the ``outcome``/``reason`` label values.
Outcome = str  # "ok" | "timeout" | "unavailable" | "invalid_output" | "error"


def record_llm_call(
    metrics: Metrics,
    task: str,
    outcome: Outcome,
    seconds: float,
    tokens: TokenCounter | None = None,
) -> None:
    """One LLM call in the metrics: calls by outcome, latency, tokens when the provider said,
    and a fallback (the offline answer was used instead) by reason when it failed."""
    metrics.inc(LLM_CALLS, task=task, outcome=outcome)
    if outcome != "unavailable":  # no model was reached: there is no latency to speak of
        metrics.observe(LLM_CALL_SECONDS, seconds, task=task)
    if tokens is not None and tokens.reported:
        metrics.inc(LLM_TOKENS, float(tokens.input), task=task, direction="input")
        metrics.inc(LLM_TOKENS, float(tokens.output), task=task, direction="output")
    if outcome != "ok":
        metrics.inc(LLM_FALLBACKS, task=task, reason=outcome)


_BROADCAST = re.compile(r"<!(?:[^<>]*)>|<@[^<>]*>")
_GAPS = re.compile(r"(?<=\S)[ \t]{2,}")
_AT = re.compile(r"(?<![\w.])@(channel|here|everyone)\b", re.IGNORECASE)


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


def json_object_in(text: str) -> dict[str, Any]:
    """The JSON object in a model's text answer: bare, fenced, or inside prose.

    Raises ``ValueError`` saying what was wrong; callers re-raise it as their own "invalid
    output" so a fallback can name the reason."""
    fenced = _FENCE.search(text)
    body = fenced.group(1) if fenced else text
    start, end = body.find("{"), body.rfind("}")
    if start < 0 or end <= start:
        raise ValueError("no JSON object in the answer")
    try:
        data = json.loads(body[start : end + 1])
    except json.JSONDecodeError as exc:
        raise ValueError(f"malformed JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise ValueError("the JSON is not an object")
    return data


def defuse_mentions(text: str) -> str:
    """Removes Slack broadcasts and user mentions (``<!here>``, ``<@U1>``, ``@channel``)."""
    # Until nothing changes: one pass over "<<!here>!here>" would leave "<!here>" behind.
    while True:
        cleaned = _AT.sub(r"\1", _BROADCAST.sub("", text))
        if cleaned == text:
            break
        text = cleaned
    return "\n".join(_GAPS.sub(" ", line).rstrip() for line in text.split("\n"))


_TEXT_MODELS: dict[tuple[str, float | None, str], ChatModelSource] = {}
_TEXT_MODELS_LOCK = threading.Lock()


def _text_source(
    model: BaseChatModel | str, timeout: float, params: Mapping[str, Any]
) -> ChatModelSource:
    if not isinstance(model, str):
        return ChatModelSource(model, params=params)
    key = (model, timeout, repr(sorted(params.items())))
    with _TEXT_MODELS_LOCK:
        source = _TEXT_MODELS.get(key)
        if source is None:
            source = _TEXT_MODELS[key] = ChatModelSource(model, timeout, params)
        return source


def run_text_prompt(
    model: BaseChatModel | str | None,
    prompt_name: str | Prompt,
    variables: Mapping[str, str],
    timeout: float = 20.0,
    prompts_dir: str | os.PathLike[str] | None = None,
    metrics: Metrics | None = None,
) -> str | None:
    """Runs a free-text prompt file and returns the model's text, or ``None`` on any model failure.

    *model* is a chat model or ``provider:model`` (``None`` means no LLM configured: returns
    ``None``). A prompt given by name is read from *prompts_dir* (the ``PROMPTS_DIR`` setting;
    default: the shipped prompts). Delimiter tags in *variables* are defused and Slack
    broadcasts/mentions are removed from the answer. A missing prompt file or wrong variables
    raise ``PromptError`` (a bug, not an outage). *metrics* records the call (task: the prompt
    name; a failure is a fallback: the caller uses its offline text).
    """
    meter: Metrics = metrics or NullMetrics()
    prompt = (
        prompt_name if isinstance(prompt_name, Prompt) else load_prompt(prompt_name, prompts_dir)
    )
    inputs = prompt.inputs(**variables)
    if model is None:
        return None
    source = _text_source(model, timeout, prompt.model_parameters)
    logger.info("llm call prompt=%s model=%s", prompt.id, source.label)
    tokens = TokenCounter()
    started = time.perf_counter()
    try:
        try:
            chat = source.get()
        except LlmUnavailable:
            record_llm_call(meter, prompt.name, "unavailable", 0.0)
            raise
        from langchain_core.output_parsers import StrOutputParser

        chain = prompt.to_langchain() | chat | StrOutputParser()
        config: RunnableConfig = {
            "run_name": prompt.id,
            "tags": [prompt.id],
            "metadata": {"prompt": prompt.id},
            "callbacks": tokens.callbacks(),
        }
        try:
            text = call_with_timeout(
                lambda: chain.invoke(inputs, config=config), timeout, prompt.id
            )
        except LlmTimeout:
            record_llm_call(meter, prompt.name, "timeout", time.perf_counter() - started, tokens)
            raise
        except Exception:
            record_llm_call(meter, prompt.name, "error", time.perf_counter() - started, tokens)
            raise
    except LlmTimeout:
        logger.warning(
            "llm prompt=%s model=%s: timeout after %gs", prompt.id, source.label, timeout
        )
        return None
    except Exception as exc:
        logger.warning(
            "llm prompt=%s model=%s failed: %s", prompt.id, source.label, type(exc).__name__
        )
        logger.debug("llm failure detail", exc_info=True)
        return None
    cleaned = defuse_mentions(str(text)).strip()
    # An empty answer is as good as none: the caller uses its offline text.
    outcome = "ok" if cleaned else "invalid_output"
    record_llm_call(meter, prompt.name, outcome, time.perf_counter() - started, tokens)
    logger.debug("llm prompt=%s answered %d chars", prompt.id, len(cleaned))
    return cleaned or None
