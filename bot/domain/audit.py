"""The ``ideabot`` audit trail: one event envelope per thing the bot did on someone's behalf.

Each record is an INFO line on the ``ideabot.audit`` logger whose ``event`` is the envelope
(``bot.domain.envelope``) of type ``audit.<what>``: ``audit.filing`` (a message filed, commented,
rejected or given up on), ``audit.digest`` (a digest posted). With ``LOG_FORMAT=json`` the line
carries the envelope as its ``event`` field, so a log subscription filter on
``{ $.logger = "ideabot.audit" }`` is the trail, and ``event.metadata.event_id`` de-duplicates
it (the same work audited twice — a retry, a replica — has the same id). The data holds ids,
keys and outcomes only: never message text or a person's name.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from bot.domain.envelope import Envelope, derived_id, wrap

AUDIT_LOGGER = "ideabot.audit"
FILING = "audit.filing"
DIGEST = "audit.digest"

_log = logging.getLogger(AUDIT_LOGGER)

Scalar = str | int | float | bool | None


def audit(
    type: str,
    subject: str,
    data: Mapping[str, Scalar],
    *,
    trace_id: str | None,
    now: datetime,
    by: str = "ideabot",
) -> Envelope:
    """Writes one audit record about *subject* (its idempotency key, e.g. ``channel:ts`` and
    outcome) and returns its envelope."""
    flat = {k: v for k, v in data.items() if v is not None}
    event = wrap(
        type,
        flat,
        event_id=derived_id(type, subject),
        trace_id=trace_id,
        published_by=by,
        now=now,
    )
    # logging reports its own trouble (Handler.handleError) without raising into the work.
    _log.info("%s %s %s", type, subject, event.event_id, extra={"event": event.to_dict()})
    return event
