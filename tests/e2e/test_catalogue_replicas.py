"""Replicas on one database: real ``python -m bot`` processes, the real embedder and index.

Two writers at once into one database and one shared BOT_DATA_DIR (the Procfile's ``sync`` job
beside ``serve`` did this to the on-disk index and lost tickets); then readers with a fresh, an
empty and a deleted BOT_DATA_DIR. On SQLite (a file outside the data dir) and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PER_WRITER = 150


def env_for(data_dir: Path, database_url: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "JIRA_", "PINECONE_"))
    }
    env.update(
        BOT_DATA_DIR=str(data_dir),
        DATABASE_URL=database_url,
        PYTHONPATH=str(ROOT),
        LLM_MODEL="",
    )
    return env


def start(cwd: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], stdin: str = "") -> str:
    out, err = proc.communicate(stdin, timeout=300)
    assert proc.returncode == 0, err
    return out


def similar_keys(cwd: Path, env: dict[str, str]) -> set[str]:
    """What a reader process finds for a query matching every ticket (top 1000)."""
    query = json.dumps({"id": "q", "text": "ticket about the export"}) + "\n"
    out = finish(start(cwd, env, "similar", "--input", "-", "--top-k", "1000"), query)
    return {m["key"] for m in json.loads(out)["matches"]}


def test_two_writer_processes_then_readers_with_any_disk(tmp_path: Path, store_url: str) -> None:
    shared = tmp_path / "shared-data"
    env = env_for(shared, store_url)
    for writer in ("A", "B"):
        lines = [
            json.dumps({"key": f"{writer}-{i}", "title": f"Ticket {writer}{i} about the export"})
            for i in range(PER_WRITER)
        ]
        (tmp_path / f"{writer}.jsonl").write_text("\n".join(lines) + "\n")
    # --batch 1: every ticket is its own upsert, as a filed issue or a small sync page is.
    writers = [
        start(tmp_path, env, "index", "--input", f"{w}.jsonl", "--batch", "1") for w in ("A", "B")
    ]
    for w in writers:
        finish(w)
    expected = {f"{w}-{i}" for w in ("A", "B") for i in range(PER_WRITER)}

    assert similar_keys(tmp_path, env) == expected  # a fresh reader on the shared data dir
    assert not shared.exists() or list(shared.iterdir()) == []  # nothing written there
    empty = env_for(tmp_path / "empty-disk", store_url)
    assert similar_keys(tmp_path, empty) == expected  # a replica with an empty disk
    shutil.rmtree(shared, ignore_errors=True)
    assert similar_keys(tmp_path, env) == expected  # deleting the data dir loses nothing
