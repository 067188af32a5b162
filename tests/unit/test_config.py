"""Settings: defaults, parsing and one clear line per bad variable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings

ROOT = Path(__file__).resolve().parents[2]


def _load(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)  # no stray .env
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return load_settings()


def test_defaults_need_no_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    s = _load(monkeypatch, tmp_path)
    assert s.sqlalchemy_url.startswith("sqlite:///") and s.sqlalchemy_url.endswith(
        "ideabot.sqlite3"
    )
    assert not s.jira_configured and not s.pinecone_configured and s.llm_model is None
    assert s.file_emoji == "ticket"
    assert s.issue_types["idea"] == "Story"


def test_lists_maps_and_urls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    s = _load(
        monkeypatch,
        tmp_path,
        IDEA_CHANNELS="C1, #ideas ,",
        JIRA_ISSUE_TYPES="idea=New Feature,bug=Bug",
        DATABASE_URL="postgres://u:p@h:5432/db",
        FILE_EMOJI=":memo:",
        JIRA_TYPE_KINDS="Spike=idea",
    )
    assert s.idea_channels == ["C1", "#ideas"]
    assert s.issue_types["idea"] == "New Feature"
    assert s.sqlalchemy_url == "postgresql+psycopg://u:p@h:5432/db"
    assert s.file_emoji == "memo"
    assert s.type_kinds["spike"] == "idea" and s.type_kinds["bug"] == "bug"


def test_empty_values_mean_unset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("PINECONE_API_KEY=\nLLM_MODEL=\nJIRA_URL=\n")
    s = _load(monkeypatch, tmp_path)
    assert not s.pinecone_configured and s.llm_model is None and not s.jira_configured


@pytest.mark.parametrize(
    ("env", "var"),
    [
        ({"LLM_MODEL": "gpt-4o"}, "LLM_MODEL"),
        ({"DIGEST_TIMEZONE": "Mars/Olympus"}, "DIGEST_TIMEZONE"),
        ({"MEETING_DIGEST_AT": "8.30"}, "MEETING_DIGEST_AT"),
        ({"WORKDAY": "17:00-09:00"}, "WORKDAY"),
        ({"JIRA_ISSUE_TYPES": "idea"}, "JIRA_ISSUE_TYPES"),
        ({"JIRA_URL": "https://x.atlassian.net"}, "JIRA_API_TOKEN"),
        ({"PINECONE_API_KEY": "pk-secret"}, "PINECONE_INDEX"),
        ({"LLM_TIMEOUT": "soon"}, "LLM_TIMEOUT"),
        ({"FILE_EMOJI": "no spaces please"}, "FILE_EMOJI"),
    ],
)
def test_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str], var: str
) -> None:
    with pytest.raises(ConfigError) as err:
        _load(monkeypatch, tmp_path, **env)
    msg = str(err.value)
    assert msg.startswith(var + ":"), msg
    assert "\n" not in msg
    assert "pk-secret" not in msg


def test_cli_reports_bad_config_in_one_line(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "DIGEST_TIMEZONE": "Nowhere/City", "HOME": str(tmp_path)}
    r = subprocess.run(
        [sys.executable, "-m", "bot", "similar", "--input", "-"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        input="",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "configuration error: DIGEST_TIMEZONE: unknown time zone 'Nowhere/City'"
    ]


def test_every_setting_is_documented_in_env_example() -> None:
    import re

    from bot.config import Settings

    documented = set(re.findall(r"^([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert {f.upper() for f in Settings.model_fields} == documented


def test_broken_prompt_dir_fails_start_up_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from bot.bootstrap import check_prompts

    (tmp_path / "triage.prompt.yaml").write_text("name: triage\nversion: 1\nmessages: []\n")
    s = _load(monkeypatch, tmp_path, PROMPTS_DIR=str(tmp_path))
    monkeypatch.delenv("PROMPTS_DIR", raising=False)
    with pytest.raises(ConfigError) as err:
        check_prompts(s)
    assert str(err.value).startswith("PROMPTS_DIR:")
