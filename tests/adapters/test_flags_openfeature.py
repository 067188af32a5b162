"""Feature flags through the real OpenFeature SDK, from flag files on disk, re-read on change."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.flags_openfeature import OpenFeatureFlags
from bot.bootstrap import build_flags
from bot.config import ConfigError, Settings
from bot.domain.flags import DEFAULT_OFF, FLAG_KEYS, AllOn, DescribedFlags, Flags

ROOT = Path(__file__).resolve().parents[2]
ONOFF = {"on": True, "off": False}


class Ticker:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def write(path: Path, flags: dict[str, Any]) -> None:
    # Written to a temporary name and renamed, like an editor or a deploy would.
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"flags": flags}), encoding="utf-8")
    os.replace(tmp, path)


def static(default: str) -> dict[str, Any]:
    return {"state": "ENABLED", "variants": ONOFF, "defaultVariant": default}


@pytest.fixture
def flags_file(tmp_path: Path) -> Path:
    path = tmp_path / "flags.json"
    write(path, {"filing": static("off")})
    return path


def test_no_flag_file_means_everything_on(tmp_path: Path) -> None:
    flags = build_flags(Settings(_env_file=None))  # type: ignore[call-arg]
    assert isinstance(flags, AllOn)
    assert all(flags.enabled(k, "C1", "U1") for k in FLAG_KEYS if k not in DEFAULT_OFF)
    # Off until a flag file switches it on: every reply would otherwise reach Jira unasked.
    assert not flags.enabled("thread-comments", "C1", "U1")


def test_values_from_the_file_and_on_for_flags_it_does_not_define(flags_file: Path) -> None:
    flags: Flags = OpenFeatureFlags(flags_file)
    assert flags.enabled("filing") is False
    assert flags.enabled("triage-replies", "C1", "U1") is True
    assert flags.enabled("thread-comments", "C1", "U1") is False  # off by default


def test_targeting_on_channel_and_user_through_openfeature(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    rule = {
        "if": [
            {"in": [{"var": "channel"}, ["CPILOT"]]},
            "on",
            {"fractional": [["on", 10], ["off", 90]]},
        ]
    }
    write(path, {"filing": {**static("off"), "targeting": rule}})
    flags = OpenFeatureFlags(path)
    assert flags.enabled("filing", channel="CPILOT", user="U1")
    assert not flags.enabled("filing", channel="COTHER", user="U0000")
    assert flags.enabled("filing", channel="COTHER", user="U0012")  # in flagd's 10 % bucket
    share = sum(flags.enabled("filing", "COTHER", f"U{i:06d}") for i in range(5000)) / 5000
    assert 0.08 < share < 0.12


def test_a_change_is_picked_up_without_a_restart_after_the_check_interval(
    flags_file: Path,
) -> None:
    tick = Ticker()
    flags = OpenFeatureFlags(flags_file, check_seconds=5, monotonic=tick)
    assert not flags.enabled("filing")
    write(flags_file, {"filing": static("on")})
    tick.now += 4.9
    assert not flags.enabled("filing")  # not looked at yet: cheap
    tick.now += 0.1
    assert flags.enabled("filing")
    assert flags.file.reloads == 1
    tick.now += 60
    assert flags.enabled("filing") and flags.file.reloads == 1  # unchanged file: not re-read


def test_a_bad_file_later_is_a_warning_and_the_last_good_flags_stay(
    flags_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tick = Ticker()
    flags = OpenFeatureFlags(flags_file, check_seconds=1, monotonic=tick)
    flags_file.write_text('{"flags": {"filing": {"state": "ENABLED", "variants": ', "utf-8")
    with caplog.at_level(logging.WARNING, logger="bot.adapters.flags_openfeature"):
        for _ in range(3):
            tick.now += 2
            assert flags.enabled("filing") is False
    warnings = [r for r in caplog.records if "keeping the last good flags" in r.getMessage()]
    assert len(warnings) == 1  # once per version of the file, not on every check
    assert "not valid JSON" in warnings[0].getMessage()
    write(flags_file, {"filing": static("on")})
    tick.now += 2
    assert flags.enabled("filing") is True


def test_a_deleted_file_keeps_the_last_good_flags(
    flags_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tick = Ticker()
    flags = OpenFeatureFlags(flags_file, check_seconds=1, monotonic=tick)
    flags_file.unlink()
    tick.now += 2
    with caplog.at_level(logging.WARNING):
        assert flags.enabled("filing") is False
    assert "cannot read it" in caplog.text


def test_a_bad_file_at_start_up_is_one_config_line(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps({"flags": {"filing": {**static("on"), "targeting": {"<": [1, 2]}}}}))
    settings = Settings(_env_file=None, feature_flags_file=path)  # type: ignore[call-arg]
    with pytest.raises(ConfigError) as err:
        build_flags(settings)
    msg = str(err.value)
    assert msg.startswith("FEATURE_FLAGS_FILE: ") and "'<' is not supported" in msg
    assert str(path) in msg and "\n" not in msg
    missing = Settings(_env_file=None, feature_flags_file=tmp_path / "nope.json")  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match=r"FEATURE_FLAGS_FILE: .*nope\.json: cannot read it"):
        build_flags(missing)


def test_an_evaluation_error_answers_on_and_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "flags.json"
    # The rule yields true/false, but the variants are on/off: on every lookup, an error.
    write(path, {"filing": {**static("off"), "targeting": {"in": [{"var": "channel"}, ["C1"]]}}})
    flags = OpenFeatureFlags(path)
    with caplog.at_level(logging.WARNING, logger="bot.adapters.flags_openfeature"):
        assert flags.enabled("filing", "C1") is True
        assert flags.enabled("filing", "C1") is True
    assert caplog.text.count("not a variant") == 1


def test_two_instances_do_not_share_flags(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    write(a, {"filing": static("off")})
    write(b, {"filing": static("on")})
    fa, fb = OpenFeatureFlags(a), OpenFeatureFlags(b)
    assert (fa.enabled("filing"), fb.enabled("filing")) == (False, True)
    fa.close()
    assert fa.enabled("filing") is True and fb.enabled("filing") is True


def test_the_example_file_defines_exactly_the_bots_flags() -> None:
    flags = OpenFeatureFlags(ROOT / "flags.example.json")
    assert isinstance(flags, DescribedFlags)
    assert set(flags.file.current()) == set(FLAG_KEYS)
    states = {s.key: s for s in flags.describe()}
    assert list(states) == list(FLAG_KEYS)
    assert states["llm-analysis"].value and states["llm-analysis"].reason == "static"
    assert not states["filing"].value and "targeted" in states["filing"].reason
    assert flags.enabled("filing", channel="C0123PILOT", user="U1")


def test_unknown_keys_in_the_file_are_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "flags.json"
    write(path, {"duplicate_check": static("off")})
    with caplog.at_level(logging.WARNING):
        flags = OpenFeatureFlags(path)
    assert "duplicate_check not used by ideabot" in caplog.text
    assert flags.enabled("duplicate-check") is True
