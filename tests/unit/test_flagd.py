"""The flagd flag-file format: reading, refusing what is not supported, and evaluating."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.adapters.flagd import (
    EvaluationError,
    FlagDefinition,
    FlagFileError,
    cbor,
    evaluate,
    murmur3_32,
    parse_flags,
)
from bot.domain.flags import FLAG_KEYS

ONOFF = {"on": True, "off": False}


def flag(targeting: Any = None, default: str | None = "on", **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"state": "ENABLED", "variants": ONOFF, "defaultVariant": default}
    if targeting is not None:
        out["targeting"] = targeting
    out.update(extra)
    return out


def one(raw: dict[str, Any], key: str = "filing", **doc: Any) -> FlagDefinition:
    return parse_flags(json.dumps({"flags": {key: raw}, **doc}), boolean_keys=FLAG_KEYS)[key]


def test_murmur3_matches_the_reference_vectors() -> None:
    # Values from mmh3.hash(data, signed=False), the hash flagd's Python evaluator uses.
    assert [murmur3_32(b) for b in (b"", b"a", b"hello", b"filingUALICE")] == [
        0,
        1009084850,
        613153351,
        3167618099,
    ]


def test_cbor_is_canonical() -> None:
    assert cbor(["a", "UB"]) == b"\x82\x61a\x62UB"
    assert cbor(23) == b"\x17" and cbor(24) == b"\x18\x18" and cbor(256) == b"\x19\x01\x00"
    assert cbor(-1) == b"\x20" and cbor(None) == b"\xf6" and cbor(True) == b"\xf5"
    assert cbor("é") == b"\x62\xc3\xa9"


def test_static_flag_and_default_variant() -> None:
    assert evaluate(one(flag(default="off")), "C1", "U1").value is False
    res = evaluate(one(flag(default="on")), None, None)
    assert (res.value, res.variant, res.reason) == (True, "on", "STATIC")


def test_disabled_flag_leaves_the_callers_default() -> None:
    res = evaluate(one(flag(state="DISABLED", default="off")), "C1", "U1")
    assert res.value is None and res.reason == "DISABLED"


def test_channel_targeting_with_in_and_equals() -> None:
    f = one(flag({"if": [{"in": [{"var": "channel"}, ["CPILOT", "CBETA"]]}, "on", "off"]}))
    assert evaluate(f, "CPILOT", "U1").value is True
    assert evaluate(f, "COTHER", "U1").value is False
    assert evaluate(f, None, None).value is False
    g = one(flag({"if": [{"==": [{"var": "user"}, "UBOSS"]}, "off", None]}))
    assert evaluate(g, "C1", "UBOSS").value is False
    # null from the rule: the default variant
    assert evaluate(g, "C1", "UOTHER").value is True


def test_boolean_results_name_the_true_and_false_variants() -> None:
    f = one(
        {
            "state": "ENABLED",
            "variants": {"true": True, "false": False},
            "defaultVariant": "false",
            "targeting": {"starts_with": [{"var": "channel"}, "CPI"]},
        }
    )
    assert evaluate(f, "CPILOT", None).value is True
    assert evaluate(f, "CX", None).value is False


def test_and_or_not_cat_and_ref() -> None:
    rule = {
        "if": [
            {"and": [{"$ref": "pilots"}, {"!": {"ends_with": [{"var": "user"}, "BOT"]}}]},
            "on",
            {"or": [{"==": [{"cat": ["C", "X"]}, {"var": "channel"}]}, False]},
            "on",
            "off",
        ]
    }
    f = one(
        flag(rule, default="off"),
        **{"$evaluators": {"pilots": {"in": [{"var": "channel"}, ["CP"]]}}},
    )
    assert evaluate(f, "CP", "UALICE").value is True
    assert evaluate(f, "CP", "UXBOT").value is False
    assert evaluate(f, "CX", "UXBOT").value is True
    assert evaluate(f, "CY", "UXBOT").value is False


def test_a_rule_choosing_a_missing_variant_is_an_evaluation_error() -> None:
    f = one(flag({"in": [{"var": "channel"}, ["C1"]]}))  # yields true/false, not on/off
    with pytest.raises(EvaluationError):
        evaluate(f, "C1", None)


def test_fractional_matches_flagd_buckets() -> None:
    # The users flagd's in-process evaluator (openfeature-flagd-core 2.0) puts in the 10 % bucket,
    # among U0000..U0199, for this exact flag.
    f = one(flag({"fractional": [["on", 10], ["off", 90]]}, default="off"))
    on = [u for u in (f"U{i:04d}" for i in range(200)) if evaluate(f, "C1", u).value]
    assert on == [
        "U0012", "U0025", "U0028", "U0043", "U0051", "U0060", "U0078", "U0092", "U0096", "U0108",
        "U0126", "U0128", "U0135", "U0154", "U0162", "U0164", "U0175", "U0191", "U0194", "U0197",
    ]  # fmt: skip


def test_fractional_is_about_ten_percent_and_stable() -> None:
    f = one(flag({"fractional": [["on", 10], ["off", 90]]}, default="off"))
    users = [f"U{i:07d}" for i in range(20000)]
    share = sum(bool(evaluate(f, "C1", u).value) for u in users) / len(users)
    assert 0.09 < share < 0.11
    assert [evaluate(f, "C9", u).value for u in users[:50]] == [
        evaluate(f, "C1", u).value for u in users[:50]
    ]


def test_fractional_without_a_user_is_the_default() -> None:
    f = one(flag({"fractional": [["on", 50], ["off", 50]]}, default="off"))
    res = evaluate(f, "C1", None)
    assert res.value is False and res.reason == "DEFAULT"


@given(st.text(min_size=1, max_size=20), st.integers(0, 99))
def test_widening_a_rollout_only_adds_users(user: str, pct: int) -> None:
    def at(p: int) -> bool:
        f = one(flag({"fractional": [["on", p], ["off", 100 - p]]}, default="off"))
        return bool(evaluate(f, None, user).value)

    assert not at(pct) or at(pct + 1)


def test_fractional_with_an_explicit_bucketing_value() -> None:
    # By channel instead of user: every user of a channel gets the same answer.
    rule = {
        "fractional": [{"cat": [{"var": "$flagd.flagKey"}, {"var": "channel"}]}, ["on"], ["off"]]
    }
    f = one(flag(rule, default="off"))
    answers = {evaluate(f, "CSAME", f"U{i}").value for i in range(30)}
    assert len(answers) == 1


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "'flags'"),
        ('{"flags": []}', "'flags'"),
        (json.dumps({"flags": {"filing": flag(state="ON")}}), "'state'"),
        (json.dumps({"flags": {"filing": flag(default="maybe")}}), "'defaultVariant' 'maybe'"),
        (json.dumps({"flags": {"filing": flag(variants={})}}), "'variants'"),
        (
            json.dumps({"flags": {"filing": flag(variants={"on": "yes", "off": "no"})}}),
            "flag 'filing': every variant must be true or false",
        ),
        (
            json.dumps({"flags": {"filing": flag({"<": [{"var": "user"}, 3]})}}),
            "flag 'filing': targeting operator '<' is not supported",
        ),
        (
            json.dumps({"flags": {"filing": flag({"sem_ver": ["1.0.0", ">=", "0.1"]})}}),
            "operator 'sem_ver' is not supported",
        ),
        (
            json.dumps({"flags": {"filing": flag({"fractional": [["of", 10], ["off", 90]]})}}),
            "'fractional' names variant 'of'",
        ),
        (
            json.dumps({"flags": {"filing": flag({"fractional": [["on", 0], ["off", 0]]})}}),
            "add up to 0",
        ),
        (
            json.dumps({"flags": {"filing": flag({"fractional": [["on", 1.5]]})}}),
            "whole number",
        ),
        (json.dumps({"flags": {"filing": flag({"if": [True, "onn", "off"]})}}), "'onn'"),
        (json.dumps({"flags": {"filing": flag({"$ref": "nope"})}}), "'$ref' 'nope'"),
        (json.dumps({"flags": {"filing": flag({"in": [1], "==": [1]})}}), "exactly one operator"),
    ],
)
def test_bad_files_are_refused_with_one_clear_line(doc: str, needle: str) -> None:
    with pytest.raises(FlagFileError) as err:
        parse_flags(doc, boolean_keys=FLAG_KEYS)
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


def test_other_apps_flags_may_have_other_types() -> None:
    flags = parse_flags(
        json.dumps({"flags": {"banner": {"state": "ENABLED", "variants": {"a": "x"}}}}),
        boolean_keys=FLAG_KEYS,
    )
    assert evaluate(flags["banner"], None, None).value is None  # no default variant
