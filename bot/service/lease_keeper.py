"""Keeps one outbox lease alive while its holder works: a heartbeat, and a renewal before a write.

A filing's lease is short (``FILING_LEASE_SECONDS``, a minute by default) so that a replica that
dies in the middle of an attempt leaves the item to another within about that long, not after
the slowest attempt imaginable. While the holder is alive a daemon thread renews the lease every
third of it; every renewal is a fenced write (``Outbox.renew_lease``), so once another worker
has taken the item over it fails, the keeper counts the lease as lost, and the holder writes
nothing more (its completion is fenced by the same token).

Before each write to Jira the holder renews once more (:meth:`LeaseKeeper.renew`): from then
on the lease runs a full period, and the tracker's whole call ends within its deadline, which
the composition root keeps shorter than the lease (``bot.bootstrap.jira_request_deadline``).
So no other worker can take the item over, and search for its marker, while a create is still
in flight; a holder cut off from the database (its heartbeat failing) never starts one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from types import TracebackType
from typing import Protocol

from bot.domain.ports import Fence

logger = logging.getLogger(__name__)


class Renewable(Protocol):
    """The part of the outbox a keeper needs."""

    def renew_lease(self, item_id: int, token: int, until: datetime) -> bool: ...


class LeaseKeeper:
    """Renews the lease *fence* for *lease* from *clock*'s now: every *every* seconds (default
    a third of the lease; 0: never, for tests that renew by hand) in a daemon thread while used
    as a context manager, and on demand with :meth:`renew`."""

    def __init__(
        self,
        store: Renewable,
        fence: Fence,
        lease: timedelta,
        clock: Callable[[], datetime],
        every: float | None = None,
    ) -> None:
        self.store = store
        self.fence = fence
        self.lease = lease
        self.clock = clock
        self.every = lease.total_seconds() / 3 if every is None else every
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def renew(self) -> bool:
        """Extends the lease to a full period from now; False once it was lost (then for good).
        Raises when the store cannot be reached: the lease may be running out, so the caller
        must not start anything it could not finish within what is left."""
        if self.lost:
            return False
        if not self.store.renew_lease(
            self.fence.item_id, self.fence.token, self.clock() + self.lease
        ):
            self.lost = True
            logger.warning(
                "outbox item %d: lease %d was taken over", self.fence.item_id, self.fence.token
            )
        return not self.lost

    def beat(self) -> None:
        """One heartbeat: renews, logging (once per outage) when the store does not answer."""
        try:
            self.renew()
        except Exception as exc:
            if not self._failing:
                logger.warning(
                    "outbox item %d: could not renew the lease (%s: %s); it runs out in %s "
                    "unless a later heartbeat gets through",
                    self.fence.item_id,
                    type(exc).__name__,
                    exc,
                    self.lease,
                )
            self._failing = True
        else:
            self._failing = False

    def __enter__(self) -> LeaseKeeper:
        if self.every <= 0:
            return self
        self._thread = threading.Thread(
            target=self._loop, name=f"ideabot-lease-{self.fence.item_id}", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stops the heartbeat and waits for a renewal under way, so that none lands after the
        holder's completion write (a late one would push a rescheduled item back)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.every) and not self.lost:
            self.beat()
