"""The batch CLI as scripts use it: real embedder, local index, SQLite in a temp BOT_DATA_DIR."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.domain.flags import FLAG_KEYS

ROOT = Path(__file__).resolve().parents[2]

TICKETS = [
    {
        "key": "APP-1",
        "title": "Dark mode for the dashboard",
        "description": "A dark theme.",
        "type": "Story",
    },
    {
        "key": "APP-2",
        "title": "App crashes when uploading a photo",
        "description": "Android closes after picking a large image.",
        "type": "Bug",
    },
    {
        "key": "APP-3",
        "title": "How do I rotate API keys?",
        "description": "Runbook question.",
        "type": "Question",
    },
]


def run(
    tmp_path: Path, *args: str, stdin: str = "", **extra_env: str
) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "JIRA_", "PINECONE_"))
    }
    env.update(
        BOT_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(ROOT), LLM_MODEL="", DATABASE_URL=""
    )
    env.update(extra_env)
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=tmp_path,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
    )


def jsonl(rows: list[dict[str, object]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


@pytest.fixture
def indexed(tmp_path: Path) -> Path:
    (tmp_path / "tickets.jsonl").write_text(jsonl(TICKETS))
    r = run(tmp_path, "index", "--input", "tickets.jsonl")
    assert r.returncode == 0, r.stderr
    assert "index holds 3" in r.stderr
    return tmp_path


def test_index_is_idempotent_and_replaces_changed_tickets(indexed: Path) -> None:
    changed = [*TICKETS[:2], {**TICKETS[2], "title": "Rotating staging API keys without downtime"}]
    (indexed / "t2.jsonl").write_text(jsonl(changed))
    r = run(indexed, "index", "--input", "t2.jsonl")
    assert r.returncode == 0, r.stderr
    assert "(1 new or changed" in r.stderr and "index holds 3" in r.stderr
    r = run(indexed, "similar", "--input", "-", stdin=jsonl([{"id": "q", "text": "rotate keys"}]))
    out = json.loads(r.stdout)
    assert out["matches"][0]["key"] == "APP-3"


def test_triage_output_contract_and_errors(indexed: Path) -> None:
    posts = (
        jsonl([{"id": "a", "text": "The Android app crashes when I upload a big photo"}])
        + "{not json\n"
        + jsonl([{"id": "b"}, {"id": "c", "text": "thanks all, have a nice weekend!"}])
    )
    (indexed / "posts.jsonl").write_text(posts)
    r = run(indexed, "triage", "--input", "posts.jsonl", "--output", "out.jsonl")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in (indexed / "out.jsonl").read_text().splitlines()]
    assert len(lines) == 4
    a, bad, b, c = lines
    assert set(a) >= {
        "id",
        "kind",
        "confidence",
        "title",
        "summary",
        "labels",
        "duplicates",
        "analyzer",
    }
    assert a["id"] == "a" and a["kind"] == "bug" and a["analyzer"] == "offline"
    assert 0 <= a["confidence"] <= 1 and len(a["title"]) <= 120 and "\n" not in a["title"]
    assert a["duplicates"][0]["key"] == "APP-2"
    assert set(a["duplicates"][0]) == {"key", "title", "score", "url"}
    assert "error" in bad and "error" in b and b["id"] == "b"
    assert c["id"] == "c" and c["kind"] == "other"
    # One post per batch (the error lines make empty batches): the same lines, in order.
    r = run(indexed, "triage", "--input", "posts.jsonl", "--batch", "1")
    assert r.returncode == 0, r.stderr
    again = [json.loads(x) for x in r.stdout.splitlines()]
    # (a model run's padding may move a confidence in its last digits)
    assert [{**x, "confidence": None} for x in again] == [{**x, "confidence": None} for x in lines]
    assert [x.get("confidence") for x in again] == pytest.approx(
        [x.get("confidence") for x in lines], abs=1e-4
    )


def test_similar_sorted_and_top_k(indexed: Path) -> None:
    q = jsonl(
        [{"id": "q1", "text": "dark theme please"}, {"id": "q2", "text": "photo upload crash"}]
    )
    r = run(indexed, "similar", "--input", "-", "--top-k", "2", stdin=q)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["id"] for x in rows] == ["q1", "q2"]
    for row in rows:
        scores = [m["score"] for m in row["matches"]]
        assert len(scores) == 2 and scores == sorted(scores, reverse=True)
    assert rows[0]["matches"][0]["key"] == "APP-1"
    assert rows[1]["matches"][0]["key"] == "APP-2"


def test_unreadable_input_exits_non_zero(tmp_path: Path) -> None:
    r = run(tmp_path, "triage", "--input", "missing.jsonl")
    assert r.returncode == 1 and "cannot read missing.jsonl" in r.stderr
    r = run(tmp_path, "triage", "--input", "-", stdin="")
    assert r.returncode == 1


def test_demo_runs_on_embedded_defaults(tmp_path: Path) -> None:
    r = run(tmp_path, "demo")
    assert r.returncode == 0, r.stderr
    assert "ideabot demo: 12 Slack-style posts against 20 existing tickets" in r.stdout
    rows = [ln for ln in r.stdout.splitlines() if ln[:1] == "p" and ln[1:2].isdigit()]
    assert len(rows) == 12
    kinds = {ln.split()[0]: ln.split()[1] for ln in rows}
    assert kinds["p2"] == "bug" and kinds["p4"] == "other" and kinds["p1"] == "idea"


def test_serve_without_token_says_which_setting(tmp_path: Path) -> None:
    r = run(tmp_path, "serve")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == (
        "configuration error: SLACK_BOT_TOKEN: required to serve (the bot token, xoxb-...)"
    )


def test_serve_with_a_refused_token_exits_cleanly(tmp_path: Path) -> None:
    from tests.fakes.slack_server import FakeSlack

    slack = FakeSlack(token="xoxb-the-right-one")
    base = slack.start()
    try:
        r = subprocess.run(
            [sys.executable, "-m", "bot", "serve", "--http", "--port", "0"],
            cwd=tmp_path,
            env={
                "PATH": os.environ["PATH"],
                "PYTHONPATH": str(ROOT),
                "BOT_DATA_DIR": str(tmp_path / "data"),
                "SLACK_BOT_TOKEN": "xoxb-wrong-secret-token",
                "SLACK_SIGNING_SECRET": "signing-secret-value",
                "SLACK_API_URL": base,
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        slack.stop()
    assert r.returncode == 1
    assert "Slack refused SLACK_BOT_TOKEN at start-up (invalid_auth)" in r.stderr
    assert "Traceback" not in r.stderr
    assert "xoxb-wrong-secret-token" not in r.stderr and "signing-secret-value" not in r.stderr


def test_index_skips_bad_lines_and_fails_only_when_nothing_is_usable(tmp_path: Path) -> None:
    (tmp_path / "mixed.jsonl").write_text('{"key": "A-1"}\nnot json\n' + jsonl(TICKETS[:1]))
    r = run(tmp_path, "index", "--input", "mixed.jsonl")
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("skipped: line") == 2 and "index holds 1" in r.stderr
    (tmp_path / "bad.jsonl").write_text('{"key": ""}\n')
    r = run(tmp_path, "index", "--input", "bad.jsonl")
    assert r.returncode == 1 and "error: no valid ticket lines" in r.stderr


def test_pinecone_settings_route_index_and_similar_through_the_sdk(tmp_path: Path) -> None:
    from tests.fakes.pinecone_server import FakePinecone

    fake = FakePinecone(api_key="pc-secret-key").start()
    try:
        env = {"PINECONE_API_KEY": "pc-secret-key", "PINECONE_HOST": fake.url}
        (tmp_path / "tickets.jsonl").write_text(jsonl(TICKETS))
        r = run(tmp_path, "index", "--input", "tickets.jsonl", **env)
        assert r.returncode == 0, r.stderr
        q = jsonl([{"id": "q", "text": "photo upload crash on android"}])
        s = run(tmp_path, "similar", "--input", "-", stdin=q, **env)
        assert s.returncode == 0, s.stderr
        assert json.loads(s.stdout)["matches"][0]["key"] == "APP-2"
        # The real SDK wrote into the "default" namespace (no JIRA_PROJECT) and read back.
        assert len(fake.namespaces["default"]) == 2 * len(TICKETS)  # body + title records
        assert any(rec.path.endswith("/query") for rec in fake.requests)
        assert "pc-secret-key" not in r.stderr + s.stderr
        assert not (tmp_path / "data" / "index").exists()  # the local index was not used
    finally:
        fake.stop()


def test_doctor_reports_each_part_without_keys(tmp_path: Path) -> None:
    r = run(tmp_path, "doctor")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("state: ") and "ideabot.sqlite3" in lines[0]
    assert "index: LocalIndex with 0 tickets" in lines
    assert "analyzer: offline" in lines
    assert "jira: not configured" in lines and "slack: not configured" in lines


def test_doctor_names_a_jira_that_refuses_the_token(tmp_path: Path) -> None:
    from tests.fakes.jira_server import FakeJira

    with FakeJira(project="PROJ") as jira:
        r = run(
            tmp_path,
            "doctor",
            JIRA_URL=jira.base_url,
            JIRA_API_TOKEN="wrong-jira-token",
            JIRA_PROJECT="PROJ",
        )
    assert r.returncode == 1
    assert "jira: FAILED" in r.stdout and "401" in r.stdout
    assert "wrong-jira-token" not in r.stdout + r.stderr


def test_doctor_shows_each_feature_flag(tmp_path: Path) -> None:
    r = run(tmp_path, "doctor", FEATURE_FLAGS_FILE=str(ROOT / "flags.example.json"))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert any(line.startswith("flags: flag file ") for line in lines)
    assert "flag llm-analysis: on (static)" in lines
    assert "flag takeaway-digest: off (static)" in lines
    assert "flag filing: off (targeted by channel/user; shown without either)" in lines
    assert "flag thread-comments: off (targeted by channel/user; shown without either)" in lines
    assert sum(line.startswith("flag ") for line in lines) == len(FLAG_KEYS)
    plain = run(tmp_path, "doctor")
    assert "flag filing: on (default)" in plain.stdout.splitlines()


def test_a_bad_flag_file_is_one_line_at_start_up(tmp_path: Path) -> None:
    bad = tmp_path / "flags.json"
    bad.write_text(
        '{"flags": {"filing": {"state": "ENABLED", "variants": {"on": true}, '
        '"defaultVariant": "on", "targeting": {"<": [1, 2]}}}}'
    )
    r = run(
        tmp_path, "digest", "takeaways", "--dry-run", "--channel", "C1", FEATURE_FLAGS_FILE=str(bad)
    )
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1:] == [
        f"configuration error: FEATURE_FLAGS_FILE: {bad}: flag 'filing': targeting operator "
        "'<' is not supported here (supported: var == != === !== in and or ! !! if ?: cat "
        "starts_with ends_with fractional)"
    ]
