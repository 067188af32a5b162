"""Remote embeddings (``EMBEDDINGS_MODEL=provider:model``): the real ``langchain-openai`` and
``openai`` clients against a local fake of an OpenAI-compatible ``/v1/embeddings`` endpoint.

Batching, retries on 429/503 honouring Retry-After, the total deadline, request spacing, the
start-up probe and configuration errors, and the Pinecone dimension check at start-up. Time is
injected (a clock moved by the recorded sleeps): nothing here waits for real, except the one
test of a server that never answers, which waits its 0.3 s deadline.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot.adapters.embedder_onnx import OnnxEmbedder
from bot.adapters.embedder_remote import (
    MAX_CHARS,
    EmbeddingsFailed,
    EmbeddingsUnavailable,
    RemoteEmbedder,
    build_langchain_embeddings,
    build_remote_embedder,
)
from bot.adapters.index_local import LocalIndex
from bot.bootstrap import bootstrap, build_embedder, build_index, previous_embedders
from bot.config import ConfigError, Settings
from bot.domain.filing import Backoff
from tests.fakes.memory_store import MemoryStore
from tests.fakes.openai_embeddings_server import FakeOpenAIEmbeddings
from tests.fakes.pinecone_server import FakePinecone
from tests.fakes.settings import settings_from_env
from tests.fakes.tickets import TICKETS

MODEL = "openai:text-embedding-3-small"


@pytest.fixture
def fake() -> Iterator[FakeOpenAIEmbeddings]:
    server = FakeOpenAIEmbeddings(dimension=48).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def no_tiktoken(monkeypatch: pytest.MonkeyPatch) -> None:
    """tiktoken fetches its tables from the internet on first use: any use fails the test."""
    import tiktoken

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("tiktoken was asked for an encoding (a download)")

    monkeypatch.setattr(tiktoken, "get_encoding", refuse)
    monkeypatch.setattr(tiktoken, "encoding_for_model", refuse)


class FakeTime:
    """A clock that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def remote(fake: FakeOpenAIEmbeddings, t: FakeTime | None = None, **kw: Any) -> RemoteEmbedder:
    client = build_langchain_embeddings(
        MODEL,
        timeout=kw.pop("timeout", 10.0),
        base_url=fake.base_url,
        params={"api_key": fake.api_key},
    )
    t = t or FakeTime()
    kw.setdefault("rng", lambda lo, hi: hi)  # the back-off's longest wait: deterministic
    return RemoteEmbedder(MODEL, client, clock=t.clock, sleep=t.sleep, **kw)


def test_batches_texts_through_the_real_client(fake: FakeOpenAIEmbeddings) -> None:
    emb = build_remote_embedder(
        MODEL, base_url=fake.base_url, params={"api_key": fake.api_key}, batch_size=3
    )
    assert emb.dim == 48 and emb.model_id == MODEL  # learnt from one probe call
    assert fake.inputs() == [["dimension probe"]]
    texts = ["dark mode for the dashboard", "", "export to csv", "a", "b", "c", "x" * 20000]
    vecs = emb.embed(texts)
    assert vecs.shape == (7, 48) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    sent = fake.inputs()[1:]
    assert [len(b) for b in sent] == [3, 3, 1]  # batches of batch_size, in order
    assert sent[0][1] == "."  # providers refuse empty inputs
    assert len(sent[2][0]) == MAX_CHARS  # cut, rather than failing the batch
    # The client's default base64 answer, decoded: the server's vectors, row for row.
    np.testing.assert_allclose(vecs[0], fake.vectors([texts[0]])[0], atol=1e-6)
    req = fake.requests[-1]
    assert req.path == "/v1/embeddings"
    assert req.body["model"] == "text-embedding-3-small"
    assert req.headers["authorization"] == f"Bearer {fake.api_key}"
    assert emb.embed([]).shape == (0, 48)


def test_retries_429_and_503_honouring_retry_after(fake: FakeOpenAIEmbeddings) -> None:
    t = FakeTime()
    emb = remote(fake, t, dim=48, deadline=60.0)
    fake.fail_next(429, retry_after="7")
    fake.fail_next(503)
    vecs = emb.embed(["rate limited text"])
    np.testing.assert_allclose(vecs[0], fake.vectors(["rate limited text"])[0], atol=1e-6)
    assert [r.status for r in fake.requests] == [429, 503, 200]
    assert t.sleeps[0] == 7.0  # Retry-After is a lower bound of the wait
    assert 0 < t.sleeps[1] <= Backoff(base=0.5, cap=8.0).cap
    assert emb.requests == 3


