"""PROMPTS_DIR reaches every prompt user as an argument from the settings, never the environment."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from bot.adapters.prompts import packaged_prompts_dir
from bot.bootstrap import bootstrap
from bot.config import load_settings
from tests.fakes.chat_model import ScriptedChatModel
from tests.fakes.embedder import HashEmbedder


def own_prompts(directory: Path) -> Path:
    """A copy of the shipped prompts in *directory*, every one at version "custom"."""
    directory.mkdir()
    for src in packaged_prompts_dir().glob("*.prompt.yaml"):
        lines = src.read_text(encoding="utf-8").splitlines()
        lines = ['version: "custom"' if ln.startswith("version:") else ln for ln in lines]
        (directory / src.name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


def test_the_prompts_dir_setting_reaches_the_analyzer_and_the_digest_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    directory = own_prompts(tmp_path / "mine")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROMPTS_DIR", raising=False)
    llm = ScriptedChatModel(responses=["• one takeaway"])
    settings = load_settings(
        bot_data_dir=tmp_path / "data", llm_model="openai:gpt-4o-mini", prompts_dir=directory
    )
    services = bootstrap(settings, embedder=HashEmbedder(), llm=llm, slack_client=None)

    assert "PROMPTS_DIR" not in os.environ  # start-up does not publish it for the adapters
    assert services.adapters.analyzer.prompt.id == "triage@custom"  # type: ignore[attr-defined]
    write = services.digests.write
    assert write is not None
    with caplog.at_level(logging.INFO, logger="bot.adapters"):
        assert write("takeaways", {"day": "Monday", "posts": "- dark mode"}) == "• one takeaway"
    assert any("prompt=takeaways@custom" in r.getMessage() for r in caplog.records)


def test_without_the_setting_the_shipped_prompts_are_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PROMPTS_DIR", str(tmp_path / "absent"))  # overridden: Settings says None
    settings = load_settings(
        bot_data_dir=tmp_path / "data", llm_model="openai:gpt-4o-mini", prompts_dir=None
    )
    services = bootstrap(
        settings, embedder=HashEmbedder(), llm=ScriptedChatModel(), slack_client=None
    )
    shipped = packaged_prompts_dir() / "triage.prompt.yaml"
    assert services.adapters.analyzer.prompt.path == shipped  # type: ignore[attr-defined]
