"""The offline classifier is trained in the background at start-up (``Bot.warm_up``), so the
first post does not wait for the model and the training: on a busy machine that took longer than
a shutdown's grace, and an acknowledged post then went to another replica instead of its reply."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from bot.adapters.analyzer_offline import OfflineAnalyzer
from bot.config import DEFAULT_TYPE_KINDS
from bot.domain.models import Post
from bot.domain.ports import Warmable
from tests.fakes.embedder import HashEmbedder


class GatedEmbedder(HashEmbedder):
    """Fails while *broken*; counts texts."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = False

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if self.broken:
            raise OSError("model file unreadable")
        return super().embed(texts)


def _trained(analyzer: OfflineAnalyzer, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while analyzer._cold is None:
        assert time.monotonic() < end, "the warm-up did not train the classifier"
        time.sleep(0.01)


def test_warm_up_trains_in_the_background_and_the_first_post_only_embeds_itself() -> None:
    emb = GatedEmbedder()
    analyzer = OfflineAnalyzer(emb, None, DEFAULT_TYPE_KINDS)
    assert isinstance(analyzer, Warmable)
    analyzer.warm_up()
    _trained(analyzer)
    before = emb.texts
    assert before > 50  # the project's own examples were embedded by the warm-up
    got = analyzer.analyze(Post(id="p1", text="The export to CSV crashes on commas"))
    assert got.kind in ("idea", "bug", "question", "other")
    assert emb.texts - before <= 2  # the post (and at most its headline), not the examples


def test_a_failed_warm_up_is_logged_and_the_first_post_trains_instead() -> None:
    emb = GatedEmbedder()
    emb.broken = True
    analyzer = OfflineAnalyzer(emb, None, DEFAULT_TYPE_KINDS)
    done = threading.Event()
    handler = logging.Handler()
    handler.emit = lambda record: done.set()  # type: ignore[method-assign]
    logging.getLogger("bot.adapters.analyzer_offline").addHandler(handler)
    try:
        analyzer.warm_up()
        assert done.wait(30)
    finally:
        logging.getLogger("bot.adapters.analyzer_offline").removeHandler(handler)
    assert analyzer._cold is None
    emb.broken = False
    assert analyzer.analyze(Post(id="p1", text="Add dark mode please")).kind
