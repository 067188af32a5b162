"""Create-screen rules: what is missing, what is valid, JIRA_FIELD_DEFAULTS."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, load_settings
from bot.domain.issue_fields import (
    ANY_PROJECT,
    Choice,
    CreateMeta,
    FieldSpec,
    FieldValue,
    parse_field_defaults,
    resolve_defaults,
    validate,
)

TEAM = FieldSpec(
    id="customfield_10010",
    name="Team",
    kind="option",
    required=True,
    allowed=(Choice(id="1", name="Platform"), Choice(id="2", name="Mobile")),
)
META = CreateMeta(
    project="IDEA",
    issue_type="Story",
    fields=(
        FieldSpec(id="summary", name="Summary", kind="text", required=True),
        FieldSpec(id="reporter", name="Reporter", kind="user", required=True),
        FieldSpec(id="priority", name="Priority", kind="option", required=True, has_default=True),
        TEAM,
        FieldSpec(id="duedate", name="Due", kind="date"),
        FieldSpec(id="customfield_1", name="Points", kind="number"),
        FieldSpec(
            id="components",
            name="Components",
            kind="options",
            allowed=(Choice(id="7", name="Web"), Choice(id="8", name="API")),
        ),
    ),
)


def test_only_required_fields_without_a_default_that_the_bot_does_not_fill_are_missing() -> None:
    assert [f.name for f in META.missing({})] == ["Team"]
    given = {TEAM.id: FieldValue(kind="option", value="2")}
    assert META.missing(given) == []


def test_validate_checks_choices_dates_and_numbers() -> None:
    errors = validate(
        META,
        {
            TEAM.id: FieldValue(kind="option", value="9"),
            "duedate": FieldValue(kind="date", value="2026-02-30"),
            "customfield_1": FieldValue(kind="number", value="three"),
        },
    )
    assert set(errors) == {TEAM.id, "duedate", "customfield_1"}
    assert validate(META, {}) == {TEAM.id: "Team is required."}
    ok = {
        TEAM.id: FieldValue(kind="option", value="1"),
        "duedate": FieldValue(kind="date", value="2026-02-28"),
    }
    assert validate(META, ok) == {}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Team=Platform", {ANY_PROJECT: {"Team": "Platform"}}),
        (
            "Team=Platform, Components=Web,API",
            {ANY_PROJECT: {"Team": "Platform", "Components": "Web,API"}},
        ),
        ('{"Team": "Mobile"}', {ANY_PROJECT: {"Team": "Mobile"}}),
        (
            '{"IDEA": {"Team": "Mobile", "Components": ["Web"]}, "*": {"Due": "2026-01-01"}}',
            {"IDEA": {"Team": "Mobile", "Components": "Web"}, "*": {"Due": "2026-01-01"}},
        ),
        ("", {}),
    ],
)
def test_field_defaults_parse(raw: str, expected: dict[str, dict[str, str]]) -> None:
    assert parse_field_defaults(raw) == expected


def test_defaults_resolve_against_the_screen_per_project() -> None:
    defaults = parse_field_defaults(
        '{"*": {"Team": "platform"}, "IDEA": {"Components": "Web,API"}}'
    )
    values, problems = resolve_defaults(META, defaults)
    assert values[TEAM.id].value == "1" and values[TEAM.id].label == "Platform"
    assert values["components"].value == ("7", "8")
    assert problems == []
    _, problems = resolve_defaults(META, parse_field_defaults("Team=Marketing, Nope=1"))
    assert problems == ["JIRA_FIELD_DEFAULTS: Team=Marketing is not a value Team takes"]


@pytest.mark.parametrize("raw", ["Team", "=Platform", '{"Team": ', '{"IDEA": {"Team": {}}}'])
def test_bad_field_defaults_stop_start_up_naming_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match="JIRA_FIELD_DEFAULTS"):
        load_settings(_env_file=None, jira_field_defaults=raw)
