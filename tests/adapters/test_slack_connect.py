"""Slack Connect in the Chat adapter: shared channels and who is a member, on the real WebClient
against FakeSlack."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from slack_sdk import WebClient

from bot.adapters.slack_chat import SlackChat
from tests.fakes.slack_server import FakeSlack


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def _chat(slack: FakeSlack) -> SlackChat:
    return SlackChat(WebClient(token=slack.token, base_url=slack.base_url))


def test_shared_channels_and_unknowns(slack: FakeSlack) -> None:
    slack.add_channel("CPLAIN01")
    slack.set_shared("CSHARED1")
    slack.add_channel("CGRID001")
    slack.channels["CGRID001"].update(is_shared=True, is_org_shared=True)  # one Grid org
    chat = _chat(slack)
    assert chat.channel_is_shared("CSHARED1") is True
    assert chat.channel_is_shared("CPLAIN01") is False
    assert chat.channel_is_shared("CGRID001") is False
    assert chat.channel_is_private("CSHARED1") is False  # one lookup serves both questions
    infos = [p["channel"] for p in slack.calls_to("conversations.info")]
    assert infos.count("CSHARED1") == 1
    slack.fail_next("conversations.info", "channel_not_found")
    assert chat.channel_is_shared("CUNKNOWN") is True  # cannot tell: treated as shared


def test_members_and_people_from_elsewhere(slack: FakeSlack) -> None:
    slack.add_user("UALICE", email="alice@example.com")
    slack.add_user("UGUEST", email="g@partner.example", team_id="TPARTNER")
    slack.add_user("UROOM", email="r@example.com")
    slack.users["UROOM"]["is_restricted"] = True  # a guest account of ours
    chat = _chat(slack)
    assert chat.person("UALICE").external is False
    assert chat.person("UGUEST").external is True
    assert chat.person("UROOM").external is True
    assert len(slack.calls_to("auth.test")) == 1  # the home team is asked once
