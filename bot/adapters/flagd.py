"""The flagd flag-definition format, read and evaluated in process (no flagd daemon, no gRPC).

A flag file is the JSON that flagd reads (https://flagd.dev/reference/flag-definitions/)::

    {"flags": {"filing": {"state": "ENABLED",
                          "variants": {"on": true, "off": false},
                          "defaultVariant": "on",
                          "targeting": {"if": [{"in": [{"var": "channel"}, ["C1", "C2"]]},
                                               "off", null]}}},
     "$evaluators": {"pilot": {"in": [{"var": "channel"}, ["C1"]]}}}

Targeting is JSON Logic over the evaluation data ``channel``, ``user``, ``targetingKey`` (the
user) and ``$flagd.flagKey``. Only the subset in :data:`OPERATORS` is implemented; a rule using
anything else is refused when the file is read, naming the flag and the operator, rather than
silently evaluating to the default. ``$evaluators`` and ``{"$ref": name}`` are supported.

``fractional`` buckets like flagd's in-process evaluator (openfeature-flagd-core 2.x): MurmurHash3
(x86, 32-bit, seed 0) of the canonical CBOR encoding of ``[flagKey, targetingKey]`` (or of the
explicit bucketing value), and ``bucket = hash * total_weight >> 32``. So a user stays in the
same bucket across restarts and replicas, and widening 10 % to 20 % only adds users.

Why not ``openfeature-provider-flagd``: its in-process file mode works, but the package requires
grpcio and protobuf (tens of MB in a Lambda bundle) and polls the file from a thread of its own.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Operator -> short description (used in the refusal message).
OPERATORS: dict[str, str] = {
    "var": "read channel, user, targetingKey, $flagd.flagKey",
    "==": "equal",
    "!=": "not equal",
    "===": "equal",
    "!==": "not equal",
    "in": "member of a list, or substring",
    "and": "all",
    "or": "any",
    "!": "not",
    "!!": "truthy",
    "if": "if/then/else chains",
    "?:": "if/then/else",
    "cat": "join strings",
    "starts_with": "string prefix",
    "ends_with": "string suffix",
    "fractional": "percentage split by user",
}
STATES = ("ENABLED", "DISABLED")


class FlagFileError(ValueError):
    """The flag file cannot be used; the message names the flag and what is wrong."""


@dataclass(frozen=True)
class FlagDefinition:
    """One flag of the file."""

    key: str
    state: str
    variants: Mapping[str, Any]
    default_variant: str | None
    targeting: Any = None  # a JSON Logic rule, or None

    @property
    def is_boolean(self) -> bool:
        return all(isinstance(v, bool) for v in self.variants.values())


@dataclass(frozen=True)
class Resolution:
    """An evaluation: the value (None: the caller's default applies), its variant and why."""

    value: Any
    variant: str | None
    reason: str  # STATIC, TARGETING_MATCH, DEFAULT, DISABLED (OpenFeature's reason names)


class EvaluationError(Exception):
    """Targeting produced something that is not a variant of the flag."""


# --------------------------------------------------------------------------- reading


def parse_flags(text: str, *, boolean_keys: Sequence[str] = ()) -> dict[str, FlagDefinition]:
    """Reads and checks a flag file's text; raises FlagFileError with a one-line reason.

    Flags named in *boolean_keys* must have only boolean variants (the bot asks them as booleans).
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FlagFileError(f"not valid JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, dict):
        raise FlagFileError("expected a JSON object with a 'flags' object")
    flags = data.get("flags")
    if not isinstance(flags, dict):
        raise FlagFileError("expected a 'flags' object")
    evaluators = data.get("$evaluators", {})
    if not isinstance(evaluators, dict):
        raise FlagFileError("'$evaluators' must be an object")
    out: dict[str, FlagDefinition] = {}
    for key, raw in flags.items():
        out[key] = _parse_flag(key, raw, evaluators)
        if key in boolean_keys and not out[key].is_boolean:
            raise FlagFileError(f"flag {key!r}: every variant must be true or false")
    return out


def _parse_flag(key: str, raw: Any, evaluators: Mapping[str, Any]) -> FlagDefinition:
    where = f"flag {key!r}"
    if not isinstance(raw, dict):
        raise FlagFileError(f"{where}: expected an object")
    state = raw.get("state")
    if state not in STATES:
        raise FlagFileError(f"{where}: 'state' must be ENABLED or DISABLED, got {state!r}")
    variants = raw.get("variants")
    if not isinstance(variants, dict) or not variants:
        raise FlagFileError(f"{where}: 'variants' must be a non-empty object")
    default = raw.get("defaultVariant")
    if default == "":
        default = None
    if default is not None and (not isinstance(default, str) or default not in variants):
        raise FlagFileError(
            f"{where}: 'defaultVariant' {default!r} is not one of its variants "
            f"({', '.join(sorted(variants))})"
        )
    targeting = raw.get("targeting")
    if targeting in ({}, None):
        targeting = None
    else:
        targeting = _substitute(targeting, evaluators, where)
        if not isinstance(targeting, dict):
            raise FlagFileError(f"{where}: 'targeting' must be a JSON Logic object")
        _check(targeting, where, variants)
    return FlagDefinition(key, state, dict(variants), default, targeting)


def _substitute(node: Any, evaluators: Mapping[str, Any], where: str, depth: int = 0) -> Any:
    if depth > 20:
        raise FlagFileError(f"{where}: '$ref' nesting too deep (a cycle?)")
    if isinstance(node, list):
        return [_substitute(x, evaluators, where, depth) for x in node]
    if isinstance(node, dict):
        if set(node) == {"$ref"}:
            name = node["$ref"]
            if name not in evaluators:
                raise FlagFileError(f"{where}: '$ref' {name!r} is not in '$evaluators'")
            return _substitute(evaluators[name], evaluators, where, depth + 1)
        return {k: _substitute(v, evaluators, where, depth) for k, v in node.items()}
    return node


def _check(node: Any, where: str, variants: Mapping[str, Any]) -> None:
    if isinstance(node, list):
        for x in node:
            _check(x, where, variants)
        return
    if not isinstance(node, dict):
        return
    if len(node) != 1:
        raise FlagFileError(
            f"{where}: a JSON Logic rule has exactly one operator, got {', '.join(sorted(node))}"
        )
    op, args = next(iter(node.items()))
    if op not in OPERATORS:
        raise FlagFileError(
            f"{where}: targeting operator {op!r} is not supported here "
            f"(supported: {' '.join(OPERATORS)})"
        )
    if op == "fractional":
        _check_fractional(args, where, variants)
        return
    if op in ("if", "?:") and isinstance(args, list):
        # Results of an if chain are the odd positions and the last one.
        results = [args[i] for i in range(1, len(args), 2)] + (
            [args[-1]] if len(args) % 2 == 1 and len(args) > 1 else []
        )
        for r in results:
            if isinstance(r, str) and r not in variants:
                raise FlagFileError(f"{where}: 'if' names variant {r!r}, which it does not have")
    _check(args, where, variants)


def _check_fractional(args: Any, where: str, variants: Mapping[str, Any]) -> None:
    if not isinstance(args, list) or not args:
        raise FlagFileError(f"{where}: 'fractional' takes a list of [variant, weight] buckets")
    buckets = args if isinstance(args[0], list) else args[1:]
    if not isinstance(args[0], list):
        _check(args[0], where, variants)
    total = 0
    for b in buckets:
        if not isinstance(b, list) or not 1 <= len(b) <= 2 or not isinstance(b[0], str):
            raise FlagFileError(f"{where}: a 'fractional' bucket is [variant, weight], got {b!r}")
        if b[0] not in variants:
            raise FlagFileError(f"{where}: 'fractional' names variant {b[0]!r}, which it lacks")
        weight = b[1] if len(b) == 2 else 1
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
            raise FlagFileError(f"{where}: a 'fractional' weight must be a whole number >= 0")
        total += weight
    if total <= 0:
        raise FlagFileError(f"{where}: 'fractional' weights add up to 0")


# --------------------------------------------------------------------------- evaluating


def evaluate(flag: FlagDefinition, channel: str | None, user: str | None) -> Resolution:
    """Resolves *flag* for *channel* and *user*; raises EvaluationError on a bad result.

    A DISABLED flag, or a rule that yields null with no default variant, resolves to
    ``value=None``: the caller's default applies (flagd's behaviour).
    """
    if flag.state == "DISABLED":
        return Resolution(None, None, "DISABLED")
    if flag.targeting is None:
        return _default(flag, "STATIC")
    data: dict[str, Any] = {
        "channel": channel,
        "user": user,
        "targetingKey": user,
        "$flagd": {"flagKey": flag.key},
    }
    result = _eval(flag.targeting, data)
    if result is None:
        return _default(flag, "DEFAULT")
    variant = str(result).lower() if isinstance(result, bool) else str(result)
    if variant not in flag.variants:
        raise EvaluationError(f"flag {flag.key!r}: targeting chose {variant!r}, not a variant")
    return Resolution(flag.variants[variant], variant, "TARGETING_MATCH")


def _default(flag: FlagDefinition, reason: str) -> Resolution:
    if flag.default_variant is None:
        return Resolution(None, None, "DEFAULT")
    return Resolution(flag.variants[flag.default_variant], flag.default_variant, reason)


def _truthy(v: Any) -> bool:
    # JSON Logic truthiness is JavaScript's for JSON values: "0" is true, [] and 0 are false.
    return bool(v)


def _var(args: Any, data: dict[str, Any]) -> Any:
    if isinstance(args, list):
        path, default = (args[0] if args else ""), (args[1] if len(args) > 1 else None)
    else:
        path, default = args, None
    if path in ("", None):
        return data
    cur: Any = data
    for part in str(path).split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            return default
    return default if cur is None else cur


def _eval(node: Any, data: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_eval(x, data) for x in node]
    if not isinstance(node, dict):
        return node
    op, raw = next(iter(node.items()))
    if op == "var":
        return _var(_eval(raw, data), data)
    args: list[Any] = raw if isinstance(raw, list) else [raw]
    if op in ("and", "or"):
        value: Any = None
        for a in args:
            value = _eval(a, data)
            if _truthy(value) != (op == "and"):
                return value
        return value
    if op in ("if", "?:"):
        i = 0
        while i + 1 < len(args):
            if _truthy(_eval(args[i], data)):
                return _eval(args[i + 1], data)
            i += 2
        return _eval(args[i], data) if i < len(args) else None
    if op == "fractional":
        return _fractional(args, data)
    vals = [_eval(a, data) for a in args]
    if op == "!":
        return not _truthy(vals[0] if vals else None)
    if op == "!!":
        return _truthy(vals[0] if vals else None)
    if op in ("==", "==="):
        return len(vals) >= 2 and vals[0] == vals[1]
    if op in ("!=", "!=="):
        return not (len(vals) >= 2 and vals[0] == vals[1])
    if op == "in":
        if len(vals) < 2:
            return False
        needle, hay = vals[0], vals[1]
        if isinstance(hay, list):
            return needle in hay
        return isinstance(hay, str) and isinstance(needle, str) and needle in hay
    if op == "cat":
        return "".join("" if v is None else _text(v) for v in vals)
    if op in ("starts_with", "ends_with"):
        if len(vals) != 2 or not all(isinstance(v, str) for v in vals):
            return False
        return vals[0].startswith(vals[1]) if op == "starts_with" else vals[0].endswith(vals[1])
    raise EvaluationError(f"operator {op!r} is not supported")  # refused at load; defensive


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _fractional(args: list[Any], data: dict[str, Any]) -> str | None:
    if isinstance(args[0], list):
        flag_key = data["$flagd"]["flagKey"]
        key = data.get("targetingKey")
        if not isinstance(key, str) or not key:
            return None  # no user: no bucket, the default variant applies
        bucket_by: Any = [flag_key, key]
        buckets = args
    else:
        bucket_by = _eval(args[0], data)
        if bucket_by is None or bucket_by == "":
            return None
        buckets = args[1:]
    weights = [(b[0], b[1] if len(b) == 2 else 1) for b in buckets]
    total = sum(w for _, w in weights)
    bucket = (murmur3_32(cbor(bucket_by)) * total) >> 32
    end = 0
    for variant, weight in weights:
        end += weight
        if bucket < end:
            return str(variant)
    return None


# --------------------------------------------------------------------------- hashing


def cbor(value: Any) -> bytes:
    """Canonical CBOR (RFC 8949) of strings, whole numbers, booleans, null and lists of them."""
    if value is None:
        return b"\xf6"
    if isinstance(value, bool):
        return b"\xf5" if value else b"\xf4"
    if isinstance(value, int):
        return _cbor_head(0, value) if value >= 0 else _cbor_head(1, -1 - value)
    if isinstance(value, float) and value.is_integer():
        return cbor(int(value))
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return _cbor_head(3, len(raw)) + raw
    if isinstance(value, list | tuple):
        return _cbor_head(4, len(value)) + b"".join(cbor(v) for v in value)
    raise EvaluationError(f"cannot bucket by a {type(value).__name__}")


def _cbor_head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([major << 5 | n])
    for info, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
        try:
            return bytes([major << 5 | info]) + struct.pack(fmt, n)
        except struct.error:
            continue
    raise EvaluationError("number too large to bucket by")


def murmur3_32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3 x86 32-bit, unsigned (the hash flagd buckets with)."""
    c1, c2, mask = 0xCC9E2D51, 0x1B873593, 0xFFFFFFFF
    h = seed & mask
    n = len(data) // 4 * 4
    for i in range(0, n, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        k = (k * c2) & mask
        h ^= k
        h = ((h << 13) | (h >> 19)) & mask
        h = (h * 5 + 0xE6546B64) & mask
    tail = data[n:]
    if tail:
        k = int.from_bytes(tail, "little")
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        k = (k * c2) & mask
        h ^= k
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & mask
    h ^= h >> 16
    return h
