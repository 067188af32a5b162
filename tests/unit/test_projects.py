"""JIRA_PROJECTS: parsing (compact and JSON), clear errors, and the channel -> project routing."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, Settings, allowed_projects, load_settings
from bot.domain.projects import ProjectRoute, ProjectRouting, parse_routes
from tests.fakes.settings import settings_from_env

JIRA = {"JIRA_URL": "http://jira.test", "JIRA_API_TOKEN": "t", "JIRA_PROJECT": "PROJ"}


def _load(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> Settings:
    return settings_from_env(monkeypatch, tmp_path, **{**JIRA, **env})


def test_compact_form_with_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    s = _load(
        monkeypatch,
        tmp_path,
        JIRA_PROJECTS="#Mobile=mob; #web,C0123ABC=WEB|labels=web,front end|components=UI App"
        "|types=bug:Defect,idea:New Feature",
    )
    web = ProjectRoute(
        project="WEB",
        issue_types={"bug": "Defect", "idea": "New Feature"},
        labels=("web", "front end"),
        components=("UI App",),
    )
    assert s.jira_projects == {"#mobile": ProjectRoute(project="MOB"), "#web": web, "C0123ABC": web}
    assert allowed_projects(s) == ("PROJ", "MOB", "WEB")
    assert web.issue_type("bug", s.issue_types) == "Defect"
    assert web.issue_type("question", s.issue_types) == "Task"


def test_json_form(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    s = _load(
        monkeypatch,
        tmp_path,
        JIRA_PROJECTS='{"#mobile": "MOB", "C0123ABC": {"project": "WEB", '
        '"issue_types": {"bug": "Defect"}, "labels": ["web"], "components": "UI,API"}}',
    )
    assert s.jira_projects["#mobile"].project == "MOB"
    assert s.jira_projects["C0123ABC"].components == ("UI", "API")
    assert s.jira_projects["C0123ABC"].issue_types == {"bug": "Defect"}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("#mobile", "expected channels=PROJECT entries separated by ';'"),
        ("#mobile=mob-1", "'mob-1' is not a Jira project key"),
        ("#x=A|foo=1", "#x: unknown option 'foo'"),
        ("#x=A|types=bug", "types: expected kind:Type pairs"),
        ("#x=A|types=feature:Story", "unknown kind 'feature'"),
        ("#a=A;#a=B", "#a is mapped twice (A, B)"),
        ("{bad", "invalid JSON"),
        ('{"#a": {"proj": "A"}}', "#a: unknown key 'proj'"),
        ('{"#a": {"labels": ["x"]}}', "'project' (a project key) is required"),
        ("Not A Channel=A", "is not a channel id"),
    ],
)
def test_broken_config_names_the_problem(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, raw: str, message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        _load(monkeypatch, tmp_path, JIRA_PROJECTS=raw)
    assert str(err.value).startswith("JIRA_PROJECTS: ")
    assert message in str(err.value)


def test_projects_need_the_rest_of_jira(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JIRA_PROJECTS", "#mobile=MOB")
    with pytest.raises(ConfigError, match="JIRA_URL: required"):
        load_settings()


def test_routing_by_channel_id_and_resolved_name() -> None:
    routing = ProjectRouting("PROJ", parse_routes("#mobile=MOB; C0WEB=WEB"))
    assert routing.project("C0WEB") == "WEB"
    assert routing.project("C0MOBILE") == "PROJ"  # not resolved yet: the fallback
    asked: list[list[str]] = []

    def lookup(names: list[str]) -> set[str]:
        asked.append(list(names))
        return {"C0MOBILE"} if names == ["#mobile"] else set()

    assert routing.resolve(lookup) == []
    assert asked == [["#mobile"]]
    assert routing.project("C0MOBILE") == "MOB"
    assert routing.project("C0OTHER") == "PROJ"
    assert routing.search_projects("C0MOBILE") == ("MOB",)
    assert routing.search_projects("C0OTHER") == ("PROJ",)
    wide = ProjectRouting("PROJ", parse_routes("#mobile=MOB"), across_projects=True)
    assert wide.search_projects("C0X") is None
    # One project: no filter at all (the index searches everything, as before).
    assert ProjectRouting("PROJ").search_projects("C0X") is None
    assert ProjectRouting("PROJ").allowed_projects() == ("PROJ",)


def test_unknown_names_are_reported() -> None:
    routing = ProjectRouting("PROJ", parse_routes("#gone=GONE"))
    assert routing.resolve(lambda names: set()) == ["#gone"]
    assert routing.project("C0X") == "PROJ"
