"""An in-memory Tracker: records what the use cases ask of Jira, fails on demand."""

from __future__ import annotations

import threading
from datetime import datetime

from bot.domain.models import CreatedIssue, NewComment, NewIssue, Ticket


class FakeTracker:
    """Records creations and comments; ``failures`` are raised by the next calls, in order."""

    def __init__(self, tickets: list[Ticket] | None = None, page: int = 100) -> None:
        self.created: list[NewIssue] = []
        self.comments: list[NewComment] = []
        self.failures: list[Exception] = []
        self.crash_after_create = False
        self.tickets = list(tickets or [])
        self.page = page
        self.queries: list[tuple[str, datetime | None, str | None, str | None]] = []
        self._lock = threading.Lock()

    def _fail(self) -> None:
        with self._lock:
            if self.failures:
                raise self.failures.pop(0)

    def create_issue(self, issue: NewIssue) -> CreatedIssue:
        self._fail()
        with self._lock:
            self.created.append(issue)
            key = f"PROJ-{len(self.created)}"
        if self.crash_after_create:
            raise RuntimeError("process died after Jira answered")
        return CreatedIssue(key=key, url=self.browse_url(key))

    def add_comment(self, comment: NewComment) -> str:
        self._fail()
        with self._lock:
            self.comments.append(comment)
            return str(len(self.comments))

    def issue_types(self) -> list[str]:
        return ["Story", "Bug", "Task"]

    def find_by_marker(self, project: str, marker: str) -> CreatedIssue | None:
        self._fail()
        with self._lock:
            for i, issue in enumerate(self.created):
                if issue.project == project and issue.marker == marker:
                    key = f"PROJ-{i + 1}"
                    return CreatedIssue(key=key, url=self.browse_url(key))
        return None

    def updated_since(
        self,
        project: str,
        since: datetime | None,
        page_token: str | None = None,
        page_size: int = 100,
        narrow: str | None = None,
    ) -> tuple[list[Ticket], str | None]:
        self._fail()
        self.queries.append((project, since, narrow, page_token))
        start = int(page_token or 0)
        chunk = self.tickets[start : start + self.page]
        nxt = start + self.page
        return chunk, (str(nxt) if nxt < len(self.tickets) else None)

    def browse_url(self, key: str) -> str:
        return f"https://jira.example/browse/{key}"
