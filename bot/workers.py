"""Background work: the inbox workers (chat events, in separate pools) and the outbox worker.

``InboxWorkers`` runs what the inbox (``bot.domain.ports.Inbox``) holds. An event arrives through
:meth:`InboxWorkers.record` (the endpoint calls it before acknowledging): recorded and, when its
pool has room, claimed by this process in the same insert and queued at once. Each pool has its
own threads and a bounded queue, so a slow Jira (the filing pool) never delays a triage reply
(the triage pool). What does not fit, and what another replica left behind (its lease ran out, or
it released its claims when it stopped), is claimed by the poller on a later pass, here or on any
replica. Leases are short and renewed while the work runs, so a crashed replica's events are
taken over within about a lease.

Draining (SIGTERM): :meth:`InboxWorkers.begin_drain` stops taking work and offers what is queued
here but not started to the other replicas (its leases expire at once); :meth:`InboxWorkers.stop`
keeps working (on what nobody else took) until a deadline, then releases whatever is left; what
is still running then keeps its lease for ``HANDOFF`` more (a Slack post under way lands first)
and posts nothing more: each event runs under a work fence (``bot.service.work_fence``) that the
triage reply asks right before posting, and that says no once the deadline passed or the event
was taken over.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.domain.ports import Inbox, InboxEvent
from bot.service.filing import Filer
from bot.service.work_fence import WorkFence, fenced_by

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Handler = Callable[[InboxEvent], None]

# Renewed every third of it while the event is queued or running: a replica that dies leaves its
# events to the others within about this long.
INBOX_LEASE = timedelta(seconds=30)
# How long an event still running when a drain's deadline passes stays with its replica: enough
# for a Slack post under way to land (so its reply is found), short next to a lease.
HANDOFF = timedelta(seconds=10)
MAX_ATTEMPTS = 5  # then the event is kept as "failed" (with its error) and not tried again


@dataclass(frozen=True)
class PoolSpec:
    """One work pool: its name (an inbox event's ``pool``), its threads, its queue's bound."""

    name: str
    threads: int
    queue_size: int


# Triage is CPU-bound (the embedding model) on a 2-core machine: two threads keep the request
# threads responsive. Filing mostly waits on Jira: four threads.
TRIAGE = PoolSpec("triage", threads=2, queue_size=100)
FILING = PoolSpec("filing", threads=4, queue_size=100)
DEFAULT_POOLS = (TRIAGE, FILING)


def retry_delay(attempts: int) -> timedelta:
    """The wait before retrying an event that failed *attempts* times: 5 s, 20 s, 80 s, 5 min."""
    return timedelta(seconds=min(300, 5 * 4 ** max(0, attempts - 1)))


def process_owner() -> str:
    """A name for this process's claims that no other process (or restart) shares."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class _Pool:
    def __init__(self, spec: PoolSpec) -> None:
        self.spec = spec
        self.queue: queue.Queue[InboxEvent | None] = queue.Queue(spec.queue_size)
        self.threads: list[threading.Thread] = []
        self.running: dict[str, InboxEvent] = {}
        self.overflow = 0  # events left in the inbox since the queue was last found full
        self.reserved = 0  # slots held for events being recorded right now


class InboxWorkers:
    """The inbox's workers in this process; see the module docstring.

    *handler* processes one event (raises when it failed); it can be bound later with
    :meth:`bind`, as the Slack app that replays events is built around these workers.
    """

    def __init__(
        self,
        store: Inbox,
        handler: Handler | None = None,
        *,
        pools: Sequence[PoolSpec] = DEFAULT_POOLS,
        clock: Clock | None = None,
        owner: str | None = None,
        lease: timedelta = INBOX_LEASE,
        poll_interval: float = 1.0,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.store = store
        self.handler = handler
        self.clock: Clock = clock or (lambda: datetime.now(UTC))
        self.owner = owner or process_owner()
        self.lease = lease
        self.poll_interval = poll_interval
        self.max_attempts = max_attempts
        self.pools = {spec.name: _Pool(spec) for spec in pools}
        self._lock = threading.Condition()
        self._held: dict[str, InboxEvent] = {}  # claimed here: queued or running
        self._unsettled: dict[str, Callable[[], bool]] = {}  # outcomes the store did not take yet
        self._handed_back: set[str] = set()  # queued when draining began; leases expired
        self._accepting = True
        self._workers_stop = threading.Event()  # workers leave once their queue is empty
        self._cut = threading.Event()  # the drain deadline passed: start nothing more
        self._poller_stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._renewed_at = time.monotonic()
        self._store_down = False

    def bind(self, handler: Handler) -> None:
        """Sets the function that processes one event."""
        self.handler = handler

    # ------------------------------------------------------------------ intake

    def pool_for(self, name: str) -> str:
        """*name* if it is one of the pools, else the last pool (unknown work is not dropped)."""
        return name if name in self.pools else list(self.pools)[-1]

    def record(self, event_id: str, pool: str, envelope: dict[str, Any]) -> bool:
        """Records one delivery before it is acknowledged; False for a redelivery.

        Claimed and queued here when the pool has room and the process is not draining; else
        left in the inbox for a later pass (here or on another replica). Raises when the store
        cannot record it: the caller must then not acknowledge it.
        """
        pool = self.pool_for(pool)
        now = self.clock()
        target = self.pools[pool]
        # A slot is reserved before the insert, so that an event claimed here always fits in the
        # queue: handing it back instead would be a second write on the acknowledgement's path.
        take = self._reserve(target)
        until = now + self.lease if take else None
        owner = self.owner if take else None
        try:
            new = self.store.record_event(
                event_id, pool, envelope, now, owner=owner, lease_until=until
            )
        except BaseException:
            if take:
                self._unreserve(target)
            raise
        if not new:
            if take:
                self._unreserve(target)
            logger.info("inbox: %s was delivered again; already recorded", event_id)
            return False
        if not take:
            if not self._accepting:
                logger.info("inbox: draining; %s stays in the inbox for another replica", event_id)
            else:
                self._overflowed(target, event_id)
            return True
        event = InboxEvent(
            event_id=event_id,
            pool=pool,
            envelope=envelope,
            state="pending",
            attempts=0,
            received=now,
            next_at=now,
            owner=self.owner,
            lease_until=until,
        )
        with self._lock:
            target.reserved -= 1
            target.queue.put_nowait(event)  # the reserved slot: never full
            self._held[event_id] = event
        return True

    def _reserve(self, pool: _Pool) -> bool:
        with self._lock:
            if not self._accepting or pool.queue.qsize() + pool.reserved >= pool.spec.queue_size:
                return False
            pool.reserved += 1
            return True

    def _unreserve(self, pool: _Pool) -> None:
        with self._lock:
            pool.reserved -= 1

    def _overflowed(self, pool: _Pool, event_id: str) -> None:
        # One warning when a pool's queue fills up (and one line when it drains, in poll_once),
        # not one per event of a burst.
        pool.overflow += 1
        if pool.overflow == 1:
            logger.warning(
                "inbox: %s queue full (%d waiting): %s and what follows stay in the inbox for a "
                "later pass",
                pool.spec.name,
                pool.queue.qsize(),
                event_id,
            )

    def _offer(self, event: InboxEvent) -> bool:
        pool = self.pools[event.pool]
        with self._lock:
            if not self._accepting:
                return False
            try:
                pool.queue.put_nowait(event)
            except queue.Full:
                self._overflowed(pool, event.event_id)
                return False
            self._held[event.event_id] = event
            return True

    # ------------------------------------------------------------------ lifecycle

    def start(self, *, poll: bool = True) -> InboxWorkers:
        """Starts each pool's threads and (with *poll*) the poller that claims what is due."""
        if self.handler is None:
            raise RuntimeError("InboxWorkers.start() before a handler was bound")
        for name, pool in self.pools.items():
            if pool.threads:
                continue
            for i in range(pool.spec.threads):
                t = threading.Thread(
                    target=self._work, args=(pool,), name=f"ideabot-{name}-{i}", daemon=True
                )
                t.start()
                pool.threads.append(t)
        if poll and self._poller is None:
            self._poller = threading.Thread(
                target=self._poll_loop, name="ideabot-inbox-poller", daemon=True
            )
            self._poller.start()
        return self

    @property
    def accepting(self) -> bool:
        """False once draining began."""
        return self._accepting

    def pause(self) -> None:
        """Stops taking work (no I/O: safe in a signal handler); deliveries are still recorded,
        unclaimed, for the other replicas."""
        self._accepting = False

    def begin_drain(self) -> int:
        """Stops taking work and hands back the events queued here that have not started: their
        leases expire now, so another replica's next pass may take them. What nobody takes is
        still done here (a worker renews the lease first, which fails if another replica took
        it), so a lone replica finishes its queue within the grace. Returns how many."""
        self.pause()
        with self._lock:
            queued = [
                e.event_id
                for p in self.pools.values()
                for e in list(p.queue.queue)
                if e is not None
            ]
            self._handed_back.update(queued)
        if queued:
            try:
                self.store.renew_events(queued, self.owner, self.clock())
                logger.info(
                    "inbox: draining; %d queued events offered to other replicas", len(queued)
                )
            except Exception as exc:  # they stay ours until done here or their leases run out
                logger.warning("inbox: could not hand back queued events: %s", type(exc).__name__)
        return len(queued)

    def stop(self, deadline: float | None = None) -> bool:
        """Drains: running and queued work gets until *deadline* (``time.monotonic()``; default
        10 s from now); then every claim still held here is released. True when nothing was cut
        short."""
        deadline = time.monotonic() + 10 if deadline is None else deadline
        self.begin_drain()
        self._workers_stop.set()
        for pool in self.pools.values():
            for t in pool.threads:
                t.join(max(0.0, deadline - time.monotonic()))
        self._cut.set()
        self._poller_stop.set()
        if self._poller is not None:
            self._poller.join(max(0.0, deadline - time.monotonic()))
        self._settle_pending()
        with self._lock:
            cut_short = [e for p in self.pools.values() for e in p.running]
            unsettled = list(self._unsettled)
            left = [e.event_id for p in self.pools.values() for e in list(p.queue.queue) if e]
        if cut_short or left:
            logger.warning(
                "inbox: %d events still running at the deadline (%s) and %d not started; "
                "handing them back",
                len(cut_short),
                ", ".join(cut_short[:10]),
                len(left),
            )
        if unsettled:
            logger.warning("inbox: could not record the outcome of %s", ", ".join(unsettled[:10]))
        try:
            if cut_short:
                # Not released at once: one may be inside its Slack post, which lands within
                # HANDOFF; the next holder then finds that reply (``find_triage_reply``) instead
                # of posting a second one. Past the cut nothing here posts (``_holds``).
                self.store.renew_events(cut_short, self.owner, self.clock() + HANDOFF)
                with self._lock:
                    rest = [e for e in self._held if e not in cut_short]
                if rest:
                    self.store.release_events(self.owner, rest)
            else:
                self.store.release_events(self.owner)
        except Exception as exc:  # their leases run out instead
            logger.warning("inbox: could not release claims: %s", type(exc).__name__)
        for pool in self.pools.values():
            pool.threads = [t for t in pool.threads if t.is_alive()]
        self._poller = None
        return not cut_short and not unsettled and not left

    # ------------------------------------------------------------------ for tests and tools

    def busy(self) -> int:
        """Events queued or running here."""
        with self._lock:
            return len(self._held)

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Blocks until nothing is queued or running here (raises TimeoutError after *timeout*)."""
        end = time.monotonic() + timeout
        with self._lock:
            while self._held:
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"inbox workers still busy with {sorted(self._held)}")
                self._lock.wait(min(left, 0.1))

    def run_once(self, now: datetime | None = None) -> int:
        """Claims what is due at *now* in every pool and processes it in the calling thread
        (a replica's pass, synchronously); returns how many events it processed."""
        now = now or self.clock()
        done = 0
        for name in self.pools:
            for event in self.store.claim_events(name, self.owner, now, now + self.lease, 100):
                with self._lock:
                    self._held[event.event_id] = event
                self._run(event)
                done += 1
        return done

    def poll_once(self) -> int:
        """One poller pass: records outcomes the store missed, renews leases, and claims due
        events for the room each pool has; returns how many it queued."""
        self._settle_pending()
        now = self.clock()
        if time.monotonic() - self._renewed_at >= self.lease.total_seconds() / 3:
            with self._lock:
                held = [e for e in self._held if e not in self._handed_back]
            if held:
                self.store.renew_events(held, self.owner, now + self.lease)
            self._renewed_at = time.monotonic()
        queued = 0
        for name, pool in self.pools.items():
            room = pool.spec.queue_size - pool.queue.qsize() - pool.reserved
            if room <= 0 or not self._accepting:
                continue
            taken = 0
            for event in self.store.claim_events(name, self.owner, now, now + self.lease, room):
                if self._offer(event):
                    taken += 1
                else:
                    self._release([event.event_id])
            if pool.overflow and room > taken and not pool.queue.full():
                # Fewer due events than room: nothing of the overflow is left waiting.
                logger.info(
                    "inbox: %s queue has room again (%d events had to wait in the inbox)",
                    name,
                    pool.overflow,
                )
                pool.overflow = 0
            queued += taken
        return queued

    # ------------------------------------------------------------------ plumbing

    def _poll_loop(self) -> None:
        # Runs until the very end of a drain: running work keeps its leases renewed.
        while not self._poller_stop.wait(self.poll_interval):
            try:
                self.poll_once()
                if self._store_down:
                    logger.info("inbox: the store answers again")
                self._store_down = False
            except Exception as exc:
                if not self._store_down:  # once per outage, not every second
                    logger.warning("inbox: poll failed: %s: %s", type(exc).__name__, exc)
                self._store_down = True

    def _work(self, pool: _Pool) -> None:
        while not self._cut.is_set():
            try:
                event = pool.queue.get(timeout=0.2)
            except queue.Empty:
                if self._workers_stop.is_set():
                    return
                continue
            if event is not None:
                self._run(event)

    def _take_back(self, event: InboxEvent) -> bool:
        """For an event handed back while draining: True if it is still ours to do."""
        if self._cut.is_set():
            return False
        try:
            ours = self.store.renew_events([event.event_id], self.owner, self.clock() + self.lease)
        except Exception:
            ours = 0
        with self._lock:
            self._handed_back.discard(event.event_id)
        return ours == 1

    def _run(self, event: InboxEvent) -> None:
        pool = self.pools[event.pool]
        if event.event_id in self._handed_back and not self._take_back(event):
            with self._lock:  # another replica took it (or the drain is over)
                self._held.pop(event.event_id, None)
                self._lock.notify_all()
            return
        with self._lock:
            pool.running[event.event_id] = event
        started = time.monotonic()
        fence = WorkFence(lambda: self._holds(event.event_id))
        try:
            assert self.handler is not None
            with fenced_by(fence):
                self.handler(event)
        except Exception as exc:
            self._failed(event, exc)
        else:
            if fence.abandoned:
                # It stopped short of its side effect: the event's new holder does it.
                logger.info(
                    "inbox: %s was handed over while it ran; not settled here", event.event_id
                )
                return
            logger.debug(
                "inbox: %s done in %.0f ms (trace %s)",
                event.event_id,
                (time.monotonic() - started) * 1000,
                event.trace_id,
            )
            self._settle(
                event.event_id,
                lambda: self.store.finish_event(event.event_id, self.owner, self.clock()),
            )
        finally:
            with self._lock:
                pool.running.pop(event.event_id, None)
                if event.event_id not in self._unsettled:
                    self._held.pop(event.event_id, None)
                self._lock.notify_all()

    def _holds(self, event_id: str) -> bool:
        """The work fence of a running event (``bot.service.work_fence``): False once the drain
        deadline passed or another worker holds it; renews the lease, so that what follows (one
        Slack post) has a whole lease before anyone else could take the event over."""
        if self._cut.is_set():
            return False
        return self.store.renew_events([event_id], self.owner, self.clock() + self.lease) == 1

    def _failed(self, event: InboxEvent, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        attempts = event.attempts + 1
        if attempts >= self.max_attempts:
            logger.error(
                "inbox: %s failed %d times, giving up (trace %s): %s",
                event.event_id,
                attempts,
                event.trace_id,
                error[:300],
            )
            self._settle(
                event.event_id,
                lambda: self.store.fail_event(event.event_id, self.owner, self.clock(), error),
            )
            return
        at = self.clock() + retry_delay(attempts)
        logger.warning(
            "inbox: %s failed (attempt %d, trace %s), retrying at %s: %s",
            event.event_id,
            attempts,
            event.trace_id,
            at.isoformat(timespec="seconds"),
            error[:300],
        )
        self._settle(
            event.event_id, lambda: self.store.retry_event(event.event_id, self.owner, at, error)
        )

    def _settle(self, event_id: str, write: Callable[[], bool]) -> None:
        try:
            if not write():
                logger.warning("inbox: %s was taken over before it was settled here", event_id)
        except Exception as exc:
            # The store is down: keep the lease (renewed) and write the outcome on a later pass,
            # rather than let another replica do the work a second time.
            logger.warning(
                "inbox: could not record the outcome of %s (%s); will retry",
                event_id,
                type(exc).__name__,
            )
            with self._lock:
                self._unsettled[event_id] = write

    def _settle_pending(self) -> None:
        with self._lock:
            pending = list(self._unsettled.items())
        for event_id, write in pending:
            try:
                write()
            except Exception:
                continue
            with self._lock:
                self._unsettled.pop(event_id, None)
                self._held.pop(event_id, None)
                self._lock.notify_all()

    def _release(self, event_ids: list[str]) -> None:
        try:
            self.store.release_events(self.owner, event_ids)
        except Exception as exc:  # their leases run out instead
            logger.warning("inbox: could not release %s: %s", event_ids[:10], type(exc).__name__)


class OutboxWorker:
    """Polls the outbox in a daemon thread; ``run_once(now)`` does one pass (for tests).

    One item at a time, so that stopping waits for the current Jira attempt only.
    """

    def __init__(
        self,
        filer: Filer,
        poll_interval: float = 2.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.filer = filer
        self.poll_interval = poll_interval
        self.clock = clock or filer.clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self, now: datetime | None = None) -> int:
        """Processes what is due at *now* (default: the filer's clock)."""
        return self.filer.run_due(now or self.clock())

    def start(self) -> None:
        """Starts the polling thread (idempotent); it picks up work left by a previous run."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="ideabot-outbox", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Asks the thread to stop after its current item, without waiting."""
        self._stop.set()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stops the thread after its current item; False if it was still busy at *timeout*."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                while not self._stop.is_set() and self.filer.run_due(self.clock(), limit=1):
                    pass
            except Exception:
                logger.exception("outbox pass failed")
            self._stop.wait(self.poll_interval)
