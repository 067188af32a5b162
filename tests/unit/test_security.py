"""Hostile-input review: private data files, credentials never printed, LLM text never pings.

File modes are checked with the process umask at 022 (the usual default, which makes files
0644): what the bot writes under BOT_DATA_DIR must still be its owner's only.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bot.adapters.files import open_private, private_dir, private_file, write_private
from bot.adapters.store_sql import SqlStore
from bot.bootstrap import bootstrap
from bot.config import load_settings, redact_text
from bot.domain.ports import Meeting, StoredPost
from bot.observability.logs import TextFormatter
from bot.slack.mrkdwn import has_broadcast
from tests.fakes.chat import RecordingChat
from tests.fakes.chat_model import ScriptedChatModel
from tests.fakes.digest_store import FixedCalendar
from tests.fakes.embedder import HashEmbedder
from tests.fakes.memory_store import MemoryStore


@pytest.fixture
def umask022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def modes_under(root: Path) -> dict[str, int]:
    """Relative path -> permission bits, for *root* and everything under it."""
    out = {".": mode(root)}
    for p in root.rglob("*"):
        out[str(p.relative_to(root))] = mode(p)
    return out


# ---------------------------------------------------------------- private files


def test_helpers_make_private_files_and_dirs_whatever_the_umask(
    tmp_path: Path, umask022: None
) -> None:
    d = private_dir(tmp_path / "a" / "b")
    assert mode(tmp_path / "a") == mode(d) == 0o700
    write_private(d / "t.txt", "text")
    write_private(d / "b.bin", b"\x00")
    with open_private(d / "o.jsonl", "w") as f:
        f.write("{}\n")
    private_file(d / "db")
    assert {n: mode(d / n) for n in ("t.txt", "b.bin", "o.jsonl", "db")} == dict.fromkeys(
        ("t.txt", "b.bin", "o.jsonl", "db"), 0o600
    )
    assert (d / "t.txt").read_text(encoding="utf-8") == "text"
    # An existing file is tightened, and private_file never truncates.
    loose = d / "loose"
    loose.write_text("keep")
    loose.chmod(0o644)
    private_file(loose)
    assert mode(loose) == 0o600 and loose.read_text() == "keep"
    with pytest.raises(ValueError):
        open_private(d / "x", "r")


def test_an_existing_parent_is_left_alone_but_the_database_is_private(
    tmp_path: Path, umask022: None
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    store = SqlStore(f"sqlite:///{shared / 'nested' / 'bot.sqlite3'}")
    try:
        store.set_value("k", "v")  # a write: the -wal and -shm files exist now
        assert mode(shared) == 0o755  # like /tmp: not ours to change
        assert modes_under(shared / "nested") == {
            ".": 0o700,
            "bot.sqlite3": 0o600,
            "bot.sqlite3-wal": 0o600,
            "bot.sqlite3-shm": 0o600,
        }
    finally:
        store.close()


def _bootstrap(data: Path) -> Any:
    settings = load_settings(_env_file=None, bot_data_dir=data, database_url=None)
    return bootstrap(settings, embedder=HashEmbedder(), llm=None, tracker=None, slack_client=None)


def test_a_new_data_dir_and_everything_the_store_writes_are_private(
    tmp_path: Path, umask022: None
) -> None:
    data = tmp_path / "data"
    bot = _bootstrap(data)
    try:
        bot.adapters.store.save_post(
            StoredPost("GPRIVATE", "1.0", "U1", "private-channel text", datetime.now(UTC))
        )
        found = modes_under(data)
        assert found["."] == 0o700
        assert {n for n in found if n.startswith("ideabot.sqlite3")} == {
            "ideabot.sqlite3",
            "ideabot.sqlite3-wal",
            "ideabot.sqlite3-shm",
        }
        assert not {n: m for n, m in found.items() if m & 0o077}, found
    finally:
        bot.adapters.store.close()


def test_an_old_data_dir_is_tightened_on_start_with_one_log_line(
    tmp_path: Path, umask022: None, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    _bootstrap(data).adapters.store.close()
    # As an older bot left it: everything readable by everyone.
    index = data / "index" / "default"
    index.mkdir(parents=True, exist_ok=True)
    (index / "meta.json").write_text("{}")
    (data / "pinecone").mkdir()
    (data / "pinecone" / "default.json").write_text("{}")
    for p in [data, *data.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    caplog.set_level(logging.INFO)
    bot = _bootstrap(data)
    try:
        assert bot.adapters.store.get_value("schema_version")  # the old database still works
        found = modes_under(data)
        assert not {n: m for n, m in found.items() if m & 0o077}, found
        warned = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warned) == 1 and "BOT_DATA_DIR" in warned[0].getMessage()
    finally:
        bot.adapters.store.close()
    caplog.clear()
    _bootstrap(data).adapters.store.close()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # once, not per start


def test_a_data_dir_we_cannot_tighten_still_starts(
    tmp_path: Path,
    umask022: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)

    def refuse(path: Any, mode: int, **kw: Any) -> None:
        raise PermissionError(1, "Operation not permitted")

    # Another user's directory (shared on purpose): chmod is refused, start-up goes on.
    monkeypatch.setattr(os, "chmod", refuse)
    caplog.set_level(logging.WARNING)
    bot = _bootstrap(data)
    try:
        bot.adapters.store.set_value("k", "v")
        assert any("could not make private" in r.getMessage() for r in caplog.records)
    finally:
        bot.adapters.store.close()


# ---------------------------------------------------------------- redaction

_USER = st.text("abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=12)
_HOST = st.sampled_from(["db.internal", "127.0.0.1", "pg-1.example.com", "localhost"])
# Userinfo characters (RFC 3986 sub-delims, ':' and percent escapes) plus '/', '?' and '#',
# which SQLAlchemy takes unquoted; upper-case so no other part of the text contains them.
_PASSWORD = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ!$'()+,;=:%/?#~", min_size=3, max_size=24)
# A query value runs to "&" or whitespace (SQLAlchemy keeps ";" and "#" in it).
_QUERY_SECRET = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ!$'()+,;=:%/?#~@", min_size=3, max_size=24)
_PARAM = st.sampled_from(
    ["password", "PASSWORD", "sslpassword", "passwd", "pwd", "token", "access_token", "api_key"]
)
_SCHEME = st.sampled_from(
    ["postgresql", "postgresql+psycopg", "postgres", "mysql", "https", "redis", "amqp"]
)
_AROUND = st.sampled_from(
    [
        ("", ""),
        ("state: ", ""),
        ("(psycopg.OperationalError) cannot connect to ", ": refused"),
        ("url='", "'"),
        ('{"url": "', '"}'),
        ("<", ">"),
        ("DATABASE_URL=", "\nnext line"),
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    _SCHEME,
    _USER,
    _PASSWORD,
    _HOST,
    st.integers(1, 65535),
    _PARAM,
    _QUERY_SECRET,
    st.booleans(),
    _AROUND,
)
def test_redact_text_removes_userinfo_and_query_credentials(
    scheme: str,
    user: str,
    password: str,
    host: str,
    port: int,
    param: str,
    secret: str,
    secret_first: bool,
    around: tuple[str, str],
) -> None:
    params = [f"{param}={secret}", "sslmode=require"]
    if not secret_first:
        params.reverse()
    # "not in" below only means "redacted" when a secret is no part of the text that stays
    # (a generated "URL" is in "DATABASE_URL=", "PASS" in "PASSWORD=", "://" in every URL).
    masked = "&".join(p if p == "sslmode=require" else f"{param}=***" for p in params)
    kept = f"{around[0]}{scheme}://{user}:***@{host}:{port}/db?{masked}{around[1]}"
    assume(secret not in kept and password not in kept)
    url = f"{scheme}://{user}:{password}@{host}:{port}/db?{'&'.join(params)}"
    text = f"{around[0]}{url}{around[1]}"
    out = redact_text(text)
    assert password not in out and secret not in out
    # Only the secrets go: the operator still sees where it points.
    assert f"@{host}:{port}/db?" in out and "sslmode=require" in out
    assert redact_text(out) == out  # idempotent: redacting twice changes nothing more


# Bearer token characters not found in _USER, so "not in" means "redacted".
_TOKEN68 = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ~+/", min_size=8, max_size=40)


@given(_PASSWORD, _USER, _TOKEN68)
def test_redact_text_removes_dsn_passwords_slack_tokens_and_auth_headers(
    password: str, user: str, bearer: str
) -> None:
    slack = "xoxb-1234-5678-" + "".join(c for c in bearer if c.isalnum())
    text = (
        f"host=db user={user} password='{password}' dbname=x; bot token {slack};"
        f" headers {{'Authorization': 'Bearer {bearer}'}}"
    )
    out = redact_text(text)
    assert password not in out and bearer not in out and slack not in out
    assert f"user={user}" in out and "host=db" in out


def test_log_lines_and_tracebacks_are_redacted() -> None:
    formatter = TextFormatter()
    try:
        raise RuntimeError("cannot connect to postgresql://u:pw-hunter2@db/x?password=hunter3")
    except RuntimeError:
        record = logging.LogRecord(
            "bot", logging.ERROR, __file__, 1, "url %s", ("https://a:hunter4@h",), None
        )
        import sys

        record.exc_info = sys.exc_info()
    line = formatter.format(record)
    assert "Traceback" in line and "RuntimeError" in line
    assert not any(s in line for s in ("pw-hunter2", "hunter3", "hunter4"))


# ---------------------------------------------------------------- SQLAlchemy errors


def test_sql_errors_carry_no_parameters(tmp_path: Path) -> None:
    from sqlalchemy import insert

    from bot.adapters.store_sql import kv

    store = SqlStore(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    try:
        assert store.engine.hide_parameters
        with pytest.raises(Exception) as caught, store._write() as conn:
            for _ in range(2):  # the second insert breaks the primary key
                conn.execute(insert(kv).values(key="k", value="secret post text"))
        assert "IntegrityError" in type(caught.value).__name__
        assert "secret post text" not in str(caught.value)
    finally:
        store.close()


def test_an_unreachable_database_error_carries_no_password() -> None:
    url = "postgresql://u:pw-hunter2@127.0.0.1:1/db?password=hunter3&connect_timeout=2"
    with pytest.raises(Exception) as caught:
        SqlStore(url)
    text = str(caught.value) + repr(caught.value)
    assert "OperationalError" in type(caught.value).__name__
    assert "hunter2" not in text and "hunter3" not in text


# ---------------------------------------------------------------- LLM text into Slack

_FRAGMENTS = [
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<!here|here>",
    "<!subteam^S0123ABC|@devs>",
    "<!subteam^S0123ABC>",
    "<@U0123ABC>",
    "<@W42|bob>",
    "<",
    ">",
    "<<",
    ">>",
    "!",
    "@",
    "&",
    "&lt;",
    "&gt;",
    "&amp;",
    "&#60;",
    "subteam^",
    "channel",
    "here",
    "@here",
    "@channel",
    "@everyone",
    "U0123",
    "|",
    "\u2060",
    "\u200b",
    " ",
    "\n",
    "*",
    "`",
]
HOSTILE = st.lists(
    st.one_of(st.sampled_from(_FRAGMENTS), st.text(max_size=6)), min_size=1, max_size=14
).map("".join)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


DAY = date(2026, 4, 15)


def test_llm_digest_text_never_mentions_anyone_in_the_posted_digest(tmp_path: Path) -> None:
    """Whatever the model answers (prompt injection through post text or meeting titles), the
    digest posted to Slack notifies nobody: no <!channel>/<!here>/<!subteam^…>/<@U…> markup and
    no live @here word, in any block or in the notification text."""
    llm = ScriptedChatModel()
    chat = RecordingChat()
    store = MemoryStore()
    noon = datetime.combine(DAY, time(12), tzinfo=UTC)
    store.save_post(StoredPost("CIDEAS", "1.0", "U1", "an idea", noon, kind="idea", title="T"))
    calendar = FixedCalendar(
        [Meeting(title="Standup", start=noon, end=noon.replace(hour=13))]  # type: ignore[call-arg]
    )
    bot = bootstrap(
        load_settings(_env_file=None, bot_data_dir=tmp_path / "data", digest_timezone="UTC"),
        store=store,
        embedder=HashEmbedder(),
        llm=llm,
        tracker=None,
        chat=chat,
        calendar=calendar,
    )

    @settings(max_examples=80, deadline=None)
    @given(HOSTILE)
    def check(answer: str) -> None:
        chat.posts.clear()
        llm.responses[:] = [answer, answer]
        for kind in ("takeaways", "meetings"):
            result = bot.digests.run(kind, "CDIGEST", DAY, force=True)  # type: ignore[arg-type]
            assert result.status == "posted", result
        assert len(chat.posts) == 2 and not llm.responses  # both digests asked the model
        for posted in chat.posts:
            for s in [posted["text"], *_strings(posted["blocks"])]:
                assert not any(m in s for m in ("<!", "<@")), s
                assert not has_broadcast(s), s

    check()


def test_llm_text_mentions_are_removed_until_none_is_left() -> None:
    from bot.adapters.llm_text import defuse_mentions

    for nested in (
        "<<!here>!here>",
        "<<@U1>@U1>",
        "<<!channel>!channel> hi",
        "<<<!here>!here>!here>",
    ):
        out = defuse_mentions(nested)
        assert "<!" not in out and "<@" not in out, (nested, out)
