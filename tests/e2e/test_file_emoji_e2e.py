"""End to end: emoji that say what to file (FILE_EMOJI as a map), through the real app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings
from bot.domain.emoji import EmojiAction, parse_file_emoji
from tests.fakes.jira_server import FakeJira
from tests.fakes.wiring import Rig

EMOJI = "bug=Bug,bulb=Story,ticket=*,inbox_tray=project:TRI,eyes=label:needs-triage"


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path, jira=FakeJira(project="PROJ", other_projects=("TRI",)), file_emoji=EMOJI)
    yield r
    r.close()


def _file_with(rig: Rig, text: str, *emoji: str) -> list[dict]:  # type: ignore[type-arg]
    ev = rig.message(text)
    rig.send_event(ev)
    rig.wait_idle()
    for name in emoji:
        rig.send_event(rig.reaction("CIDEAS01", ev["ts"], name=name))
        rig.wait_idle()
    return list(rig.jira.issues.values())


def test_the_bug_emoji_files_a_bug_whatever_the_analyzer_said(rig: Rig) -> None:
    issues = _file_with(rig, "Add dark mode to the dashboard", "bug")  # analysed: an idea
    assert len(issues) == 1
    assert issues[0]["fields"]["issuetype"]["name"] == "Bug"
    assert issues[0]["fields"]["project"]["key"] == "PROJ"


def test_the_kind_emoji_files_by_the_analysed_kind(rig: Rig) -> None:
    issues = _file_with(rig, "Add dark mode to the dashboard", "ticket")
    assert [i["fields"]["issuetype"]["name"] for i in issues] == ["Story"]


def test_two_different_emoji_on_one_message_file_once(rig: Rig) -> None:
    issues = _file_with(rig, "Add dark mode to the dashboard", "bug", "bulb", "ticket")
    assert len(issues) == 1
    assert issues[0]["fields"]["issuetype"]["name"] == "Bug"  # the first emoji decided
    # The later emoji were told it is filed already (ephemeral, to whoever reacted).
    assert rig.slack.calls_to("chat.postEphemeral")


def test_triage_emoji_send_to_a_project_or_add_a_label(rig: Rig) -> None:
    issues = _file_with(rig, "Add dark mode to the dashboard", "inbox_tray")
    assert issues[0]["fields"]["project"]["key"] == "TRI"
    assert issues[0]["fields"]["issuetype"]["name"] == "Story"
    issues = _file_with(rig, "Export to CSV please", "eyes")
    labelled = [i for i in issues if "needs-triage" in i["fields"]["labels"]]
    assert len(labelled) == 1 and labelled[0]["fields"]["project"]["key"] == "PROJ"


def test_other_emoji_still_do_nothing(rig: Rig) -> None:
    assert _file_with(rig, "Add dark mode to the dashboard", "tada", "thumbsup") == []


def test_parsing_and_the_single_form() -> None:
    assert parse_file_emoji("ticket") == {"ticket": EmojiAction()}
    assert parse_file_emoji(":memo:") == {"memo": EmojiAction()}
    parsed = parse_file_emoji(EMOJI)
    assert parsed["bug"] == EmojiAction(issue_type="Bug")
    assert parsed["inbox_tray"] == EmojiAction(project="TRI")
    assert parsed["eyes"] == EmojiAction(label="needs-triage")
    assert load_settings(file_emoji=EMOJI).file_emoji_hint == "ticket"
    assert load_settings(file_emoji="bug=Bug,bulb=Story").file_emoji_hint == "bug"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("bug=Bug,bug=Story", "bug is listed twice"),
        ("bug", None),
        ("bug=", "empty meaning"),
        ("bug=project:no-such key", "is not a Jira project key"),
        ("x=label:ideabot-1", "not a label the bot may set"),
        ("no spaces=Bug", "expected an emoji name"),
        ("bug:Bug", "expected an emoji name"),
    ],
)
def test_broken_file_emoji_names_the_problem(raw: str, message: str | None) -> None:
    if message is None:
        load_settings(file_emoji=raw)
        return
    with pytest.raises(ConfigError) as err:
        load_settings(file_emoji=raw)
    assert str(err.value).startswith("FILE_EMOJI: ") and message in str(err.value)
