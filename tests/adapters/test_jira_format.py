"""Jira's formats live in the adapter: the JQL of its two fixed queries."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.adapters.jira_format import marker_query, updated_query


def test_updated_query_quotes_project_and_orders() -> None:
    since = datetime(2026, 11, 2, 9, 5, tzinfo=UTC)
    assert updated_query("IDEA", None) == 'project = "IDEA" ORDER BY updated ASC'
    assert updated_query("IDEA", since, "statusCategory != Done") == (
        'project = "IDEA" AND (statusCategory != Done) AND updated >= "2026/11/02 09:05" '
        "ORDER BY updated ASC"
    )


def test_marker_query_quotes_values() -> None:
    assert marker_query("AND", 'x"y') == 'project = "AND" AND labels = "x\\"y"'
