"""Required fields of the create screen: cached create metadata, configured defaults, and what
the emoji path does when a required field has neither (it asks in the thread).

The metadata is a cache of Jira's own answer, kept in memory per (project, issue type) for
``MetaCache.ttl`` and dropped when Jira refuses a field (the screen changed since); the database
stays the only state.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from bot.domain.filing import FilingJob
from bot.domain.issue_fields import CreateMeta, FieldCatalog, FieldSpec, resolve_defaults
from bot.domain.ports import TrackerError

logger = logging.getLogger(__name__)

META_TTL_SECONDS = 600.0


@dataclass
class MetaCache:
    """Create metadata per (project, issue type), for *ttl* seconds."""

    catalog: FieldCatalog
    ttl: float = META_TTL_SECONDS
    clock: Callable[[], float] = time.monotonic
    _entries: dict[tuple[str, str], tuple[float, CreateMeta]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, project: str, issue_type: str) -> CreateMeta:
        """The create screen, from the cache or Jira; raises TrackerError."""
        hit = self.cached(project, issue_type)
        if hit is not None:
            return hit
        meta = self.catalog.create_meta(project, issue_type)
        with self._lock:
            self._entries[(project.upper(), issue_type.lower())] = (self.clock(), meta)
        return meta

    def cached(self, project: str, issue_type: str) -> CreateMeta | None:
        """The cached create screen when it is fresh, without asking Jira."""
        with self._lock:
            hit = self._entries.get((project.upper(), issue_type.lower()))
        if hit is not None and self.clock() - hit[0] < self.ttl:
            return hit[1]
        return None

    def forget(self, project: str) -> None:
        """Drops *project*'s screens: Jira refused a field, so they changed."""
        with self._lock:
            for key in [k for k in self._entries if k[0] == project.upper()]:
                del self._entries[key]
        logger.info("create metadata of %s dropped; it is read again on next use", project)


class FieldsNotifier(Protocol):
    """Says in a post's thread which required fields it needs, with a button to give them."""

    def needs_fields(self, job: FilingJob, project: str, names: list[str]) -> None: ...


@dataclass
class RequiredFields:
    """Fills a filing's fields from JIRA_FIELD_DEFAULTS and names what is still missing."""

    cache: MetaCache
    project: str  # JIRA_PROJECT: where a job that names none is filed
    issue_type_for: Callable[[str], str]  # kind -> issue type (JIRA_ISSUE_TYPES)
    notifier: FieldsNotifier
    defaults: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def target(self, job: FilingJob) -> tuple[str, str]:
        """The project and issue type *job* is filed as."""
        return job.project or self.project, job.issue_type or self.issue_type_for(job.kind)

    def meta(self, project: str, issue_type: str) -> CreateMeta | None:
        """The create screen, or None when Jira cannot say now (filing then goes ahead and
        Jira's own answer decides)."""
        try:
            return self.cache.get(project, issue_type)
        except TrackerError as exc:
            logger.warning("no create metadata for %s/%s: %s", project, issue_type, exc)
            return None

    def complete(self, job: FilingJob) -> tuple[FilingJob, list[FieldSpec]]:
        """*job* with the defaults of its screen's fields (the job's own values win), and the
        required fields still without a value."""
        project, issue_type = self.target(job)
        meta = self.meta(project, issue_type)
        if meta is None:
            return job, []
        values, problems = resolve_defaults(meta, self.defaults)
        for problem in problems:
            logger.warning("%s", problem)
        merged = {**values, **job.fields}
        done = job.model_copy(update={"fields": merged})
        return done, meta.missing(merged)

    def ask(self, job: FilingJob, missing: list[FieldSpec]) -> None:
        """Posts "PROJECT needs *Team* before it can be filed" with the form's button."""
        project, _ = self.target(job)
        logger.info("filing %s waits for required fields: %s", job.key, [f.id for f in missing])
        try:
            self.notifier.needs_fields(job, project, [f.name for f in missing])
        except Exception:
            logger.exception("could not ask for the required fields of %s", job.key)
