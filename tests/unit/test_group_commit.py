"""GroupCommit: writes asked for while a flush runs go together in the next one; a caller whose
deadline passes before a flush takes its item gets TimeoutError and its item is never written; a
failed flush fails each of its callers, and the next group is written."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import pytest

from bot.adapters.group_commit import GroupCommit


class GatedFlush:
    """A flush that records its groups and, while *gate* is clear, holds the first one."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.groups: list[list[str]] = []
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.fail_on = fail_on

    def __call__(self, items: Sequence[str]) -> list[str]:
        self.groups.append(list(items))
        self.entered.set()
        assert self.gate.wait(10)
        if self.fail_on in items:
            raise OSError("database gone")
        return [f"ok:{i}" for i in items]


def wait_until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.001)


def submit_in_thread(
    gc: GroupCommit[str, str], item: str, results: dict[str, object], timeout: float = 10.0
) -> threading.Thread:
    def run() -> None:
        try:
            results[item] = gc.submit(item, timeout)
        except Exception as exc:  # the outcome under test
            results[item] = exc

    t = threading.Thread(target=run)
    t.start()
    return t


def behind_a_held_flush(
    gc: GroupCommit[str, str], flush: GatedFlush, names: str
) -> dict[str, object]:
    """Submits "a", holds its flush, submits *names* one after the other (each pending before
    the next comes, so the arrival order is known), releases the flush; each caller's outcome."""
    results: dict[str, object] = {}
    threads = [submit_in_thread(gc, "a", results)]
    assert flush.entered.wait(10)
    for name in names:
        threads.append(submit_in_thread(gc, name, results))
        wait_until(lambda n=name: n in [s.item for s in gc._pending])
    flush.gate.set()
    for t in threads:
        t.join(10)
    return results


def test_items_arriving_during_a_flush_are_written_together_in_arrival_order() -> None:
    flush = GatedFlush()
    gc: GroupCommit[str, str] = GroupCommit(flush)
    results = behind_a_held_flush(gc, flush, "bcdef")
    assert flush.groups == [["a"], ["b", "c", "d", "e", "f"]]
    assert results == {n: f"ok:{n}" for n in "abcdef"}
    assert (gc.groups, gc.items) == (2, 6)


def test_a_group_is_capped_and_the_rest_follows() -> None:
    flush = GatedFlush()
    gc: GroupCommit[str, str] = GroupCommit(flush, max_group=2)
    results = behind_a_held_flush(gc, flush, "bcd")
    assert flush.groups == [["a"], ["b", "c"], ["d"]]
    assert results == {n: f"ok:{n}" for n in "abcd"}


def test_a_caller_whose_deadline_passes_while_pending_is_told_and_its_item_never_written() -> None:
    flush = GatedFlush()
    gc: GroupCommit[str, str] = GroupCommit(flush)
    results: dict[str, object] = {}
    first = submit_in_thread(gc, "a", results)
    assert flush.entered.wait(10)
    late = submit_in_thread(gc, "late", results, timeout=0.05)
    late.join(10)
    assert isinstance(results["late"], TimeoutError)
    flush.gate.set()
    first.join(10)
    assert gc.submit("next", 10) == "ok:next"
    assert flush.groups == [["a"], ["next"]]  # "late" was taken back, not written later


def test_a_failed_flush_fails_each_caller_of_its_group_and_the_next_group_is_written() -> None:
    flush = GatedFlush(fail_on="c")
    gc: GroupCommit[str, str] = GroupCommit(flush)
    results = behind_a_held_flush(gc, flush, "bc")
    assert results["a"] == "ok:a"
    assert isinstance(results["b"], OSError) and isinstance(results["c"], OSError)
    assert gc.submit("d", 10) == "ok:d"


def test_a_flush_that_returns_the_wrong_number_of_results_fails_its_callers() -> None:
    gc: GroupCommit[str, str] = GroupCommit(lambda items: [])
    with pytest.raises(RuntimeError, match="0 results for 1"):
        gc.submit("a", 1)


def test_many_threads_at_once_each_get_their_own_result() -> None:
    gc: GroupCommit[int, int] = GroupCommit(lambda items: [i * 10 for i in items])
    barrier = threading.Barrier(32)
    out: dict[int, int] = {}

    def run(i: int) -> None:
        barrier.wait()
        out[i] = gc.submit(i, 10)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert out == {i: i * 10 for i in range(32)}
    assert gc.items == 32
