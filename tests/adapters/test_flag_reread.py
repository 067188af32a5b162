"""A flag file re-read is atomic: readers never wait for it and never see half a table."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.flagd import FlagDefinition, evaluate
from bot.adapters.flags_openfeature import FlagFile
from bot.domain.flags import FLAG_KEYS

ONOFF = {"on": True, "off": False}


def write(path: Path, default: str) -> None:
    """Every flag of the bot set to *default*, written aside and renamed in."""
    doc = {
        "flags": {
            key: {"state": "ENABLED", "variants": ONOFF, "defaultVariant": default}
            for key in FLAG_KEYS
        }
    }
    tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(doc), encoding="utf-8")
    os.replace(tmp, path)


def values(table: Mapping[str, FlagDefinition]) -> set[Any]:
    return {evaluate(table[key], None, None).value for key in FLAG_KEYS}


class Ticker:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class GatedFlagFile(FlagFile):
    """A flag file whose re-read (after the first read) waits until the test lets it finish,
    so a reader can ask while it is under way."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        self.entered = threading.Event()
        self.finish = threading.Event()
        self.gated = False
        super().__init__(*args, **kw)

    def _read(self) -> dict[str, FlagDefinition]:
        if self.gated:
            self.entered.set()
            assert self.finish.wait(30), "the test never let the re-read finish"
        return super()._read()


def test_a_reader_does_not_wait_for_a_re_read_and_gets_the_whole_previous_table(
    tmp_path: Path,
) -> None:
    path = tmp_path / "flags.json"
    write(path, "off")
    tick = Ticker()
    source = GatedFlagFile(path, check_seconds=5, monotonic=tick)
    before = source.current()
    write(path, "on")
    source.gated = True
    tick.now += 5
    got: list[Mapping[str, FlagDefinition]] = []
    rereader = threading.Thread(target=lambda: got.append(source.current()))
    rereader.start()
    try:
        assert source.entered.wait(30)
        # The re-read is under way (and holds the lock): asking now answers at once, from the
        # table in force, complete.
        during = source.current()
        assert during is before and values(during) == {False} and len(during) == len(FLAG_KEYS)
    finally:
        source.finish.set()
        rereader.join(30)
    assert not rereader.is_alive()
    (after,) = got
    assert values(after) == {True} and source.current() is after and source.reloads == 1


def test_the_table_in_force_is_read_only(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    write(path, "off")
    table = FlagFile(path).current()
    with pytest.raises(TypeError):
        table["filing"] = table["triage-replies"]  # type: ignore[index]


def test_readers_racing_many_re_reads_only_ever_see_whole_tables(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    write(path, "off")
    source = FlagFile(path, check_seconds=0)  # every lookup may re-read
    seen: list[set[Any]] = []
    written = threading.Event()
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            n = 0
            # At least 400 lookups, and on until every write is done (then one more re-read).
            while n < 400 or not written.is_set():
                n += 1
                table = source.current()
                seen.append(values(table))
                if len(table) != len(FLAG_KEYS):
                    seen.append({"short"})
        except BaseException as exc:  # reported below
            errors.append(exc)

    def writer() -> None:
        try:
            for i in range(150):  # ends on "on": the last table differs from the first
                write(path, "on" if i % 2 else "off")
        finally:
            written.set()

    threads = [threading.Thread(target=reader) for _ in range(4)]
    changer = threading.Thread(target=writer)
    for t in (*threads, changer):
        t.start()
    changer.join(120)
    for t in threads:
        t.join(120)
    assert not errors and not any(t.is_alive() for t in (*threads, changer))
    assert len(seen) >= 1600
    assert all(v in ({True}, {False}) for v in seen), [v for v in seen if len(v) != 1][:3]
    assert source.reloads > 0 and values(source.current()) == {True}
