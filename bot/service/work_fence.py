"""Whether the work running in this thread is still this worker's, asked right before a side
effect that must happen once (a triage reply).

The inbox workers (``bot.workers``) run each event under a :class:`WorkFence` whose check renews
the event's lease, a write fenced on the owner: it fails once the event was handed to another
worker (a draining replica past its grace, a lease that ran out). A use case calls
:func:`still_ours` just before its side effect and, on False, does nothing; the worker then
leaves the event's outcome to the new holder. Outside a worker (the CLI, tests without one)
there is no fence and the work is always ours.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar


class WorkFence:
    """One piece of work's fence: *check* answers whether the work is still ours (it may raise
    when it cannot tell: then nothing may be done on a guess)."""

    def __init__(self, check: Callable[[], bool]) -> None:
        self._check = check
        self.abandoned = False  # a check said no: the work belongs to someone else now

    def still_ours(self) -> bool:
        if self.abandoned:
            return False
        if not self._check():
            self.abandoned = True
        return not self.abandoned


_current: ContextVar[WorkFence | None] = ContextVar("ideabot_work_fence", default=None)


@contextmanager
def fenced_by(fence: WorkFence) -> Iterator[WorkFence]:
    """Runs the block under *fence* (what :func:`still_ours` asks)."""
    token = _current.set(fence)
    try:
        yield fence
    finally:
        _current.reset(token)


def still_ours() -> bool:
    """True unless the work running here was handed to another worker meanwhile."""
    fence = _current.get()
    return True if fence is None else fence.still_ours()
