"""A remote embedding model (OpenAI, Bedrock, Ollama, …) through LangChain's ``init_embeddings``.

``EMBEDDINGS_MODEL=provider:model`` (``openai:text-embedding-3-small``) picks it; the provider's
integration package is an extra (``ideabot[remote-embeddings]`` for OpenAI and OpenAI-compatible
servers). Texts go out in batches of ``batch_size``; each batch has a total deadline, retries
included: throttling (429, honouring ``Retry-After``), server errors and lost connections are
retried with the outbox's back-off (``Backoff``) while the deadline allows, and
``requests_per_minute`` spaces requests out. The client's own retries are off so that the
deadline is ours. The vector dimension is learnt from one probe call at start-up.

LangChain is imported only when the model is built: the embedded model's users never pay for it.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from bot.adapters.llm_text import call_with_timeout
from bot.config import redact_text
from bot.domain.filing import Backoff

logger = logging.getLogger(__name__)

Array = npt.NDArray[np.float32]

BATCH_SIZE = 64
# Characters per text: ~2,000 tokens, well inside OpenAI's 8,191-token input limit. Without the
# tokenizer check (it would fetch tiktoken's tables from the internet) an over-long ticket
# description would fail its whole batch; the start of a ticket says what it is about anyway.
MAX_CHARS = 8000
RETRYABLE = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})
# Exception names of connection-level failures across the provider SDKs (httpx, openai, botocore).
_TRANSIENT_NAMES = ("Timeout", "Connection", "Connect", "Throttl", "Unavailable", "RateLimit")
# The outbox's back-off, shorter: a batch has seconds, not hours.
DEFAULT_BACKOFF = Backoff(base=0.5, cap=8.0, floor=0.25, max_retry_after=30.0)


# The extras of pyproject.toml that bring each provider's LangChain package.
EXTRAS = {
    "openai": "remote-embeddings",
    "azure_openai": "remote-embeddings",
    "bedrock": "bedrock",
    "ollama": "ollama",
}


class EmbeddingsUnavailable(RuntimeError):
    """The remote model cannot be built or reached (package missing, bad spec, no answer)."""


class EmbeddingsFailed(RuntimeError):
    """A batch could not be embedded within its deadline (or the provider refused it)."""


def parse_embeddings_spec(spec: str) -> tuple[str, str]:
    """Splits ``"openai:text-embedding-3-small"`` into ``("openai", "text-embedding-3-small")``."""
    provider, sep, name = spec.strip().partition(":")
    if not sep or not provider.strip() or not name.strip():
        raise ValueError(
            f"expected provider:model (e.g. openai:text-embedding-3-small), got {spec!r}"
        )
    return provider.strip().lower(), name.strip()


def _client_params(provider: str, timeout: float, base_url: str | None) -> dict[str, Any]:
    """Client settings for the providers known to take them: one request's time limit, no
    retries of the client's own (ours count against the batch's deadline), the server's URL."""
    out: dict[str, Any] = {}
    if provider in {"openai", "azure_openai"}:
        # Raw text, not tiktoken tokens: tiktoken downloads its tables on first use.
        out.update(timeout=timeout, max_retries=0, check_embedding_ctx_length=False)
        out["chunk_size"] = 2048  # our batches are the requests; never split them again
    elif provider == "ollama":
        out["client_kwargs"] = {"timeout": timeout}
    elif provider == "bedrock":
        from botocore.config import Config

        out["config"] = Config(
            connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1}
        )
    if base_url:
        out["base_url"] = base_url
    return out


