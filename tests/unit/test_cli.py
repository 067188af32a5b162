"""The command line's parser and main loop, without running the engine."""

from __future__ import annotations

import argparse
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import get_args

import pytest

import bot.cli as cli
from bot.cli import batch, build_parser, main
from bot.config import LOG_LEVELS, LogLevel, Settings
from bot.domain.digests import DIGEST_KINDS

ROOT = Path(__file__).resolve().parents[2]


def test_names_copied_to_keep_help_light_match_their_sources() -> None:
    from bot.cli.digest import DIGEST_CHOICES

    assert DIGEST_CHOICES == DIGEST_KINDS
    assert cli.LOG_LEVELS == LOG_LEVELS == get_args(LogLevel)


def test_digest_arguments_are_parsed_by_the_one_parser() -> None:
    args = build_parser().parse_args(
        ["digest", "meetings", "--date", "2026-04-15", "--dry-run", "--json", "--channel", "C1"]
    )
    assert args.which == "meetings" and args.date == date(2026, 4, 15)
    assert args.dry_run and args.json and not args.force and args.channel == "C1"
    assert build_parser().parse_args(["digest", "takeaways"]).date is None


@pytest.mark.parametrize(
    "argv",
    [
        ["digest", "meetings", "--date", "15/04/2026"],
        ["digest", "lunch"],
        ["--log-level", "loud", "doctor"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_log_level_comes_from_the_settings_and_the_flag_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    levels: list[str] = []
    seen: list[Settings] = []

    def fake_similar(args: argparse.Namespace, settings: Settings) -> int:
        seen.append(settings)
        return 0

    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setattr(cli, "configure_logging", lambda level, fmt: levels.append(level))
    monkeypatch.setattr(batch, "similar", fake_similar)
    monkeypatch.setenv("LOG_LEVEL", "warning")
    assert main(["similar", "--input", "-"]) == 0
    assert main(["--log-level", "debug", "similar", "--input", "-"]) == 0
    assert levels == ["WARNING", "DEBUG"]
    # The command gets the settings main loaded; it does not read them again.
    assert seen[0].log_level == "WARNING"


def test_a_bad_log_level_is_one_configuration_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LOG_LEVEL", "chatty")
    assert main(["similar", "--input", "-"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "configuration error: LOG_LEVEL: expected DEBUG, INFO, WARNING or ERROR, got 'chatty'"
    ]


def test_help_needs_no_valid_settings(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)}
    env.update(LOG_LEVEL="chatty", DIGEST_DAYS="someday", WORKDAY="always")
    r = subprocess.run(
        [sys.executable, "-m", "bot", "digest", "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert "--dry-run" in r.stdout


def test_log_level_setting_reaches_the_log(tmp_path: Path) -> None:
    # "prompts loaded" is logged at INFO during start-up; WARNING hides it, --log-level wins.
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)}
    env.update(BOT_DATA_DIR=str(tmp_path / "data"), LOG_LEVEL="WARNING")
    argv = [sys.executable, "-m", "bot", "triage", "--input", "missing.jsonl"]
    quiet = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    argv.insert(3, "--log-level=info")
    loud = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert quiet.returncode == loud.returncode == 1
    assert "prompts loaded" not in quiet.stderr
    assert "prompts loaded" in loud.stderr
