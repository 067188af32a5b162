"""Settings as the bot loads them from its environment, for tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Settings, load_settings


def settings_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> Settings:
    """``load_settings()`` with *env* set, run in *tmp_path* so that no stray .env is read."""
    monkeypatch.chdir(tmp_path)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return load_settings()
