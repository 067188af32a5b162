"""Feature flags end to end: a flagd flag file read by the OpenFeature adapter, the real Bolt app
on waitress behind signed requests, FakeSlack and FakeJira (``tests.fakes.wiring.Rig``).

The file is rewritten while the bot runs; the adapter's re-read clock is moved by hand, so the
flip is seen exactly when the check interval has passed and never by sleeping.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.flags_openfeature import OpenFeatureFlags
from bot.domain.models import Analysis, Post, Triage
from tests.fakes.wiring import KeywordAnalyzer, Rig

CHECK_SECONDS = 5.0


class Monotonic:
    """The adapter's clock for re-reading the file, moved by the test."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def targeted(default: str, channels: list[str], there: str) -> dict[str, Any]:
    """A boolean flag: *there* ("on"/"off") in *channels*, *default* elsewhere."""
    return {
        "state": "ENABLED",
        "variants": {"on": True, "off": False},
        "defaultVariant": default,
        "targeting": {"if": [{"in": [{"var": "channel"}, channels]}, there, None]},
    }


def write_flags(path: Path, flags: dict[str, Any]) -> None:
    # Replaced atomically, as git checkout or a ConfigMap update does.
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"flags": flags}), encoding="utf-8")
    os.replace(tmp, path)


class LlmStandIn(KeywordAnalyzer):
    """Stands for the LLM analyzer: same verdicts, its own name in the stored triage."""

    name = "llm"

    def analyze(self, post: Post) -> Analysis:
        return super().analyze(post).model_copy(update={"analyzer": self.name})


@pytest.fixture
def clock() -> Monotonic:
    return Monotonic()


@pytest.fixture
def flag_file(tmp_path: Path) -> Path:
    path = tmp_path / "flags.json"
    write_flags(path, {})
    return path


@pytest.fixture
def flags(flag_file: Path, clock: Monotonic) -> Iterator[OpenFeatureFlags]:
    f = OpenFeatureFlags(flag_file, CHECK_SECONDS, monotonic=clock)
    yield f
    f.close()


def flip(path: Path, clock: Monotonic, flags: OpenFeatureFlags, rules: dict[str, Any]) -> None:
    """Rewrites the file and lets the check interval pass.

    The first question after that re-reads the file; a delivery asking at the same moment on
    another worker thread still gets the previous flags (the adapter does not block for the
    read). Asked here first, so every delivery the test sends next sees the new file.
    """
    write_flags(path, rules)
    clock.now += CHECK_SECONDS
    flags.enabled("filing")


def ephemerals(rig: Rig, user: str) -> list[str]:
    return [
        str(p.get("text"))
        for p in rig.slack.calls_to("chat.postEphemeral")
        if p.get("user") == user
    ]


def test_filing_switched_off_in_one_channel_and_back_on_while_the_bot_runs(
    tmp_path: Path, flag_file: Path, clock: Monotonic, flags: OpenFeatureFlags
) -> None:
    rig = Rig(tmp_path, channels=("CIDEAS01", "CIDEAS02"), flags=flags)
    try:
        ev = rig.message("Add dark mode to the dashboard")
        other = rig.message("Export the report as CSV", channel="CIDEAS02")
        rig.send_event(ev)
        rig.send_event(other)
        rig.wait_idle()

        write_flags(flag_file, {"filing": targeted("on", ["CIDEAS01"], "off")})
        # Not re-read before the check interval has passed: the old flags are still in force.
        clock.now += CHECK_SECONDS - 0.1
        assert flags.enabled("filing", "CIDEAS01")
        flip(flag_file, clock, flags, {"filing": targeted("on", ["CIDEAS01"], "off")})
        assert not flags.enabled("filing", "CIDEAS01")

        rig.send_event(rig.reaction("CIDEAS01", ev["ts"]))
        rig.send_event(rig.reaction("CIDEAS02", other["ts"]))
        rig.wait_idle()
        (issue,) = rig.jira.issues.values()  # only the other channel's post was filed
        assert "Export the report as CSV" in issue["fields"]["description"]
        assert rig.store.get_filing("CIDEAS01", ev["ts"]) is None
        assert any("switched off" in t for t in ephemerals(rig, "UBOB"))

        flip(flag_file, clock, flags, {"filing": targeted("on", ["CIDEAS01"], "on")})
        rig.send_event(rig.reaction("CIDEAS01", ev["ts"], user="UCAROL"))
        rig.wait_idle()
        assert len(rig.jira.issues) == 2
        filing = rig.store.get_filing("CIDEAS01", ev["ts"])
        assert filing is not None and filing.state == "filed"
        assert flags.file.reloads == 2
    finally:
        rig.close()


def test_replies_and_the_llm_targeted_by_channel(
    tmp_path: Path, flag_file: Path, clock: Monotonic, flags: OpenFeatureFlags
) -> None:
    rules = {
        "triage-replies": targeted("on", ["CIDEAS02"], "off"),
        "llm-analysis": targeted("off", ["CIDEAS01"], "on"),  # the LLM only in CIDEAS01
    }
    flip(flag_file, clock, flags, rules)
    rig = Rig(
        tmp_path,
        channels=("CIDEAS01", "CIDEAS02"),
        flags=flags,
        analyzer=LlmStandIn(),
        offline_analyzer=KeywordAnalyzer(),
    )
    try:
        one = rig.message("Add dark mode to the dashboard")
        two = rig.message("Add dark mode to the dashboard", channel="CIDEAS02")
        rig.send_event(one)
        rig.send_event(two)
        rig.wait_idle()
        assert len(rig.slack.thread_replies("CIDEAS01", one["ts"])) == 1
        assert rig.slack.thread_replies("CIDEAS02", two["ts"]) == []

        def analyzer(channel: str, ts: str) -> str:
            stored = rig.store.get_post(channel, ts)
            assert stored is not None and stored.kind == "idea" and stored.triage_json
            return Triage.from_stored(stored.triage_json).analyzer  # type: ignore[union-attr]

        assert analyzer("CIDEAS01", one["ts"]) == "llm"
        # Recorded and triaged (offline) in CIDEAS02, just not answered.
        assert analyzer("CIDEAS02", two["ts"]) == "keyword"
        assert rig.store.get_post("CIDEAS02", two["ts"]).reply_ts is None  # type: ignore[union-attr]

        # Replies switched back on there: the next post is answered, no restart.
        flip(
            flags=flags,
            path=flag_file,
            clock=clock,
            rules={"llm-analysis": targeted("off", ["CIDEAS01"], "on")},
        )
        three = rig.message("Show build times per branch", channel="CIDEAS02")
        rig.send_event(three)
        rig.wait_idle()
        assert len(rig.slack.thread_replies("CIDEAS02", three["ts"])) == 1
    finally:
        rig.close()
