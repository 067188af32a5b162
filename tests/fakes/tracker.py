"""An in-memory Tracker: records what the use cases ask of Jira, fails on demand."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

from bot.domain.models import CreatedIssue, NewComment, NewIssue, Ticket


class FakeTracker:
    """Records creations and comments; ``failures`` are raised by the next calls, in order.

    ``on_create`` runs inside each create before Jira would have stored the issue (a slow
    create: a test moves its clock or starts a second worker there); ``after_create`` runs once
    the issue exists but before the caller hears back. ``fail_after_write`` raises the next
    failure after the comment or issue was stored (a lost answer).
    """

    def __init__(self, tickets: list[Ticket] | None = None, page: int = 100) -> None:
        self.created: list[NewIssue] = []
        self.comments: list[NewComment] = []
        self.failures: list[Exception] = []
        self.crash_after_create = False
        self.fail_after_write: list[Exception] = []
        self.on_create: Callable[[NewIssue], None] | None = None
        self.after_create: Callable[[NewIssue], None] | None = None
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
        if self.on_create is not None:
            self.on_create(issue)
        with self._lock:
            self.created.append(issue)
            key = f"PROJ-{len(self.created)}"
        if self.after_create is not None:
            self.after_create(issue)
        if self.crash_after_create:
            raise RuntimeError("process died after Jira answered")
        self._fail_after_write()
        return CreatedIssue(key=key, url=self.browse_url(key))

    def add_comment(self, comment: NewComment) -> str:
        self._fail()
        with self._lock:
            self.comments.append(comment)
            cid = str(len(self.comments))
        self._fail_after_write()
        return cid

    def _fail_after_write(self) -> None:
        with self._lock:
            if self.fail_after_write:
                raise self.fail_after_write.pop(0)

    def find_comment_marker(self, key: str, marker: str) -> bool:
        self._fail()
        with self._lock:
            return any(c.key == key and c.marker == marker for c in self.comments)

    def issue_types(self, project: str | None = None) -> list[str]:
        return ["Story", "Bug", "Task"]

    def find_by_marker(self, project: str, marker: str) -> CreatedIssue | None:
        self._fail()
        with self._lock:
            for i, issue in enumerate(self.created):
                # Jira finds the marker as a label, whoever put it there.
                if issue.project == project and marker in (issue.marker, *issue.labels):
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
