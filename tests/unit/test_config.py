"""Settings: defaults, parsing and one clear line per bad variable."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from hypothesis import given
from hypothesis import strategies as st

from bot.config import WEEKDAYS, ConfigError, Settings, Workday
from tests.fakes.settings import settings_from_env

ROOT = Path(__file__).resolve().parents[2]


_load = settings_from_env


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
        ({"TAKEAWAY_DIGEST_AT": "24:00"}, "TAKEAWAY_DIGEST_AT"),
        ({"WORKDAY": "nine to five"}, "WORKDAY"),
        ({"JIRA_ISSUE_TYPES": "ideas=Story"}, "JIRA_ISSUE_TYPES"),
        ({"JIRA_TYPE_KINDS": "Spike=feature"}, "JIRA_TYPE_KINDS"),
        ({"JIRA_TYPE_KINDS": "Spike"}, "JIRA_TYPE_KINDS"),
        ({"LOG_LEVEL": "verbose"}, "LOG_LEVEL"),
        ({"DIGEST_DAYS": "weekdays"}, "DIGEST_DAYS"),
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


def test_values_are_parsed_once_into_types(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    s = _load(
        monkeypatch,
        tmp_path,
        MEETING_DIGEST_AT="7:05",
        TAKEAWAY_DIGEST_AT="18:00",
        WORKDAY="08:00-16:30",
        DIGEST_DAYS=" Mon - Thu , SAT ",
        DIGEST_TIMEZONE="Europe/Berlin",
        JIRA_ISSUE_TYPES="Idea=New Feature, question=Support",
        JIRA_TYPE_KINDS="Spike=IDEA,Incident=bug",
        LOG_LEVEL="warning",
    )
    assert s.meeting_digest_at == time(7, 5) and s.takeaway_digest_at == time(18)
    assert s.workday == Workday(time(8), time(16, 30)) and s.workday.end == time(16, 30)
    assert s.digest_days == "mon-thu,sat"
    assert s.digest_zone == ZoneInfo("Europe/Berlin")
    assert s.jira_issue_types == {"idea": "New Feature", "question": "Support"}
    assert s.issue_types == {
        "idea": "New Feature",
        "bug": "Bug",
        "question": "Support",
        "other": "Task",
    }
    assert s.jira_type_kinds == {"spike": "idea", "incident": "bug"}
    assert s.type_kinds["spike"] == "idea" and s.type_kinds["story"] == "idea"
    assert s.log_level == "WARNING"


def test_python_values_are_accepted_as_well_as_strings() -> None:
    s = Settings(
        _env_file=None,  # type: ignore[call-arg]
        meeting_digest_at=time(9, 15),
        workday=(time(10), time(18)),
        jira_issue_types={"Bug": "Defect"},
    )
    assert s.meeting_digest_at == time(9, 15)
    assert s.workday == Workday(time(10), time(18))
    assert s.issue_types["bug"] == "Defect"


@pytest.mark.parametrize(
    ("raw", "hint"),
    [
        ("1-5", "expected day names"),
        ("mon-fri/2", "expected day names"),
        ("mon,,fri", "expected day names"),
        ("mon-", "expected day names"),
        ("monday", "expected day names"),
        ("mon-tue-wed", "expected day names"),
        ("fri-mon", "runs backwards"),
        (",", "expected day names"),
    ],
)
def test_digest_days_garbage_is_refused_clearly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, raw: str, hint: str
) -> None:
    with pytest.raises(ConfigError) as err:
        _load(monkeypatch, tmp_path, DIGEST_DAYS=raw)
    assert str(err.value).startswith("DIGEST_DAYS: ") and hint in str(err.value)
    assert "\n" not in str(err.value)


_DAY = st.sampled_from(WEEKDAYS)
_RANGE = st.tuples(_DAY, _DAY).map(lambda p: "-".join(sorted(p, key=WEEKDAYS.index)))
_DAYS = st.lists(st.one_of(_DAY, _RANGE), min_size=1, max_size=4).map(",".join)


@given(_DAYS, st.sampled_from([str.lower, str.upper, str.title]))
def test_every_accepted_digest_days_value_is_one_apscheduler_takes(
    days: str, case: Callable[[str], str]
) -> None:
    # Validation at load must never let through a value the scheduler would reject later.
    s = Settings(_env_file=None, digest_days=case(days))  # type: ignore[call-arg]
    assert s.digest_days == days
    CronTrigger(day_of_week=s.digest_days, hour=8, timezone="UTC")


def test_env_example_values_are_valid(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    s = Settings(_env_file=ROOT / ".env.example")  # type: ignore[call-arg]
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.workday == defaults.workday and s.digest_days == defaults.digest_days
    assert s.issue_types == defaults.issue_types  # the example spells out the defaults
