"""What Jira -> Slack and votes need of Jira, beside the ``Tracker`` port: an issue's status,
assignee and resolution now (``IssueReader.issue_state``) and a "votes in Slack" line kept
current in its description (``IssueReader.write_votes``), through the same `jira` client, with
the same deadlines, errors and metrics as ``JiraTracker``."""

from __future__ import annotations

import logging
import re
from typing import Any

from bot.adapters.jira_tracker import JiraTracker, flatten_adf, parse_jira_datetime
from bot.domain.issue_changes import IssueState
from bot.domain.ports import TrackerRejected

logger = logging.getLogger(__name__)

STATE_FIELDS = "status,assignee,resolution,updated"
VOTES_PREFIX = "Votes in Slack:"
# The line this module writes, wherever it sits in the description (a person may move it).
_VOTES_LINE = re.compile(r"^" + re.escape(VOTES_PREFIX) + r".*$", re.MULTILINE)


def votes_line(votes: int) -> str:
    """The description's line (Jira wiki markup) for *votes* people."""
    people = "person" if votes == 1 else "people"
    return f"{VOTES_PREFIX} *{votes}* ({votes} {people} reacted or replied in the Slack thread)"


def with_votes(description: str, votes: int) -> str:
    """*description* with its votes line replaced, or added at the end when it has none."""
    line = votes_line(votes)
    if _VOTES_LINE.search(description):
        return _VOTES_LINE.sub(line.replace("\\", "\\\\"), description, count=1)
    return f"{description.rstrip()}\n\n{line}" if description.strip() else line


def state_of(raw: dict[str, Any]) -> IssueState:
    """An issue's JSON (``GET issue/{key}``) as the announced fields."""
    f = raw.get("fields") or {}
    status = f.get("status") or {}
    category = status.get("statusCategory") or {}
    assignee = f.get("assignee") or {}
    resolution = f.get("resolution") or {}
    return IssueState(
        key=str(raw.get("key") or ""),
        status=status.get("name") or None,
        status_category=category.get("key") or None,
        assignee=assignee.get("displayName") or assignee.get("name") or None,
        resolution=resolution.get("name") or None,
        updated=parse_jira_datetime(f.get("updated")),
    )


class JiraIssues:
    """The ``IssueReader`` port on the tracker's `jira` client."""

    def __init__(self, tracker: JiraTracker) -> None:
        self.tracker = tracker

    def issue_state(self, key: str) -> IssueState | None:
        """The issue's status, assignee and resolution now; None when Jira says it is gone."""
        try:
            raw = self.tracker._call(
                "reading issue state",
                lambda: self.tracker.client._get_json(
                    f"issue/{key}", params={"fields": STATE_FIELDS}
                ),
            )
        except TrackerRejected as exc:  # 404 (deleted, moved, no permission)
            logger.info("issue %s cannot be read (%s): not announced", key, exc)
            return None
        state = state_of(raw if isinstance(raw, dict) else {})
        return state if state.key else IssueState(key=key)

    def write_votes(self, key: str, votes: int) -> bool:
        """Puts the votes line in the issue's description (replacing an older one); False when
        it already said *votes*."""
        client = self.tracker.client
        issue = self.tracker._call(
            "reading the description", lambda: client.issue(key, fields="description")
        )
        before = flatten_adf(getattr(issue.fields, "description", None) or "")
        after = with_votes(before, votes)
        if after == before:
            return False
        self.tracker._call("writing the votes", lambda: issue.update(fields={"description": after}))
        return True
