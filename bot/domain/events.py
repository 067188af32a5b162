"""Every event the bot produces or stores for later work, in the one envelope shape.

The shape is ``bot.domain.envelope`` (``{"metadata": {"version", "event_id", "trace_id", "type",
"published_by", "published_at"}, "data": {...}}``). This module says, for each kind of event,
what its ``type`` is, what ``event_id`` idempotency keys on, and how a row written before
envelopes existed (version 0) is read, so stored rows need no migration:

=====================  ========================  ==============================================
event                  ``type``                  ``event_id`` (what idempotency keys on)
=====================  ========================  ==============================================
inbox event            ``event:<slack type>``,   Slack's event id / the trigger id
                       ``block_actions``, …      (``bot.slack.inbox``)
outbox item            its topic (``jira.file``) the message (``derived_id(topic, channel:ts)``)
digest claim           ``digest.claim``          the slot (``derived_id(kind:channel:day)``)
Slack message metadata ``ideabot_<what>``        the message it answers or the digest slot
audit record           ``audit.<what>``          the thing audited (``bot.domain.audit``)
=====================  ========================  ==============================================

Readers of stored rows go through :func:`read_outbox` and :func:`read_digest_claim`, which accept
both the envelope (version 1) and the bare payload written by the previous release (version 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from bot.domain.envelope import Envelope, derived_id, read, wrap
from bot.domain.filing import TOPIC, FilingJob

DIGEST_CLAIM = "digest.claim"


def outbox_event(
    topic: str, key: str, data: Mapping[str, Any], *, trace_id: str | None, now: datetime, by: str
) -> Envelope:
    """The envelope stored as an outbox item's payload: one per (topic, key), so a second
    request for the same work has the same ``event_id``."""
    return wrap(
        topic,
        data,
        event_id=derived_id(topic, key),
        trace_id=trace_id,
        published_by=by,
        now=now,
    )


def filing_event(job: FilingJob, *, now: datetime, by: str) -> Envelope:
    """The outbox event of one filing; its trace id is the job's (the flow that asked)."""
    return outbox_event(
        TOPIC, job.key, job.model_dump(mode="json"), trace_id=job.trace_id, now=now, by=by
    )


def read_outbox(payload: Mapping[str, Any], topic: str) -> Envelope:
    """An outbox item's payload as an envelope: version 1, or the bare payload the previous
    release stored (version 0: its own ``trace_id`` field, when it has one, is the trace)."""
    return read(payload, type=topic, published_by="ideabot")


def read_filing(payload: Mapping[str, Any], topic: str) -> tuple[Envelope, FilingJob]:
    """The envelope and the :class:`FilingJob` of a ``jira.file`` outbox item (either version).

    The job carries the envelope's trace id. Raises ``pydantic.ValidationError`` when the data
    is not a job, ``ValueError`` for an envelope this program cannot read."""
    env = read_outbox(payload, topic)
    job = FilingJob.model_validate(env.data)
    if job.trace_id is None:
        job = job.model_copy(update={"trace_id": env.trace_id})
    return env, job


def digest_slot(kind: str, channel: str, day: date) -> str:
    """One digest's slot, its exactly-once key (also in the posted message's metadata)."""
    return f"{kind}:{channel}:{day.isoformat()}"


def digest_claim_event(
    kind: str,
    channel: str,
    day: date,
    *,
    now: datetime,
    by: str,
    trace_id: str | None = None,
    message_ts: str | None = None,
) -> Envelope:
    """The envelope kept with a digest claim (and, with *message_ts*, with the posted record)."""
    slot = digest_slot(kind, channel, day)
    data: dict[str, Any] = {
        "key": slot,
        "digest": kind,
        "channel": channel,
        "day": day.isoformat(),
    }
    if message_ts is not None:
        data["message_ts"] = message_ts
    return wrap(
        DIGEST_CLAIM,
        data,
        event_id=derived_id(DIGEST_CLAIM, slot),
        trace_id=trace_id,
        published_by=by,
        now=now,
    )


def read_digest_claim(
    extra: Mapping[str, Any],
    kind: str,
    channel: str,
    day: date,
    message_ts: str | None = None,
) -> Envelope:
    """The envelope of a stored digest claim. A claim the previous release wrote kept ``{}``
    (version 0): it reads with the data its columns hold and ids derived from its slot."""
    if extra:
        env = read(extra, type=DIGEST_CLAIM)
        if env.metadata.version > 0:
            return env
    slot = digest_slot(kind, channel, day)
    data: dict[str, Any] = {**dict(extra), "key": slot, "digest": kind, "channel": channel}
    data["day"] = day.isoformat()
    if message_ts is not None:
        data["message_ts"] = message_ts
    env = read(data, type=DIGEST_CLAIM)
    meta = env.metadata.model_copy(update={"event_id": derived_id(DIGEST_CLAIM, slot)})
    return env.model_copy(update={"metadata": meta})


def message_event(
    event_type: str,
    data: Mapping[str, str | int | float | bool | None],
    *,
    trace_id: str | None,
    event_id: str | None = None,
    now: datetime | None = None,
    by: str = "ideabot",
) -> Envelope:
    """The envelope attached to one of the bot's own Slack messages (its ``event_payload``).

    *data* holds flat values only (what Slack metadata accepts); None values are left out."""
    flat = {k: v for k, v in data.items() if v is not None}
    return wrap(event_type, flat, event_id=event_id, trace_id=trace_id, published_by=by, now=now)


def message_key(payload: Mapping[str, Any]) -> str | None:
    """The ``key`` of a message's ``event_payload``: ``data.key`` in an envelope, or the bare
    ``key`` the previous release attached to its digests."""
    try:
        env = read(payload)
    except ValueError:
        return None
    key = env.data.get("key")
    return key if isinstance(key, str) else None
