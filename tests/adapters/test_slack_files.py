"""The files of a post and its thread, and their download with the bot token (FakeSlack)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from slack_sdk import WebClient

from bot.adapters.jira_format import render_wiki
from bot.adapters.slack_files import SlackFiles
from bot.domain.attachments import AttachmentPolicy, FileTooLarge
from bot.domain.models import ChatFile, IssueText
from tests.fakes.slack_server import FakeSlack


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def _files(slack: FakeSlack, token: str | None = None) -> SlackFiles:
    return SlackFiles(WebClient(token=token or slack.token, base_url=slack.base_url))


def test_files_of_the_post_and_its_thread(slack: FakeSlack) -> None:
    slack.add_message("C1", "100.000001", "bug")
    slack.add_message("C1", "100.000002", "reply", thread_ts="100.000001")
    slack.add_message("C1", "100.000003", "later reply", thread_ts="100.000001")
    slack.add_file("C1", "100.000001", "a.png", b"A")
    slack.add_file("C1", "100.000002", "b.txt", b"B", "text/plain")
    slack.add_file("C1", "100.000003", "c.png", b"C")
    files = _files(slack)
    assert [f.name for f in files.files_for("C1", "100.000001")] == ["a.png", "b.txt", "c.png"]
    # A reply filed on its own brings only its own files.
    assert [f.name for f in files.files_for("C1", "100.000002", "100.000001")] == ["b.txt"]
    f = files.files_for("C1", "100.000001")[0]
    assert files.download(f, 10, 5.0) == b"A"
    assert slack.file_downloads == [(f.id, True)]


def test_download_caps_and_where_the_token_goes(slack: FakeSlack) -> None:
    slack.add_message("C1", "100.000001", "bug")
    slack.add_file("C1", "100.000001", "big.png", b"x" * 300_000)
    files = _files(slack)
    big = files.files_for("C1", "100.000001")[0]
    with pytest.raises(FileTooLarge):
        files.download(big, 1000, 5.0)
    elsewhere = big.model_copy(update={"url": "https://evil.example/files-pri/x"})
    with pytest.raises(ValueError, match="not a Slack file URL"):
        files.download(elsewhere, 10**6, 5.0)
    with pytest.raises(PermissionError, match="files:read"):  # Slack's sign-in page
        _files(slack, token="xoxb-other").download(big, 10**6, 5.0)


def test_policy_types_sizes_channels_and_count() -> None:
    def f(
        i: str, mime: str = "image/png", size: int = 10, channels: tuple[str, ...] = ()
    ) -> ChatFile:
        return ChatFile(id=i, name=f"{i}.bin", mimetype=mime, size=size, url="u", channels=channels)

    policy = AttachmentPolicy(max_files=2, max_bytes=100)
    picked = policy.pick(
        [
            f("F1", "application/zip"),
            f("F2", size=1000),
            f("F3", channels=("COTHER",)),
            f("F4", channels=("C1",)),
            f("F4"),
            f("F5", "text/plain"),
            f("F6"),
        ],
        "C1",
    )
    assert [x.id for x in picked] == ["F4", "F5"]
    assert AttachmentPolicy(max_files=0).pick([f("F1")], "C1") == ()


def test_attachment_names_and_screenshots_in_the_description() -> None:
    shot = ChatFile(id="F0A1", name="Screen Shot 2026-11-30 at 10.00.png", mimetype="image/png")
    assert shot.attachment_name == "Screen_Shot_2026-11-30_at_10.00-F0A1.png"
    assert ChatFile(id="F2", name="../..").attachment_name == "file-F2"
    wiki = render_wiki(IssueText(summary="s", original="o", images=(shot.attachment_name, "a|b")))
    assert f"!{shot.attachment_name}|thumbnail!" in wiki
    assert "a|b" not in wiki  # only the bot's own safe names become markup
