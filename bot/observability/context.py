"""The context of the work in hand (which event, which trace, which message), for every log line.

``with log_context(trace_id=..., channel=..., ts=...):`` sets fields for the block; nested blocks
add to (or override) the outer ones and the old values come back on exit. The fields live in a
``contextvars.ContextVar``, so concurrent threads never see each other's context. A new thread
starts with an *empty* context, so work handed to another thread (a pool, the outbox worker)
carries its context explicitly::

    pool.submit(carry(handle), event)          # handle() runs with the submitter's fields
    snapshot = current_context(); ...; with log_context(**snapshot): ...

Only the fields in :data:`FIELDS` exist, so the JSON log schema stays fixed. None of them is
secret or personal: ``channel`` and ``ts`` locate a message, never its text.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import ParamSpec, TypeVar

FIELDS: tuple[str, ...] = ("event_id", "trace_id", "channel", "ts", "outbox_item", "jira_key")

_EMPTY: Mapping[str, str] = {}
_context: ContextVar[Mapping[str, str]] = ContextVar("ideabot_log_context", default=_EMPTY)

P = ParamSpec("P")
R = TypeVar("R")


def current_context() -> dict[str, str]:
    """The fields in force in this thread (a copy; changing it changes nothing)."""
    return dict(_context.get())


@contextmanager
def log_context(**fields: str | int | None) -> Iterator[dict[str, str]]:
    """Adds *fields* to the context for the ``with`` block; a None value leaves a field as it is.

    Raises TypeError for a field outside :data:`FIELDS`. Yields the context now in force."""
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise TypeError(f"unknown log context fields {sorted(unknown)}; known: {FIELDS}")
    merged = {**_context.get(), **{k: str(v) for k, v in fields.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield dict(merged)
    finally:
        _context.reset(token)


def carry(fn: Callable[P, R]) -> Callable[P, R]:
    """*fn* bound to the context in force now: wherever (whichever thread) it is called later,
    it runs with these fields (plus any it sets itself)."""
    snapshot = current_context()

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with log_context(**snapshot):
            return fn(*args, **kwargs)

    return run
