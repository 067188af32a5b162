"""End to end: several Jira projects routed by channel (JIRA_PROJECTS).

FakeJira holds two projects; the real app receives signed events; sync-jira indexes both; a
post in the mobile channel is compared with the mobile project's tickets only and filed there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.config import ConfigError
from tests.fakes.jira_server import FakeJira
from tests.fakes.wiring import Rig

TEXT = "Dark mode for the settings screen at night please"


def _all_text(call: dict[str, Any]) -> str:
    return json.dumps(call.get("blocks") or []) + str(call.get("text", ""))


def _two_projects(tmp_path: Path, **settings: Any) -> Rig:
    jira = FakeJira(project="PROJ", other_projects=("MOB",))
    # The same idea exists in both projects: only the channel's own may be offered.
    jira.add_issue("Dark mode for the settings screen", issue_type="Story")
    jira.add_issue("Dark mode for the settings screen", issue_type="Story", project="MOB")
    return Rig(
        tmp_path,
        channels=("CIDEAS01", "CMOBILE1"),
        jira=jira,
        jira_projects="CMOBILE1=MOB|labels=mobile app|components=iOS|types=idea:Task",
        **settings,
    )


def test_a_post_in_a_mapped_channel_is_searched_and_filed_in_its_project(tmp_path: Path) -> None:
    r = _two_projects(tmp_path)
    try:
        assert r.bot.routing.allowed_projects() == ("PROJ", "MOB")
        result = r.bot.sync.sync()  # type: ignore[union-attr]
        assert result.seen == 2
        assert {t.project for t in r.index.tickets.values()} == {"PROJ", "MOB"}
        mob_key = next(k for k in r.index.tickets if k.startswith("MOB-"))
        proj_key = next(k for k in r.index.tickets if k.startswith("PROJ-"))

        ev = r.message(TEXT, channel="CMOBILE1")
        r.send_event(ev)
        r.wait_idle()
        reply = _all_text(r.slack.thread_replies("CMOBILE1", ev["ts"])[0])
        assert mob_key in reply and proj_key not in reply
        assert r.index.searched_projects[-1] == ("MOB",)

        r.send_event(r.reaction("CMOBILE1", ev["ts"]))
        r.wait_idle()
        filed = [i for k, i in r.jira.issues.items() if k not in (mob_key, proj_key)]
        assert len(filed) == 1
        f = filed[0]["fields"]
        assert f["project"]["key"] == "MOB"
        assert f["issuetype"]["name"] == "Task"  # the project's own type for ideas
        assert [c["name"] for c in f["components"]] == ["iOS"]
        assert "mobile-app" in f["labels"] and "ideabot" in f["labels"]
        filing = r.store.get_filing("CMOBILE1", ev["ts"])
        assert filing is not None and filing.issue_key and filing.issue_key.startswith("MOB-")
        assert r.index.tickets[filing.issue_key].project == "MOB"

        # The unmapped channel still searches and files in JIRA_PROJECT.
        ev2 = r.message(TEXT, channel="CIDEAS01")
        r.send_event(ev2)
        r.wait_idle()
        reply2 = _all_text(r.slack.thread_replies("CIDEAS01", ev2["ts"])[0])
        assert proj_key in reply2 and mob_key not in reply2
    finally:
        r.close()


def test_similar_across_projects_widens_the_search(tmp_path: Path) -> None:
    r = _two_projects(tmp_path, similar_across_projects=True)
    try:
        r.bot.sync.sync()  # type: ignore[union-attr]
        ev = r.message(TEXT, channel="CMOBILE1")
        r.send_event(ev)
        r.wait_idle()
        reply = _all_text(r.slack.thread_replies("CMOBILE1", ev["ts"])[0])
        assert "MOB-" in reply and "PROJ-" in reply
        assert r.index.searched_projects[-1] is None
    finally:
        r.close()


def test_each_mapped_project_is_checked_for_the_issue_types_it_would_file_as(
    tmp_path: Path,
) -> None:
    # Start-up (Bot.startup) refuses the first problem: a mapped project that cannot take its
    # issue types, or that this Jira does not have, is a one-line error instead of a filing
    # that Jira rejects days later.
    r = _two_projects(tmp_path)
    try:
        assert r.bot.issue_type_problems() == []  # MOB files ideas as Task: it has Task
    finally:
        r.close()
    cases = {
        "CMOBILE1=MOB|types=idea:Feature": "JIRA_PROJECTS: project MOB: idea=Feature is not an "
        "issue type of the project (available: Bug, Epic, Story, Task)",
        "CMOBILE1=WEB": "JIRA_PROJECTS: project WEB: ",
    }
    for n, (mapping, message) in enumerate(cases.items()):
        with pytest.raises(ConfigError) as err:
            Rig(
                tmp_path / str(n),
                channels=("CIDEAS01", "CMOBILE1"),
                jira=FakeJira(project="PROJ", other_projects=("MOB",)),
                jira_projects=mapping,
            )
        assert str(err.value).startswith(message)
    assert "No project could be found" in str(err.value)
