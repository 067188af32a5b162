"""Reading Slack workspace exports: threads, votes, filters, bad exports, flat memory."""

from __future__ import annotations

import zipfile
from datetime import date
from pathlib import Path

import pytest

from bot.adapters.slack_export import SlackExport
from bot.domain.backfill import ExportError
from tests.fakes.slack_export import ExportBuilder

DAY = 86400
T0 = 1709287200  # 2024-03-01 10:00 UTC


def _ts(day: int, n: int = 0) -> str:
    return f"{T0 + day * DAY + n}.000100"


def _export(tmp_path: Path) -> Path:
    b = (
        ExportBuilder()
        .channel("CIDEAS01", "ideas")
        .channel("CRANDOM1", "random")
        .channel("GSECRET1", "secret", private=True)
        .user("UALICE", "Alice")
        .user("UBOB", "Bob")
        .user("UCAROL", "Carol")
        .user("UBOTX", "Helper", is_bot=True)
    )
    b.post(
        "CIDEAS01",
        _ts(0),
        "UALICE",
        "We should add dark mode",
        reactions={"+1": ["UBOB", "UCAROL", "UALICE"], "heart": ["UBOB"]},
        replies=[
            (_ts(0, 60), "UBOB", "Yes, <@UCAROL> too"),
            (_ts(2, 5), "UALICE", "thanks!"),
            (_ts(3, 5), "UBOTX", "bot noise"),
        ],
    )
    b.message("CIDEAS01", _ts(1), "UBOB", "", subtype="channel_join")
    b.message("CIDEAS01", _ts(1, 5), "UBOTX", "deploy done", bot_id="B1", subtype="bot_message")
    b.post("CIDEAS01", _ts(5), "UBOB", "Export to CSV please")
    b.post("CRANDOM1", _ts(1), "UCAROL", "Lunch?")
    b.post("GSECRET1", _ts(2), "UCAROL", "Secret idea")
    return b.write(tmp_path / "export.zip")


def test_posts_with_threads_votes_and_people(tmp_path: Path) -> None:
    with SlackExport(_export(tmp_path)) as export:
        posts = list(export.posts(export.select(None)))
        assert [(p.channel_name, p.text) for p in posts] == [
            ("ideas", "We should add dark mode"),
            ("ideas", "Export to CSV please"),
            ("random", "Lunch?"),
            ("secret", "Secret idea"),
        ]
        dark = posts[0]
        # Bob and Carol reacted, Bob replied: two people; the author and the bot do not count.
        assert dark.voters == {"UBOB", "UCAROL"} and dark.votes == 2
        assert [r.text for r in dark.replies] == ["Yes, <@UCAROL> too", "thanks!", "bot noise"]
        assert [r.by_bot for r in dark.replies] == [False, False, True]
        assert posts[1].votes == 0 and posts[3].is_private
        assert export.people.name_of("UCAROL") == "Carol"
        assert export.stats.posts == 4 and export.stats.bad_files == []


def test_channels_and_since_filter(tmp_path: Path) -> None:
    with SlackExport(_export(tmp_path)) as export:
        picked = export.select(["#ideas", "GSECRET1"])
        assert [c.name for c in picked] == ["ideas", "secret"]
        posts = list(export.posts(picked, since=date(2024, 3, 3)))
        assert [p.text for p in posts] == ["Export to CSV please", "Secret idea"]
        assert export.stats.orphan_replies == 2  # replies whose post was before --since
        with pytest.raises(ExportError, match="no channel nope"):
            export.select(["nope"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a zip at all", "not a zip file"),
        (None, "not a Slack workspace export"),
        (b"bad json", "channels.json: not valid JSON"),
    ],
)
def test_bad_exports_are_named(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "bad.zip"
    if content == b"not a zip at all":
        path.write_bytes(content)
    else:
        with zipfile.ZipFile(path, "w") as z:
            if content is None:
                z.writestr("users.json", "[]")
            else:
                z.writestr("channels.json", content)
    with pytest.raises(ExportError, match=message):
        SlackExport(path)
    with pytest.raises(ExportError, match="no such file"):
        SlackExport(tmp_path / "missing.zip")


def test_a_bad_day_file_is_skipped_and_named(tmp_path: Path) -> None:
    path = _export(tmp_path)
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("ideas/2024-03-09.json", "{broken")
    with SlackExport(path) as export:
        posts = list(export.posts(export.select(["ideas"])))
        assert len(posts) == 2 and export.stats.bad_files == ["ideas/2024-03-09.json"]


def test_memory_stays_flat_over_a_long_history(tmp_path: Path) -> None:
    """Posts are held only for the thread window, whatever the export's length."""
    b = ExportBuilder().channel("CIDEAS01", "ideas").user("UALICE", "Alice")
    for day in range(400):
        for n in range(3):
            b.post("CIDEAS01", _ts(day, n), "UALICE", f"idea {day}/{n}")
    with SlackExport(b.write(tmp_path / "long.zip"), window_days=10) as export:
        count = sum(1 for _ in export.posts(export.select(None)))
    assert count == 1200
    assert export.stats.max_pending <= 3 * 12  # eleven days' posts at most, not 1,200