def test_gives_up_at_the_total_deadline(fake: FakeOpenAIEmbeddings) -> None:
    t = FakeTime()
    emb = remote(fake, t, dim=48, deadline=10.0)
    fake.fail_next(429, times=100)
    with pytest.raises(EmbeddingsFailed, match=r"gave up after .* 10 s deadline"):
        emb.embed(["never answered"])
    assert sum(t.sleeps) < 10.0  # no wait would end past the deadline
    assert 2 <= len(fake.requests) < 100


def test_a_server_that_never_answers_is_left_at_the_deadline(
    fake: FakeOpenAIEmbeddings,
) -> None:
    client = build_langchain_embeddings(
        MODEL, timeout=5.0, base_url=fake.base_url, params={"api_key": fake.api_key}
    )
    emb = RemoteEmbedder(MODEL, client, dim=48, deadline=0.3)
    fake.hold()
    started = time.monotonic()
    with pytest.raises(EmbeddingsFailed, match="gave up"):
        emb.embed(["hello"])
    assert time.monotonic() - started < 2.0  # the deadline, not the client's 5 s timeout


def test_refusals_are_not_retried_and_keep_the_key_out(fake: FakeOpenAIEmbeddings) -> None:
    client = build_langchain_embeddings(
        MODEL, timeout=5.0, base_url=fake.base_url, params={"api_key": "sk-wrong-secret"}
    )
    emb = RemoteEmbedder(MODEL, client, dim=48)
    with pytest.raises(EmbeddingsFailed) as info:
        emb.embed(["hello"])
    assert "HTTP 401" in str(info.value) and "sk-wrong" not in str(info.value)
    assert len(fake.requests) == 1


def test_requests_per_minute_spaces_the_requests(fake: FakeOpenAIEmbeddings) -> None:
    t = FakeTime()
    emb = remote(fake, t, dim=48, batch_size=2, requests_per_minute=30)
    emb.embed([f"text {i}" for i in range(6)])
    assert len(fake.inputs()) == 3
    assert t.sleeps == [2.0, 2.0]  # 30 a minute: one every 2 s


def test_a_wrong_vector_count_fails_the_batch(fake: FakeOpenAIEmbeddings) -> None:
    emb = remote(fake, dim=32)  # the model answers 48-d vectors
    with pytest.raises(EmbeddingsFailed, match="dimension 48, expected 32"):
        emb.embed(["hello"])


# ---------------------------------------------------------------- configuration and start-up


_settings = settings_from_env


def _remote(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake: FakeOpenAIEmbeddings, **env: str
) -> Settings:
    """Settings for the remote model served by *fake*, plus *env*."""
    return _settings(
        monkeypatch, tmp_path, EMBEDDINGS_MODEL=MODEL, EMBEDDINGS_BASE_URL=fake.base_url, **env
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", None),
        ("local", None),
        ("OpenAI:text-embedding-3-large", "openai:text-embedding-3-large"),
        ("bedrock:amazon.titan-embed-text-v2:0", "bedrock:amazon.titan-embed-text-v2:0"),
    ],
)
def test_embeddings_model_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str, expected: str | None
) -> None:
    s = _settings(monkeypatch, tmp_path, EMBEDDINGS_MODEL=value)
    assert s.embeddings_model == expected


@pytest.mark.parametrize("value", ["text-embedding-3-small", "openai:", ":model"])
def test_a_malformed_embeddings_model_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str
) -> None:
    with pytest.raises(ConfigError, match=r"^EMBEDDINGS_MODEL: expected provider:model"):
        _settings(monkeypatch, tmp_path, EMBEDDINGS_MODEL=value)
    with pytest.raises(ConfigError, match=r"^EMBEDDINGS_BASE_URL: expected an http"):
        _settings(monkeypatch, tmp_path, EMBEDDINGS_MODEL="", EMBEDDINGS_BASE_URL="localhost:8080")


def test_start_up_builds_and_probes_the_configured_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake: FakeOpenAIEmbeddings
) -> None:
    s = _remote(
        monkeypatch,
        tmp_path,
        fake,
        EMBEDDINGS_BATCH_SIZE="5",
        OPENAI_API_KEY=fake.api_key,  # the provider's own variable, read by its client
    )
    emb = build_embedder(s)
    assert emb.model_id == MODEL and emb.dim == 48
    assert fake.inputs() == [["dimension probe"]]
    emb.embed(["one", "two"])
    emb.embed(["one", "two"])  # the cache in front answers the second time
    assert len(fake.inputs()) == 2


