"""Bounded recurrence expansion: a calendar rule is walked lazily, within a cap and a budget.

One small VEVENT with ``RRULE:FREQ=SECONDLY`` would otherwise expand to 86,400 instances a day
(or without end): rules are walked one instance at a time from just before the day asked for,
and every instance counts against the feed's cap and time budget.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import recurring_ical_events
from dateutil.rrule import rrule
from recurring_ical_events.util import compare_greater, convert_to_datetime


class Cut(Exception):
    """The expansion of a feed stopped early; the message says why, in digest words."""


class Budget:
    """The work one feed may cost: a deadline for parse + expand and a number of events."""

    def __init__(self, clock: Callable[[], float], seconds: float, max_events: int) -> None:
        self.clock = clock
        self.seconds = seconds
        self.deadline = clock() + seconds
        self.max_events = max_events
        self.taken = 0

    def check(self) -> None:
        if self.clock() > self.deadline:
            raise Cut(f"cut after {self.seconds:g} s")

    def take(self) -> None:
        """Counts one more event of the day; the one past the cap cuts the feed."""
        if self.taken >= self.max_events:
            raise Cut(f"cut at {self.max_events} events")
        self.taken += 1
        self.check()


_STEP = {
    "HOURLY": timedelta(hours=1),
    "MINUTELY": timedelta(minutes=1),
    "SECONDLY": timedelta(seconds=1),
}
# Fast-forwarding stops this much short of the span, in wall-clock time of the rule, so that a
# DST jump between the rule's zone and the span's cannot make it overshoot an instance.
_FAST_FORWARD_MARGIN = timedelta(hours=2)


def _fast_forward(rule: rrule, dtstart: datetime, span_start: datetime) -> rrule:
    """*rule* restarted at its last instance slot shortly before *span_start*, not cached.

    dateutil walks a rule from DTSTART, one slot at a time: FREQ=SECONDLY from last year is
    tens of millions of steps before the day asked for. Slots of an HOURLY/MINUTELY/SECONDLY
    rule are DTSTART + k * INTERVAL units in wall-clock time (BY* parts filter slots or expand
    within one), so starting from a later slot gives the same instances after it. COUNT counts
    from DTSTART: such rules are walked as they are, under the feed's time budget.
    """
    parts = dict(
        p.split("=", 1) for p in str(rule).split("RRULE:", 1)[-1].strip().split(";") if "=" in p
    )
    freq = parts.get("FREQ", "")
    if "COUNT" in parts or freq not in _STEP:
        return rule.replace(cache=False)
    step = _STEP[freq] * int(parts.get("INTERVAL", "1"))
    target = span_start.astimezone(dtstart.tzinfo) if dtstart.tzinfo else span_start
    gap = target.replace(tzinfo=None) - dtstart.replace(tzinfo=None) - _FAST_FORWARD_MARGIN
    if gap <= step:
        return rule.replace(cache=False)
    return rule.replace(dtstart=dtstart + (gap // step) * step, cache=False)


class BoundedSeries(recurring_ical_events.Series):
    """A series whose recurrence rules are walked lazily, fast-forwarded and under a budget.

    recurring_ical_events asks dateutil for ``rule.between(start, stop)``: a list built by
    walking the rule from DTSTART with its cache on. That is what let one SECONDLY event fill
    a gigabyte. Only the walk is replaced; overrides, EXDATE and RDATE stay the library's.
    """

    class RecurrenceRules(recurring_ical_events.Series.RecurrenceRules):
        budget: Budget | None = None

        def rrule_between(self, span_start: Any, span_stop: Any) -> Iterator[Any]:
            start = convert_to_datetime(span_start, self.tzinfo)
            stop = convert_to_datetime(span_stop, self.tzinfo)
            for rule in self.rrules:
                # Checked per rule too: dateutil may search long for an instance that never comes
                # (BYDAY=MO on a rule that only lands on Saturdays ends in the year 9999).
                if self.budget is not None:
                    self.budget.check()
                until = rule.until  # set by recurring_ical_events, as UNTIL was written
                walk = _fast_forward(rule, self.start, start) if isinstance(rule, rrule) else rule
                for instance in walk:
                    if self.budget is not None:
                        self.budget.check()
                    if instance > stop:
                        break
                    if instance >= start and (
                        until is None or not compare_greater(instance, until)
                    ):
                        yield instance