def build_langchain_embeddings(
    spec: str,
    timeout: float,
    base_url: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> Any:
    """A LangChain ``Embeddings`` for ``provider:model``; *params* win over the defaults.

    Raises ``EmbeddingsUnavailable`` (naming the extra to install) when it cannot be built.
    """
    provider, name = parse_embeddings_spec(spec)
    kwargs = _client_params(provider, timeout, base_url)
    kwargs.update(params or {})
    try:
        from langchain.embeddings import init_embeddings

        return init_embeddings(name, provider=provider, **kwargs)
    except ImportError:
        extra = EXTRAS.get(provider)
        how = f"install ideabot[{extra}]" if extra else f"pip install langchain-{provider}"
        raise EmbeddingsUnavailable(f"{spec}: the provider's package is missing; {how}") from None
    except Exception as exc:
        raise EmbeddingsUnavailable(f"{spec}: {_safe_message(exc)}") from None


_API_KEY = re.compile(r"\b(sk|pk|rk)-[A-Za-z0-9_\-]{6,}")


def _safe_message(exc: Exception) -> str:
    """What went wrong building the model, without the arguments' values (a key among them):
    pydantic's errors name the fields only; other messages are redacted and cut."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            fields = [
                ".".join(str(p) for p in e.get("loc", ())) or e.get("type", "?") for e in errors()
            ]
            return f"{type(exc).__name__}: invalid {', '.join(fields)}"
        except Exception:
            pass
    first = (str(exc).strip().splitlines() or [""])[0]  # one line: start-up errors are one
    text = _API_KEY.sub("***", redact_text(first))
    return f"{type(exc).__name__}: {text[:300]}"


def _header(headers: Any, name: str) -> str | None:
    try:
        value = headers.get(name) if headers is not None else None
    except Exception:
        return None
    return value if isinstance(value, str) else None


def classify_failure(exc: BaseException) -> tuple[bool, float | None, str]:
    """(worth retrying, the server's Retry-After in seconds, a short description without any
    secret) for an exception raised by a provider SDK."""
    status: Any = getattr(exc, "status_code", None)
    response: Any = getattr(exc, "response", None)
    headers: Any = None
    if isinstance(response, dict):  # botocore's ClientError
        meta = response.get("ResponseMetadata") or {}
        status = status or meta.get("HTTPStatusCode")
        headers = meta.get("HTTPHeaders")
    elif response is not None:
        status = status or getattr(response, "status_code", None)
        headers = getattr(response, "headers", None)
    retry_after: float | None = None
    raw = _header(headers, "retry-after")
    if raw is not None:
        try:
            retry_after = max(0.0, float(raw))
        except ValueError:
            retry_after = None  # an HTTP date: the back-off decides
    name = type(exc).__name__
    if isinstance(status, int):
        return status in RETRYABLE, retry_after, f"{name} (HTTP {status})"
    transient = isinstance(exc, TimeoutError | ConnectionError) or any(
        w in name for w in _TRANSIENT_NAMES
    )
    return transient, retry_after, name


class RemoteEmbedder:
    """Implements the ``Embedder`` port on a LangChain ``Embeddings`` (*client*).

    *model_id* is what the catalogue files the vectors under (the ``provider:model`` spec).
    Each batch of at most *batch_size* texts gets *deadline* seconds in all; *clock*, *sleep*
    and *rng* are injectable so tests need no waiting. ``dim`` is known after ``probe()``.
    """

    def __init__(
        self,
        model_id: str,
        client: Any,
        *,
        batch_size: int = BATCH_SIZE,
        deadline: float = 30.0,
        requests_per_minute: float = 0.0,
        backoff: Backoff = DEFAULT_BACKOFF,
        dim: int | None = None,
        max_chars: int = MAX_CHARS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[float, float], float] = random.uniform,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.model_id = model_id
        self.client = client
        self.batch_size = batch_size
        self.deadline = deadline
        self.backoff = backoff
        self.max_chars = max_chars
        self._interval = 60.0 / requests_per_minute if requests_per_minute > 0 else 0.0
        self._next_slot = float("-inf")
        self._slot_lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep
        self._rng = rng
        self._dim = dim
        self.requests = 0  # requests sent, retries included (tests and logs read it)

    @property
    def dim(self) -> int:
        """The vectors' dimension (probes the model on first use when not known yet)."""
        if self._dim is None:
            self.probe()
        assert self._dim is not None
        return self._dim

    @dim.setter
    def dim(self, value: int) -> None:
        self._dim = int(value)

    def probe(self) -> int:
        """Embeds one short text to learn the dimension; raises ``EmbeddingsUnavailable``."""
        try:
            vec = self._batch(["dimension probe"])
        except EmbeddingsFailed as exc:
            raise EmbeddingsUnavailable(str(exc)) from None
        self._dim = int(vec.shape[1])
        logger.info("embedding model %s: dimension %d", self.model_id, self._dim)
        return self._dim

    def embed(self, texts: Sequence[str]) -> Array:
        """Embeds *texts* in batches; rows L2-normalised, shape (len(texts), dim).

        Raises ``EmbeddingsFailed`` when a batch cannot be embedded within its deadline.
        """
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # Providers refuse empty inputs; the cut keeps one text from failing a whole batch.
        clean = [t[: self.max_chars] if t.strip() else "." for t in texts]
        parts = [
            self._batch(clean[i : i + self.batch_size])
            for i in range(0, len(clean), self.batch_size)
        ]
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    # ------------------------------------------------------------------ one batch

    def _wait_for_slot(self, deadline: float) -> None:
        """Spaces requests *interval* apart (``requests_per_minute``), across threads."""
        if not self._interval:
            return
        with self._slot_lock:
            now = self._clock()
            start = max(now, self._next_slot)
            if start > deadline:
                raise EmbeddingsFailed(
                    f"{self.model_id}: the request rate limit leaves no time before the deadline"
                )
            self._next_slot = start + self._interval
        if start > now:
            self._sleep(start - now)

    def _batch(self, texts: list[str]) -> Array:
        started = self._clock()
        deadline = started + self.deadline
        attempt = 0
        while True:
            self._wait_for_slot(deadline)
            remaining = deadline - self._clock()
            self.requests += 1
            try:
                rows = call_with_timeout(
                    lambda: self.client.embed_documents(texts),
                    max(remaining, 0.001),
                    name="embeddings-call",
                )
                return self._check(rows, len(texts))
            except EmbeddingsFailed:
                raise
            except Exception as exc:
                retry, retry_after, what = classify_failure(exc)
                if not retry:
                    raise EmbeddingsFailed(f"{self.model_id}: {what}") from None
                wait = self.backoff.delay(attempt, retry_after, self._rng)
                if self._clock() + wait >= deadline:
                    raise EmbeddingsFailed(
                        f"{self.model_id}: {what}; gave up after {attempt + 1} attempts "
                        f"within the {self.deadline:g} s deadline"
                    ) from None
                logger.warning(
                    "embedding model %s: %s; retry %d in %.1f s",
                    self.model_id,
                    what,
                    attempt + 1,
                    wait,
                )
                self._sleep(wait)
                attempt += 1

    def _check(self, rows: Any, n: int) -> Array:
        vecs = np.asarray(rows, dtype=np.float32)
        if vecs.ndim != 2 or len(vecs) != n:
            raise EmbeddingsFailed(
                f"{self.model_id}: expected {n} vectors, got shape {getattr(vecs, 'shape', '?')}"
            )
        if self._dim is not None and vecs.shape[1] != self._dim:
            raise EmbeddingsFailed(
                f"{self.model_id}: vectors of dimension {vecs.shape[1]}, expected {self._dim}"
            )
        # The port promises unit rows; not every provider normalises (Ollama's models may not).
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        return (vecs / np.clip(norms, 1e-12, None)).astype(np.float32, copy=False)


def build_remote_embedder(
    spec: str,
    *,
    timeout: float = 30.0,
    batch_size: int = BATCH_SIZE,
    requests_per_minute: float = 0.0,
    base_url: str | None = None,
    params: Mapping[str, Any] | None = None,
    probe: bool = True,
) -> RemoteEmbedder:
    """A ``RemoteEmbedder`` for ``provider:model``, its dimension probed when *probe*.

    Raises ``EmbeddingsUnavailable`` when the model cannot be built or does not answer.
    """
    client = build_langchain_embeddings(spec, timeout, base_url, params)
    embedder = RemoteEmbedder(
        ":".join(parse_embeddings_spec(spec)),
        client,
        batch_size=batch_size,
        deadline=timeout,
        requests_per_minute=requests_per_minute,
    )
    if probe:
        embedder.probe()
    return embedder
