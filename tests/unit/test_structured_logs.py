"""Log context (contextvars, handed to threads explicitly) and the text/JSON formatters."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from bot.config import redact_text as redact_secrets
from bot.observability.context import FIELDS, carry, current_context, log_context
from bot.observability.logs import JsonFormatter, TextFormatter, make_handler

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, io.StringIO, io.StringIO]]:
    """A private logger writing JSON to one stream and text to another."""
    log = logging.getLogger("tests.structured")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    json_out, text_out = io.StringIO(), io.StringIO()
    handlers = [make_handler("json", json_out), make_handler("text", text_out)]
    for h in handlers:
        log.addHandler(h)
    yield log, json_out, text_out
    for h in handlers:
        log.removeHandler(h)
    log.propagate = True


def _json_lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_context_nests_restores_and_rejects_unknown_fields() -> None:
    assert current_context() == {}
    with log_context(trace_id="t1", channel="C1"):
        with log_context(ts="1.2", channel="C2", jira_key=None) as ctx:
            assert ctx == {"trace_id": "t1", "channel": "C2", "ts": "1.2"}
            assert current_context() == ctx
        assert current_context() == {"trace_id": "t1", "channel": "C1"}
    assert current_context() == {}
    with pytest.raises(TypeError, match="user"), log_context(user="U1"):  # type: ignore[arg-type]
        pass
    with log_context(outbox_item=42):
        assert current_context() == {"outbox_item": "42"}


def test_a_new_thread_starts_empty_and_carry_hands_the_context_over() -> None:
    seen: dict[str, dict[str, str]] = {}

    def work(name: str) -> None:
        seen[name] = current_context()

    with log_context(trace_id="abc", event_id="Ev1"):
        plain = threading.Thread(target=work, args=("plain",))
        plain.start()
        plain.join()
        carried = threading.Thread(target=carry(work), args=("carried",))
        carried.start()
        carried.join()
        with ThreadPoolExecutor(1) as pool:
            pool.submit(carry(work), "pool").result()
    assert seen["plain"] == {}
    assert seen["carried"] == {"trace_id": "abc", "event_id": "Ev1"}
    assert seen["pool"] == {"trace_id": "abc", "event_id": "Ev1"}


def test_concurrent_threads_never_see_each_others_context(
    capture: tuple[logging.Logger, io.StringIO, io.StringIO],
) -> None:
    log, json_out, _ = capture
    barrier = threading.Barrier(8)

    def work(i: int) -> None:
        with log_context(trace_id=f"trace{i}", channel=f"C{i}"):
            barrier.wait(5)  # every thread is inside its context at once
            log.info("working on %d", i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    lines = _json_lines(json_out)
    assert len(lines) == 8
    for line in lines:
        i = line["message"].rsplit(" ", 1)[1]
        assert line["trace_id"] == f"trace{i}" and line["channel"] == f"C{i}"


def test_json_lines_carry_time_level_logger_message_and_context(
    capture: tuple[logging.Logger, io.StringIO, io.StringIO],
) -> None:
    log, json_out, text_out = capture
    log.info("no context yet")
    with (
        log_context(event_id="Ev1", trace_id="0af7651916cd43dd8448eb211c80319c", channel="C1"),
        log_context(ts="1700000000.000100", outbox_item=7),
    ):
        log.warning("filed %s", "IDEA-1", extra={"jira_key": "IDEA-1"})
    first, second = _json_lines(json_out)
    assert set(first) == {"time", "level", "logger", "message"}
    assert first["level"] == "INFO" and first["logger"] == "tests.structured"
    assert first["time"].endswith("Z") and "T" in first["time"]
    assert second == {
        "time": second["time"],
        "level": "WARNING",
        "logger": "tests.structured",
        "message": "filed IDEA-1",
        "event_id": "Ev1",
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
        "channel": "C1",
        "ts": "1700000000.000100",
        "outbox_item": "7",
        "jira_key": "IDEA-1",
    }
    text = text_out.getvalue().splitlines()
    assert text[0].endswith("INFO tests.structured: no context yet")
    assert text[1].endswith(
        "WARNING tests.structured: filed IDEA-1 [event_id=Ev1 "
        "trace_id=0af7651916cd43dd8448eb211c80319c channel=C1 ts=1700000000.000100 "
        "outbox_item=7 jira_key=IDEA-1]"
    )
    assert set(FIELDS) <= set(second)


SECRETS = {
    "url password": ("postgresql://bot:hunter2pw@db:5432/ideabot", "hunter2pw"),
    "query token": ("https://cal.example.com/feed.ics?token=s3cr3tfeed", "s3cr3tfeed"),
    "slack bot token": ("token xoxb-1234567890-abcdefghijkl", "xoxb-1234567890-abcdefghijkl"),
    "slack app token": ("xapp-1-A0123-456-abcdef0123", "xapp-1-A0123-456-abcdef0123"),
    "pinecone key": ("key=pcsk_AUDIT_pinecone_secret_42", "pcsk_AUDIT_pinecone_secret_42"),
    "bearer header": ("Authorization: Bearer eyJhbGciOi.abc.def", "eyJhbGciOi.abc.def"),
    "basic header": ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
}


def test_both_formats_redact_secrets_in_messages_arguments_and_tracebacks(
    capture: tuple[logging.Logger, io.StringIO, io.StringIO],
) -> None:
    log, json_out, text_out = capture
    for what, (text, secret) in SECRETS.items():
        log.info("%s: %s", what, text)
        try:
            raise ConnectionError(f"cannot reach {text}")
        except ConnectionError:
            log.exception("failed")
        assert secret not in redact_secrets(text), what
    out = json_out.getvalue() + text_out.getvalue()
    for what, (_, secret) in SECRETS.items():
        assert secret not in out, f"{what} leaked"
    lines = _json_lines(json_out)
    assert any("exception" in line and "ConnectionError" in line["exception"] for line in lines)
    assert "postgresql://bot:***@db:5432/ideabot" in out  # what is left is still useful


def test_a_record_with_broken_arguments_is_still_written() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%d items", ("many",), None)
    line = json.loads(JsonFormatter().format(record))
    assert "unformattable" in line["message"]
    assert "unformattable" in TextFormatter().format(record)


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )


def test_configure_logging_writes_json_to_stderr() -> None:
    r = _run(
        "import logging\n"
        "from bot.cli import configure_logging\n"
        "from bot.observability.context import log_context\n"
        "configure_logging('INFO', 'json')\n"
        "with log_context(trace_id='t-1'):\n"
        "    logging.getLogger('bot.x').info('db at %s', 'postgresql://u:pw1234@h/db')\n"
        "logging.getLogger('bot.x').debug('not shown')\n"
    )
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stderr.splitlines()]
    assert lines == [
        {
            "time": lines[0]["time"],
            "level": "INFO",
            "logger": "bot.x",
            "message": "db at postgresql://u:***@h/db",
            "trace_id": "t-1",
        }
    ]


def test_log_format_setting_reaches_the_command_line(tmp_path: Path) -> None:
    # A real command (doctor, offline) with LOG_FORMAT=json: every stderr line is a JSON record.
    r = subprocess.run(
        [sys.executable, "-m", "bot", "doctor"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LOG_FORMAT": "json", "PYTHONPATH": str(ROOT)},
    )
    assert r.returncode == 0, r.stderr
    records = [json.loads(line) for line in r.stderr.splitlines()]
    assert records and all({"time", "level", "logger", "message"} <= set(x) for x in records)
    assert "state:" in r.stdout  # the command's own output is unchanged
