"""``python -m bot backfill`` end to end: a real process reads an export written in Slack's
layout, triages with the embedded analyzer, files through FakeJira with the live bot's claims;
then the live bot (signed requests into Bolt) finds those posts filed (issue 11, part 6)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.jira_server import FakeJira
from tests.fakes.slack_export import ExportBuilder
from tests.fakes.slack_server import FakeSlack
from tests.fakes.wiring import Rig

ROOT = Path(__file__).resolve().parents[2]
DAY = 86400
T0 = 1709287200  # 2024-03-01 10:00 UTC


def _ts(day: int, n: int = 0) -> str:
    return f"{T0 + day * DAY + n}.000100"


def _export(path: Path) -> Path:
    b = (
        ExportBuilder()
        .channel("CIDEAS01", "ideas")
        .channel("CRANDOM1", "random")
        .user("UALICE", "Alice Author", email="alice@example.com")
        .user("UBOB", "Bob Builder")
        .user("UCAROL", "Carol Critic")
        .user("UDAN", "Dan Dev")
    )
    # Three votes: two reactions and a reply (Bob reacted and replied: once).
    b.post(
        "CIDEAS01",
        _ts(0),
        "UALICE",
        "It would be great to add a dark mode to the dashboard for night shifts",
        reactions={"+1": ["UBOB", "UCAROL"]},
        replies=[
            (_ts(0, 60), "UBOB", "Yes please, <!channel> my eyes hurt at night"),
            (_ts(1, 60), "UDAN", "Agree, and it should follow the OS setting"),
        ],
    )
    # Two votes.
    b.post(
        "CIDEAS01",
        _ts(2),
        "UBOB",
        "We should add an export to CSV button on the reports page",
        reactions={"+1": ["UALICE", "UCAROL"], "heart": ["UALICE"]},
    )
    # One vote.
    b.post(
        "CIDEAS01",
        _ts(3),
        "UCAROL",
        "It would be nice to have keyboard shortcuts in the editor",
        reactions={"+1": ["UDAN"]},
    )
    b.message("CIDEAS01", _ts(4), "UDAN", "", subtype="channel_join")
    b.post("CRANDOM1", _ts(1), "UDAN", "Thanks everyone for the great offsite!")
    return b.write(path)


@pytest.fixture
def fakes() -> Any:
    with FakeJira(project="PROJ") as jira:
        slack = FakeSlack()
        slack.start()
        try:
            yield jira, slack
        finally:
            slack.stop()


def run(
    tmp_path: Path, jira: FakeJira, slack: FakeSlack, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "JIRA_", "PINECONE_"))
    }
    env.update(
        BOT_DATA_DIR=str(tmp_path / "data"),
        DATABASE_URL=f"sqlite:///{tmp_path / 'bot.sqlite3'}",
        PYTHONPATH=str(ROOT),
        LLM_MODEL="",
        JIRA_URL=jira.base_url,
        JIRA_PROJECT="PROJ",
        JIRA_API_TOKEN=jira.token,
        JIRA_EMAIL=jira.email,
        JIRA_ISSUE_TYPES="idea=Story,bug=Bug,question=Task,other=Task",
        SLACK_BOT_TOKEN=slack.token,
        SLACK_API_URL=slack.base_url,
    )
    return subprocess.run(
        [sys.executable, "-m", "bot", "backfill", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _report(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_backfill_reports_files_once_and_the_live_bot_agrees(tmp_path: Path, fakes: Any) -> None:
    jira, slack = fakes
    export = _export(tmp_path / "export.zip")

    # The report, a dry run: every top-level post, nothing filed.
    r = run(tmp_path, jira, slack, "--slack-export", str(export), "--output", "report.jsonl",
            "--file-min-votes", "2")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "dry run: add --yes to file" in r.stderr
    lines = _report(tmp_path / "report.jsonl")
    assert len(lines) == 4 and jira.issues == {}
    by_text = {line["title"][:20]: line for line in lines}
    dark = next(line for line in lines if line["ts"] == _ts(0))
    assert dark["votes"] == 3 and dark["replies"] == 2 and dark["channel_name"] == "ideas"
    assert (
        dark["permalink"]
        == f"https://example.slack.com/archives/CIDEAS01/p{_ts(0).replace('.', '')}"
    )
    assert set(dark) >= {"kind", "title", "votes", "similar", "likely_duplicate", "permalink"}
    qualifying = {line["ts"] for line in lines if line["action"] == "would_file"}
    fileable = {
        line["ts"]
        for line in lines
        if line["votes"] >= 2 and line["kind"] in ("idea", "bug", "question")
    }
    assert qualifying == fileable and _ts(0) in qualifying, by_text
    assert {line["action"] for line in lines if line["ts"] not in qualifying} <= {
        "none",
        "below_min_votes",
    }

    # --yes files exactly the qualifying ideas, each once, with its thread.
    r = run(tmp_path, jira, slack, "--slack-export", str(export), "--output", "filed.jsonl",
            "--file-min-votes", "2", "--yes")  # fmt: skip
    assert r.returncode == 0, r.stderr
    filed = {
        line["ts"]: line for line in _report(tmp_path / "filed.jsonl") if line["action"] == "filed"
    }
    assert set(filed) == qualifying and len(jira.issues) == len(qualifying)
    dark_issue = jira.issues[filed[_ts(0)]["key"]]["fields"]
    assert "h3. Thread" in dark_issue["description"] and "Dan Dev" in dark_issue["description"]
    assert "<!channel>" not in dark_issue["description"]
    assert slack.calls_to("chat.postMessage") == []  # old threads are not woken up

    # Running again files nothing.
    r = run(tmp_path, jira, slack, "--slack-export", str(export), "--output", "again.jsonl",
            "--file-min-votes", "2", "--yes")  # fmt: skip
    assert r.returncode == 0, r.stderr
    again = _report(tmp_path / "again.jsonl")
    assert {line["ts"] for line in again if line["action"] == "already"} == qualifying
    assert len(jira.issues) == len(qualifying)

    # The live bot on the same database: a reaction on a backfilled post files nothing new.
    rig = Rig(tmp_path, jira=jira, db_url=f"sqlite:///{tmp_path / 'bot.sqlite3'}")
    try:
        rig.slack.add_message("CIDEAS01", _ts(0), "It would be great to add a dark mode", "UALICE")
        rig.send_event(rig.reaction("CIDEAS01", _ts(0), user="UCAROL"))
        rig.wait_idle()
        assert len(jira.issues) == len(qualifying)
        told = [e["text"] for e in rig.slack.calls_to("chat.postEphemeral")]
        assert any(filed[_ts(0)]["key"] in t and "Already filed" in t for t in told)
    finally:
        rig.close()  # stops the FakeJira too; stopping it again is harmless


def test_channels_and_since_narrow_the_report(tmp_path: Path, fakes: Any) -> None:
    jira, slack = fakes
    export = _export(tmp_path / "export.zip")
    r = run(tmp_path, jira, slack, "--slack-export", str(export), "--channels", "ideas",
            "--since", "2024-03-03")  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [line["ts"] for line in lines] == [_ts(2), _ts(3)]
    assert {line["action"] for line in lines} == {"none"}  # not asked to file


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("not a zip", "not a zip file"),
        ("no channels", "not a Slack workspace export"),
        ("unknown channel", "no channel nope in the export"),
    ],
)
def test_a_bad_export_is_a_clear_error(
    tmp_path: Path, fakes: Any, setup: str, message: str
) -> None:
    jira, slack = fakes
    path = tmp_path / "export.zip"
    args = ["--slack-export", str(path)]
    if setup == "not a zip":
        path.write_text("hello")
    elif setup == "no channels":
        import zipfile

        with zipfile.ZipFile(path, "w") as z:
            z.writestr("users.json", "[]")
    else:
        _export(path)
        args += ["--channels", "nope"]
    r = run(tmp_path, jira, slack, *args)
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr
