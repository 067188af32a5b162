"""The embedded model computing in int8 (``onnx_int8``'s graph rewrite), on the real model file:
what the rewrite replaces, that it keeps the vectors, that a text's vector depends on nothing
else in the call, and how a catalogue or Pinecone namespace of the float32 vectors is kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bot.adapters import onnx_int8
from bot.adapters.embedder_onnx import OnnxEmbedder, default_model_path
from bot.adapters.index_local import LocalIndex
from bot.adapters.onnx_int8 import RewriteError, rewrite_int8
from bot.bootstrap import bootstrap, build_embedder, previous_embedders
from tests.fakes.memory_store import MemoryStore
from tests.fakes.settings import settings_from_env
from tests.fakes.tickets import TICKETS

TEXTS = [
    "The app crashes when I upload a PNG",
    "dark mode",
    "Export to CSV drops the last row of the report when the filter is on "
    "and the table has more than a thousand rows, on every browser we tried",
    "How do I reset my password?",
    "Could we add SSO with Okta for the admin console?",
    "Search ignores accents: café finds nothing",
]


@pytest.fixture(scope="module")
def model() -> bytes:
    return default_model_path().read_bytes()


@pytest.fixture(scope="module")
def float32() -> OnnxEmbedder:
    return OnnxEmbedder(max_tokens=256, compute="float32", workers=1)


@pytest.fixture(scope="module")
def int8() -> OnnxEmbedder:
    return OnnxEmbedder(max_tokens=256, workers=1)


def test_the_rewrite_replaces_every_layer_and_copies_the_weights(model: bytes) -> None:
    rewritten, report = rewrite_int8(model, num_layers=6)
    assert (report.int8_matmuls, report.attentions, report.gelus) == (36, 6, 6)

    def initializers(blob: bytes) -> list[bytes]:
        graph = onnx_int8._bytes_of(blob, onnx_int8._MODEL_GRAPH)[0]
        return onnx_int8._bytes_of(graph, onnx_int8._GRAPH_INITIALIZER)

    # The weights are the file's own int8 matrices, byte for byte: nothing is re-quantised;
    # what is added are the float32 rows of the outlier channels (and their masks).
    original = initializers(model)
    assert initializers(rewritten)[: len(original)] == original
    assert initializers(rewrite_int8(model, outliers={})[0]) == original
    assert rewrite_int8(model)[0] == rewritten  # deterministic: same input, same bytes


def test_outlier_channels_in_float32_bring_the_vectors_closer(
    model: bytes, float32: OnnxEmbedder, int8: OnnxEmbedder
) -> None:
    plain = OnnxEmbedder(max_tokens=256, workers=1)
    plain._load()
    # The same embedder with every channel quantised: its session from the plain rewrite.
    import onnxruntime as ort

    plain._session = ort.InferenceSession(
        rewrite_int8(model, outliers={})[0], providers=["CPUExecutionProvider"]
    )
    ref = float32.embed(TEXTS)
    split = (int8.embed(TEXTS) * ref).sum(axis=1).mean()
    quantised = (plain.embed(TEXTS) * ref).sum(axis=1).mean()
    assert 1 - split < (1 - quantised) / 2, (split, quantised)


def test_outlier_channels_must_exist(model: bytes) -> None:
    with pytest.raises(RewriteError, match="out of range"):
        rewrite_int8(model, outliers={"layer_norm": (384,)})


def test_a_model_of_another_shape_is_refused_not_half_rewritten(model: bytes) -> None:
    with pytest.raises(RewriteError, match="expected 12 layers"):
        rewrite_int8(model, num_layers=12)
    with pytest.raises(RewriteError):
        rewrite_int8(b"\x08\x07not an onnx model")
    with pytest.raises(RewriteError):
        rewrite_int8(model[: len(model) // 2])  # truncated


def test_int8_vectors_stay_close_to_the_float32_ones(
    float32: OnnxEmbedder, int8: OnnxEmbedder
) -> None:
    a, b = float32.embed(TEXTS), int8.embed(TEXTS)
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    cos = (a * b).sum(axis=1)
    assert cos.min() > 0.98, cos
    # ... and they keep the float32 model's neighbours: each text is still nearest itself.
    assert ((b @ a.T).argmax(axis=1) == np.arange(len(TEXTS))).all()
    assert float32.model_id != int8.model_id  # stored vectors say which computation made them


def test_a_texts_int8_vector_does_not_depend_on_the_texts_beside_it(int8: OnnxEmbedder) -> None:
    # Activations are quantised with one scale per run: batched, a short text's vector would
    # move with its longest neighbour. One text per run, it is the same in any company.
    together = OnnxEmbedder(max_tokens=256, workers=2).embed(TEXTS)
    for i, text in enumerate(TEXTS):
        assert np.array_equal(int8.embed([text])[0], together[i])


def test_compute_must_be_int8_or_float32() -> None:
    with pytest.raises(ValueError, match="int8 or float32"):
        OnnxEmbedder(compute="fp16")


def test_a_pinecone_namespace_of_float32_vectors_keeps_its_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    s = settings_from_env(
        monkeypatch, tmp_path, PINECONE_API_KEY="pc-test", PINECONE_HOST="http://127.0.0.1:9"
    )
    store = MemoryStore()
    assert build_embedder(s, store).model_id == OnnxEmbedder.MODEL_ID_INT8  # a new namespace
    store.set_value(f"pinecone:{s.jira_project or 'default'}:model", OnnxEmbedder.MODEL_ID_FLOAT32)
    assert build_embedder(s, store).model_id == OnnxEmbedder.MODEL_ID_FLOAT32
    build = previous_embedders(s)
    for model_id in (OnnxEmbedder.MODEL_ID_FLOAT32, OnnxEmbedder.MODEL_ID_INT8):
        old = build(model_id)
        assert old is not None and old.model_id == model_id


def test_a_catalogue_of_float32_vectors_is_searched_then_re_embedded_in_int8(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, float32: OnnxEmbedder
) -> None:
    """An upgraded bot: the database holds the float32 vectors; searches answer from them at once
    while the int8 ones are made in the background, then switch."""
    s = settings_from_env(
        monkeypatch, tmp_path, JIRA_PROJECT="", BOT_DATA_DIR=str(tmp_path / "data")
    )
    first = bootstrap(s, llm=None, tracker=None, slack_client=None, calendar=None, embedder=float32)
    first.adapters.index.upsert(TICKETS)
    bot = bootstrap(s, llm=None, tracker=None, slack_client=None, calendar=None)
    assert bot.adapters.embedder.model_id == OnnxEmbedder.MODEL_ID_INT8
    index = bot.adapters.index
    assert isinstance(index, LocalIndex)
    assert index.search("Safari crashes when I open the login page", 1)[0].key == "APP-1"
    assert index.reembedded.wait(60)
    assert index.embedder.model_id == OnnxEmbedder.MODEL_ID_INT8
    assert index.search("Safari crashes when I open the login page", 1)[0].key == "APP-1"
