"""Group commit: the writes that concurrent threads ask for at the same moment go to the database
in one transaction.

Why: every Slack delivery is recorded in the inbox before it is acknowledged. Written one row per
transaction, twenty concurrent deliveries queue for SQLite's single writer (and, on PostgreSQL,
pay one WAL flush each): measured with ``bench/bench_ack.py`` the insert was the whole ack time,
p50 17 ms and p99 150-330 ms at 20 concurrent deliveries. Whoever arrives while a transaction is
being written waits for it and then writes, in one transaction, everything that arrived
meanwhile; one round trip and one commit serve the whole group.

Leader/follower, no extra thread: the caller that finds no flush running becomes the leader and
writes the pending items (its own among them); the others wait on a condition. A caller whose
deadline passes while its item is still pending takes it back and gets ``TimeoutError`` (nothing
was written); once its item is in a flush it waits for that flush's outcome, which is bounded by
the flush's own deadline, so the answer is never "unknown".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Slot(Generic[T, R]):
    item: T
    taken: bool = False  # in a flush: its outcome will come
    done: bool = False
    result: R | None = None
    error: BaseException | None = None


class GroupCommit(Generic[T, R]):
    """Writes items submitted concurrently in groups through *flush*.

    *flush* gets the items in arrival order and returns one result per item, in that order (it
    raises when the whole group failed: each caller of the group gets that error).
    """

    def __init__(self, flush: Callable[[Sequence[T]], Sequence[R]], *, max_group: int = 64) -> None:
        self._flush = flush
        self._max_group = max_group
        self._cond = threading.Condition()
        self._pending: list[_Slot[T, R]] = []
        self._flushing = False
        self.groups = 0  # flushes so far (for tests and benchmarks)
        self.items = 0

    def submit(self, item: T, timeout: float) -> R:
        """Writes *item* with whatever else is pending; its result. Raises TimeoutError if no
        flush took it within *timeout* seconds (it was then not written), or the flush's error."""
        slot: _Slot[T, R] = _Slot(item)
        deadline = time.monotonic() + timeout
        with self._cond:
            self._pending.append(slot)
        while True:
            with self._cond:
                while True:
                    if slot.done:
                        return self._outcome(slot)
                    if slot.taken:
                        # Another caller's flush has it: wait for its outcome (that flush is
                        # bounded by its own deadline).
                        self._cond.wait()
                        continue
                    if not self._flushing:
                        batch = self._take()
                        break
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        self._pending.remove(slot)
                        raise TimeoutError(
                            f"the database did not take the write within {timeout:g}s"
                        )
                    self._cond.wait(remaining)
            # Leader: writes the oldest pending group (its own item among them unless more than
            # max_group were waiting before it, in which case it loops and leads again).
            self._lead(batch)

    def _take(self) -> list[_Slot[T, R]]:
        # Under the lock: the oldest pending items, up to max_group, become this flush.
        batch = self._pending[: self._max_group]
        del self._pending[: self._max_group]
        for s in batch:
            s.taken = True
        self._flushing = True
        return batch

    def _lead(self, batch: list[_Slot[T, R]]) -> None:
        try:
            results = list(self._flush([s.item for s in batch]))
            if len(results) != len(batch):
                raise RuntimeError(f"group flush returned {len(results)} results for {len(batch)}")
            for s, r in zip(batch, results, strict=True):
                s.result = r
        except BaseException as exc:  # every caller of the group is told, then it propagates
            for s in batch:
                s.error = exc
        finally:
            with self._cond:
                self.groups += 1
                self.items += len(batch)
                for s in batch:
                    s.done = True
                self._flushing = False
                self._cond.notify_all()

    @staticmethod
    def _outcome(slot: _Slot[T, R]) -> R:
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]
