"""Review and file: a person checks and completes what will be filed, then files it.

``form`` gathers what the review form shows: the post's triage (title, description, labels),
the target project and issue type, and the create screen's fields with their defaults.
``submit`` turns what the person entered into field values, checks them against the create
metadata (required fields, allowed values, dates, numbers) and files through the same
``Filer`` as the emoji (one claim and outbox item per message, so a double submit or a
reaction racing the form still makes one issue).

Slack wants the form's answer within 3 seconds, and field errors can only be shown on the form
in that answer. So the submission checks locally first, then gives Jira's create up to
``budget`` seconds: a field Jira refuses in that time comes back as a field error (and nothing
is filed); a Jira slower than that leaves the filing to the outbox, whose outcome, a refusal
included, is said in the thread as for the emoji.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.domain.filing import FilingJob, FilingResult
from bot.domain.issue_fields import (
    Choice,
    CreateMeta,
    FieldRaw,
    FieldValue,
    resolve_defaults,
    validate,
)
from bot.domain.models import MessageRef
from bot.domain.ports import Chat, Notifier
from bot.service.file_message import FileMessage, FileRequest
from bot.service.required_fields import RequiredFields

logger = logging.getLogger(__name__)

SUBMIT_BUDGET_SECONDS = 2.2  # of Slack's 3 s for a view_submission answer
SUMMARY_MAX = 255
SUGGESTIONS_MAX = 100  # Slack's cap on options in one external_select answer


@dataclass(frozen=True)
class ReviewForm:
    """What the review form shows for one post."""

    ref: MessageRef
    project: str
    projects: tuple[str, ...]
    issue_type: str
    title: str
    description: str
    labels: tuple[str, ...]
    meta: CreateMeta | None  # None: Jira could not say; the form has only the basics
    values: dict[str, FieldValue] = field(default_factory=dict)
    problem: str | None = None  # why the fields are not shown


@dataclass(frozen=True)
class ReviewInput:
    """What a person submitted. *raw* holds the fields by id: option ids, text, a number, a
    date, or a Slack user id for people (found by e-mail in Jira)."""

    ref: MessageRef
    requester: str
    project: str
    issue_type: str
    title: str
    description: str
    labels: tuple[str, ...] = ()
    raw: dict[str, FieldRaw | None] = field(default_factory=dict)


@dataclass(frozen=True)
class ReviewOutcome:
    """A filing result, or field errors (by field id; nothing was filed)."""

    result: FilingResult | None = None
    errors: dict[str, str] = field(default_factory=dict)


@dataclass
class ReviewFiling:
    """The use case behind "Review & file" and "Complete & file"."""

    file_message: FileMessage
    required: RequiredFields
    chat: Chat
    notifier: Notifier
    projects: Callable[[], tuple[str, ...]]  # the projects a person may file into
    budget: float = SUBMIT_BUDGET_SECONDS
    _pool: concurrent.futures.ThreadPoolExecutor = field(
        default_factory=lambda: concurrent.futures.ThreadPoolExecutor(
            max_workers=4, thread_name_prefix="review-submit"
        )
    )

    def allowed(self) -> tuple[str, ...]:
        return tuple(p for p in self.projects() if p) or (self.required.project,)

    def form(
        self,
        ref: MessageRef,
        requester: str,
        project: str | None = None,
        issue_type: str | None = None,
    ) -> ReviewForm | FilingResult:
        """The form for the post at *ref*, or why it cannot be filed (already filed, not
        allowed, Jira not configured, post gone)."""
        filer = self.file_message.filer
        done = filer.existing(ref.channel, ref.ts)
        if done is not None:
            return done
        got = self.file_message.job_for(FileRequest(ref=ref, requester=requester, force=True))
        if isinstance(got, FilingResult):
            return got
        job, _ = got
        allowed = self.allowed()
        target, default_type = self.required.target(job)
        project = project if project in allowed else target
        issue_type = issue_type or default_type
        problem: str | None = None
        values: dict[str, FieldValue] = {}
        meta = self.required.meta(project, issue_type)
        if meta is None:
            problem = "Jira did not say which fields this project needs; they are not shown."
        else:
            values, problems = resolve_defaults(meta, self.required.defaults)
            for p in problems:
                logger.warning("%s", p)
        return ReviewForm(
            ref=ref,
            project=project,
            projects=allowed,
            issue_type=issue_type,
            title=job.title or (job.text.splitlines() or [""])[0],
            description=job.summary,
            labels=job.labels,
            meta=meta,
            values=values,
            problem=problem,
        )

    def suggest(self, project: str, issue_type: str, field_id: str, query: str) -> list[Choice]:
        """Allowed values of a field with too many to list, matching *query* (type-ahead)."""
        meta = self.required.meta(project, issue_type)
        spec = meta.field(field_id) if meta else None
        if spec is None:
            return []
        q = query.strip().lower()
        return [c for c in spec.allowed if q in c.name.lower()][:SUGGESTIONS_MAX]

    def submit(self, inp: ReviewInput) -> ReviewOutcome:
        """Checks and files what was submitted (see the module docstring)."""
        got = self.file_message.job_for(
            FileRequest(ref=inp.ref, requester=inp.requester, force=True)
        )
        if isinstance(got, FilingResult):
            return ReviewOutcome(result=got)
        job, _ = got
        if inp.project not in self.allowed():
            return ReviewOutcome(errors={"project": "Not a project this bot files into."})
        meta = self.required.meta(inp.project, inp.issue_type)
        values, errors = self._values(meta, inp)
        title = " ".join(inp.title.split())
        if not title:
            errors["summary"] = "A title is needed."
        elif len(title) > SUMMARY_MAX:
            errors["summary"] = f"At most {SUMMARY_MAX} characters."
        if meta is not None:
            defaults, _ = resolve_defaults(meta, self.required.defaults)
            values = {**{k: v for k, v in defaults.items() if k not in inp.raw}, **values}
            for fid, msg in validate(meta, values).items():
                errors.setdefault(fid, msg)
        if errors:
            return ReviewOutcome(errors=errors)
        assignee = values.pop("assignee", None)
        job = job.model_copy(
            update={
                "title": title,
                "summary": inp.description.strip(),
                "labels": inp.labels,
                "project": inp.project,
                "issue_type": inp.issue_type,
                "fields": values,
                "assignee_email": str(assignee.value) if assignee else None,
                "assignee_name": assignee.label if assignee else None,
            }
        )
        return self._file(job, inp.project)

    def _file(self, job: FilingJob, project: str) -> ReviewOutcome:
        filer = self.file_message.filer
        future = self._pool.submit(filer.submit, job, tell_rejection=False)
        try:
            result = future.result(timeout=self.budget)
        except concurrent.futures.TimeoutError:
            # The outbox has it; its outcome is said in the thread, a refusal included.
            future.add_done_callback(lambda f: self._late(job, f))
            return ReviewOutcome(result=FilingResult("in_progress"))
        if result.status == "rejected":
            if result.fields:
                self.required.cache.forget(project)
                return ReviewOutcome(errors=dict(result.fields))
            return ReviewOutcome(errors={"summary": f"Jira refused it: {result.message or '?'}"})
        return ReviewOutcome(result=result)

    def _late(self, job: FilingJob, future: concurrent.futures.Future[FilingResult]) -> None:
        try:
            result = future.result()
        except Exception:
            logger.exception("the review submission of %s failed", job.key)
            return
        if result.status == "rejected":
            if result.fields:
                self.required.cache.forget(job.project or self.required.project)
            self.notifier.filing_outcome(job, result)

    def _values(
        self, meta: CreateMeta | None, inp: ReviewInput
    ) -> tuple[dict[str, FieldValue], dict[str, str]]:
        values: dict[str, FieldValue] = {}
        errors: dict[str, str] = {}
        if meta is None:
            return values, errors
        for fid, raw in inp.raw.items():
            spec = meta.field(fid)
            if spec is None or raw is None or raw in ("", ()):
                continue
            if spec.kind == "user":
                person = self.chat.person(str(raw))
                if not person.email:
                    errors[fid] = "I cannot see this person's e-mail, so Jira cannot find them."
                    continue
                values[fid] = FieldValue(
                    kind="user", value=person.email, label=person.name or str(raw)
                )
                continue
            label = ", ".join(_names(spec.allowed, raw)) if spec.allowed else str(raw)
            values[fid] = FieldValue(kind=spec.kind, value=raw, label=label)
        return values, errors


def _names(allowed: tuple[Choice, ...], raw: Any) -> list[str]:
    ids = raw if isinstance(raw, tuple) else (str(raw),)
    names = {c.id: c.name for c in allowed}
    return [names.get(str(i), str(i)) for i in ids]
