"""Readiness of the ticket catalogue as the composition root wires it (for ``/readyz``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.adapters.index_local import LocalIndex
from bot.bootstrap import bootstrap
from bot.config import load_settings
from bot.domain.models import Ticket
from tests.fakes.embedder import HashEmbedder
from tests.fakes.wiring import WordIndex


def test_ready_once_the_cache_caught_up_with_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(
        bot_data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        _env_file=None,
    )
    writer = bootstrap(settings, embedder=HashEmbedder(), llm=None, tracker=None, chat=None)
    writer.catalogue.add([Ticket(key="APP-1", title="Dark mode for the dashboard")])
    bot = bootstrap(settings, embedder=HashEmbedder(), llm=None, tracker=None, chat=None)
    index = bot.adapters.index
    assert isinstance(index, LocalIndex)
    assert bot.catalogue_ready() is False  # nothing loaded yet: answers at once, starts loading
    assert index._warming is not None
    index._warming.join(timeout=30)
    assert bot.catalogue_ready() is True
    assert bot.catalogue.count() == 1
    # (A database that stops answering makes it False again: tests/adapters/test_index_local.py.)


def test_an_index_without_a_cache_is_always_ready(tmp_path: Path) -> None:
    settings = load_settings(bot_data_dir=tmp_path / "data", _env_file=None)
    bot = bootstrap(settings, embedder=HashEmbedder(), index=WordIndex(), llm=None, chat=None)
    assert bot.catalogue.cache is None and bot.catalogue_ready() is True