def test_start_up_errors_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake: FakeOpenAIEmbeddings
) -> None:
    s = _remote(
        monkeypatch,
        tmp_path,
        fake,
        EMBEDDINGS_TIMEOUT="0.5",
    )
    fake.fail_next(503, times=1000)
    with pytest.raises(ConfigError, match=r"^EMBEDDINGS_MODEL: openai:.*HTTP 503.*gave up"):
        build_embedder(s, api_key=fake.api_key)
    with pytest.raises(EmbeddingsUnavailable) as info:
        build_langchain_embeddings(
            MODEL, 5.0, params={"api_key": "sk-secret-0123456789", "chunk_size": "many"}
        )
    assert "chunk_size" in str(info.value) and "sk-secret" not in str(info.value)
    unknown = _settings(monkeypatch, tmp_path, EMBEDDINGS_MODEL="nosuchprovider:model")
    with pytest.raises(ConfigError, match=r"^EMBEDDINGS_MODEL: nosuchprovider:model: ") as err:
        build_embedder(unknown)
    assert "\n" not in str(err.value)  # one line, though LangChain's message has many
    missing = _settings(monkeypatch, tmp_path, EMBEDDINGS_MODEL="cohere:embed-english-v3.0")
    with pytest.raises(ConfigError, match="package is missing; pip install langchain-cohere"):
        build_embedder(missing)


def test_pinecone_dimension_is_checked_at_start_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake: FakeOpenAIEmbeddings
) -> None:
    pinecone = FakePinecone(dimension=384).start()
    try:
        s = _remote(
            monkeypatch,
            tmp_path,
            fake,
            PINECONE_API_KEY=pinecone.api_key,
            PINECONE_HOST=pinecone.url,
        )
        emb = build_embedder(s, api_key=fake.api_key)
        with pytest.raises(ConfigError) as info:
            build_index(s, emb, MemoryStore())  # type: ignore[arg-type]
        msg = str(info.value)
        assert msg.startswith("PINECONE_HOST: ") and "dimension 384" in msg
        assert "dimension 48" in msg and MODEL in msg
        assert pinecone.calls("/describe_index_stats")  # asked through the real SDK
        assert not pinecone.calls("/vectors/upsert")
        pinecone.dimension = 48
        assert build_index(s, emb, MemoryStore()).count() == 0  # type: ignore[arg-type]
    finally:
        pinecone.stop()


def test_the_previous_model_can_be_built_to_search_its_vectors(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake: FakeOpenAIEmbeddings
) -> None:
    s = _settings(
        monkeypatch,
        tmp_path,
        EMBEDDINGS_MODEL="openai:text-embedding-3-large",
        EMBEDDINGS_BASE_URL=fake.base_url,
        OPENAI_API_KEY=fake.api_key,
    )
    build = previous_embedders(s)
    local = build(OnnxEmbedder.model_id)
    assert local is not None and local.model_id == OnnxEmbedder.model_id and local.dim == 384
    old = build(MODEL)  # the same provider: the same server
    assert old is not None and old.model_id == MODEL and old.dim == 48
    assert build("some-retired-model") is None
    assert build("nosuchprovider:model") is None  # logged; the index then re-embeds at load


def test_a_model_change_through_the_composition_root(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake: FakeOpenAIEmbeddings
) -> None:
    """The embedded model's vectors in the database; the bot restarts with a remote model:
    searches answer at once from the stored vectors while the new ones are made."""
    s = _settings(monkeypatch, tmp_path, JIRA_PROJECT="", BOT_DATA_DIR=str(tmp_path / "data"))
    first = bootstrap(s, llm=None, tracker=None, slack_client=None, calendar=None)
    first.adapters.index.upsert(TICKETS)
    assert first.adapters.embedder.model_id == OnnxEmbedder.model_id
    s = _remote(
        monkeypatch,
        tmp_path,
        fake,
        OPENAI_API_KEY=fake.api_key,
    )
    gate = fake.hold(probe=False)  # the start-up probe is answered; the re-embedding waits
    bot = bootstrap(s, llm=None, tracker=None, slack_client=None, calendar=None)
    assert bot.adapters.embedder.model_id == MODEL
    index = bot.adapters.index
    assert isinstance(index, LocalIndex)
    assert index.search("Safari crashes when I open the login page", 1)[0].key == "APP-1"
    assert index.embedder.model_id == OnnxEmbedder.model_id  # the old vectors, the old model
    gate.set()
    assert index.reembedded.wait(20)
    assert index.embedder.model_id == MODEL
    assert index.search("Safari crashes when I open the login page", 1)[0].key == "APP-1"
