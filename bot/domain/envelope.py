"""The event envelope: one shape for every event the bot produces or stores for later work.

::

    {
      "metadata": {
        "version": 1,                      # of this envelope (not of the data)
        "event_id": "9f1c...",             # unique per event; a redelivery keeps it
        "trace_id": "4bf92f3577b34da6...", # the whole flow, Slack event to thread reply
        "type": "jira.file",               # what the data is; the outbox topic for outbox items
        "published_by": "ideabot",         # which program (and instance) wrote it
        "published_at": "2026-04-15T09:30:00.123Z"
      },
      "data": { ... }                      # the event itself, e.g. a FilingJob
    }

``wrap(type, data, ...)`` makes one; ``read(raw)`` reads any supported version, one reader per
version (:data:`READERS`). Version 0 is what was stored before envelopes existed: the bare data
(an outbox row's ``FilingJob`` dict). It reads as an envelope whose ids are derived from the
content, so reading the same row twice gives the same ids.

New ids are 32 lower-case hex digits, which is also the W3C/OpenTelemetry trace id format: a
``trace_id`` made here can be the trace id of the spans (``bot.adapters.tracing_otel``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import Field, field_validator

from bot.domain.models import Frozen

VERSION = 1
PUBLISHER = "ideabot"
_ID_NAMESPACE = uuid.UUID("1f0c6c59-6a43-4b0e-9c38-1d1e5bd3b6a1")


class UnsupportedVersion(ValueError):
    """An envelope of a version this program has no reader for (written by a newer one)."""


def new_id() -> str:
    """A fresh random id: 32 lower-case hex digits (a valid W3C trace id)."""
    return uuid.uuid4().hex


def derived_id(*parts: str) -> str:
    """A stable id for *parts*: the same parts always give the same 32 hex digits."""
    return uuid.uuid5(_ID_NAMESPACE, "\x1f".join(parts)).hex


class Metadata(Frozen):
    """Who wrote an event, when, and which flow it belongs to."""

    version: int = Field(ge=0)
    event_id: str = Field(min_length=1, max_length=128)
    trace_id: str = Field(min_length=1, max_length=128)
    type: str = Field(min_length=1, max_length=128)
    published_by: str = Field(min_length=1, max_length=256)
    # None only for version 0 (bare rows kept no time).
    published_at: datetime | None

    @field_validator("published_at")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("published_at must carry a time zone")
        return v


class Envelope(Frozen):
    """An event: :class:`Metadata` plus its data."""

    metadata: Metadata
    data: dict[str, Any]

    @property
    def type(self) -> str:
        return self.metadata.type

    @property
    def trace_id(self) -> str:
        return self.metadata.trace_id

    @property
    def event_id(self) -> str:
        return self.metadata.event_id

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (``published_at`` as ISO 8601 text)."""
        return self.model_dump(mode="json")


def wrap(
    type: str,
    data: Mapping[str, Any],
    *,
    trace_id: str | None = None,
    event_id: str | None = None,
    published_by: str = PUBLISHER,
    now: datetime | None = None,
) -> Envelope:
    """The current-version envelope of *data*. Missing ids are new; *now* defaults to the clock
    (pass the injected one in use cases)."""
    return Envelope(
        metadata=Metadata(
            version=VERSION,
            event_id=event_id or new_id(),
            trace_id=trace_id or new_id(),
            type=type,
            published_by=published_by,
            published_at=now or datetime.now(UTC),
        ),
        data=dict(data),
    )


def is_envelope(raw: Mapping[str, Any]) -> bool:
    """True when *raw* has the envelope shape (exactly ``metadata`` and ``data``, with a
    ``metadata.version``); anything else is a version-0 bare payload."""
    meta = raw.get("metadata")
    return (
        set(raw) == {"metadata", "data"}
        and isinstance(meta, Mapping)
        and "version" in meta
        and isinstance(raw.get("data"), Mapping)
    )


def _read_v0(raw: Mapping[str, Any], type: str | None, published_by: str) -> Envelope:
    body = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
    event_id = derived_id("v0", type or "", body)
    return Envelope(
        metadata=Metadata(
            version=0,
            event_id=event_id,
            # A bare row that carried its flow's trace id (a FilingJob does) keeps it; otherwise
            # one bare row is one flow: its trace id is stable too (and differs from the event id).
            trace_id=_own_trace(raw) or derived_id("v0-trace", event_id),
            type=type or "unknown",
            published_by=published_by,
            published_at=None,
        ),
        data=dict(raw),
    )


def _own_trace(raw: Mapping[str, Any]) -> str | None:
    trace = raw.get("trace_id")
    return trace if isinstance(trace, str) and 0 < len(trace) <= 128 else None


def _read_v1(raw: Mapping[str, Any], type: str | None, published_by: str) -> Envelope:
    env = Envelope.model_validate(dict(raw))
    if env.metadata.published_at is None:
        raise ValueError("metadata.published_at: required in version 1")
    return env


Reader = Callable[[Mapping[str, Any], str | None, str], Envelope]
READERS: dict[int, Reader] = {0: _read_v0, 1: _read_v1}


def read(
    raw: Mapping[str, Any], *, type: str | None = None, published_by: str = "unknown"
) -> Envelope:
    """The envelope in *raw*, whichever supported version wrote it.

    A bare payload (version 0) takes its ``type`` from *type* (e.g. the outbox topic it was read
    from) and its ``published_by`` from *published_by*. Raises :class:`UnsupportedVersion` for a
    version with no reader and ``pydantic.ValidationError`` for a malformed envelope."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"an event must be a JSON object, not {type(raw).__name__}")
    if not is_envelope(raw):
        return _read_v0(raw, type, published_by)
    version = raw["metadata"]["version"]
    if isinstance(version, bool) or not isinstance(version, int) or version == 0:
        raise ValueError(f"metadata.version: expected a positive integer, got {version!r}")
    reader = READERS.get(version)
    if reader is None:
        raise UnsupportedVersion(
            f"event envelope version {version} is newer than this program reads "
            f"(up to {max(READERS)})"
        )
    return reader(raw, type, published_by)


def read_json(text: str | bytes, *, type: str | None = None) -> Envelope:
    """:func:`read` on a JSON text."""
    raw = json.loads(text)
    if not isinstance(raw, dict):
        raise ValueError("an event must be a JSON object")
    return read(raw, type=type)
