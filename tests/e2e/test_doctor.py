"""Credentials never reach the terminal: ``doctor`` and a failing command, as an operator runs them.

The database URL carries its password twice (userinfo and ``?password=``) and points at a port
where nothing listens, so every command fails on connecting.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOWN_DB = "postgresql://u:pw@127.0.0.1:1/db?password=hunter2"


def run(tmp_path: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "JIRA_", "PINECONE_", "DATABASE_", "LLM_"))
    }
    env.update(BOT_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(ROOT), **extra_env)
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_doctor_with_the_database_down_prints_one_failed_line_and_no_password(
    tmp_path: Path,
) -> None:
    r = run(tmp_path, "--log-level", "DEBUG", "doctor", DATABASE_URL=DOWN_DB)
    assert r.returncode == 1, r.stdout + r.stderr
    failed = [line for line in r.stdout.splitlines() if "FAILED" in line]
    assert len(failed) == 1 and failed[0].startswith("state: FAILED (OperationalError")
    assert "127.0.0.1:1" in r.stdout  # the operator still sees where it points
    assert "Traceback" not in r.stdout + r.stderr
    for secret in ("pw", "hunter2"):
        assert secret not in r.stdout and secret not in r.stderr, secret


def test_another_command_failing_on_the_database_logs_no_password(tmp_path: Path) -> None:
    (tmp_path / "tickets.jsonl").write_text('{"key": "A-1", "title": "t"}\n')
    r = run(
        tmp_path, "--log-level", "DEBUG", "index", "--input", "tickets.jsonl", DATABASE_URL=DOWN_DB
    )
    assert r.returncode == 1
    # The traceback still reaches the operator, through the redacting log.
    assert "OperationalError" in r.stderr and "ideabot index failed" in r.stderr
    for secret in ("pw", "hunter2"):
        assert secret not in r.stdout and secret not in r.stderr, secret
