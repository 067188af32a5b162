"""A checker for CloudWatch Embedded Metric Format documents, written from AWS's documentation.

Independent of ``bot.adapters.metrics_emf`` on purpose: the adapter writes EMF, this reads it
the way CloudWatch would and lists every rule a document breaks. Sources:

* "Specification: Embedded metric format" (CloudWatch User Guide): the root, ``_aws`` with an
  integer ``Timestamp`` in milliseconds and ``CloudWatchMetrics``; each MetricDirective has
  ``Namespace``, ``Dimensions`` (an array of DimensionSets) and ``Metrics`` (at most 100
  MetricDefinitions); a DimensionSet holds at most 30 keys (it MAY be empty), each a root member
  with a string value; a MetricDefinition has ``Name`` and optionally ``Unit`` and
  ``StorageResolution`` and nothing else; a metric target is a number or an array of at most 100
  numbers; the document is one JSON object of at most 256 KB (the older, stricter limit).
* "MetricDatum" (CloudWatch API): the allowed units; values within +-2^360, never NaN or
  infinite; ``Values`` with ``Counts`` of the same length (at most 100 each) -- the histogram
  shape AWS's EMF libraries write as ``{"Values", "Counts", "Max", "Min", "Count", "Sum"}`` with
  a consistent statistic set.
* "Dimension" (CloudWatch API): names 1-255 ASCII characters, not starting with ``:``; values
  1-1024 ASCII characters with at least one that is not white space.
* "Namespaces" (CloudWatch concepts): 1-255 characters of letters, digits and ``. - _ / # :``,
  not starting with ``AWS/`` (reserved for AWS).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

UNITS = frozenset(
    {
        "Seconds",
        "Microseconds",
        "Milliseconds",
        "Bytes",
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
        "Bits",
        "Kilobits",
        "Megabits",
        "Gigabits",
        "Terabits",
        "Percent",
        "Count",
        "Bytes/Second",
        "Kilobytes/Second",
        "Megabytes/Second",
        "Gigabytes/Second",
        "Terabytes/Second",
        "Bits/Second",
        "Kilobits/Second",
        "Megabits/Second",
        "Gigabits/Second",
        "Terabits/Second",
        "Count/Second",
        "None",
    }
)
MAX_DOCUMENT_BYTES = 256 * 1024
MAX_METRICS = 100
MAX_DIMENSIONS = 30
MAX_VALUES = 100
MAX_ABS = 2.0**360
_NAMESPACE = re.compile(r"^[A-Za-z0-9.\-_/#:]{1,255}$")
_ASCII_PRINTABLE = re.compile(r"^[\x20-\x7e]+$")
HISTOGRAM_KEYS = {"Values", "Counts", "Max", "Min", "Count", "Sum"}


def _number(x: Any) -> bool:
    return (
        isinstance(x, int | float)
        and not isinstance(x, bool)
        and math.isfinite(x)
        and abs(x) <= MAX_ABS
    )


def _check_value(name: str, value: Any) -> list[str]:
    if _number(value):
        return []
    if isinstance(value, list):
        errs = []
        if len(value) > MAX_VALUES:
            errs.append(f"{name}: {len(value)} values (at most {MAX_VALUES})")
        if not value:
            errs.append(f"{name}: an empty values array")
        errs += [f"{name}: value {v!r} is not a valid number" for v in value if not _number(v)]
        return errs
    if isinstance(value, dict):
        return _check_histogram(name, value)
    return [f"{name}: a metric target must be a number or an array of numbers, got {value!r}"]


def _check_histogram(name: str, h: dict[str, Any]) -> list[str]:
    if set(h) != HISTOGRAM_KEYS:
        return [f"{name}: a histogram has exactly {sorted(HISTOGRAM_KEYS)}, got {sorted(h)}"]
    errs: list[str] = []
    values, counts = h["Values"], h["Counts"]
    if not isinstance(values, list) or not isinstance(counts, list):
        return [f"{name}: Values and Counts must be arrays"]
    if len(values) != len(counts):
        errs.append(f"{name}: {len(values)} Values but {len(counts)} Counts")
    if not values or len(values) > MAX_VALUES:
        errs.append(f"{name}: {len(values)} Values (1 to {MAX_VALUES})")
    if len(set(values)) != len(values):
        errs.append(f"{name}: repeated Values")
    errs += [f"{name}: bad value {v!r}" for v in values if not _number(v)]
    errs += [f"{name}: bad count {c!r}" for c in counts if not (_number(c) and c > 0)]
    for key in ("Max", "Min", "Sum", "Count"):
        if not _number(h[key]):
            errs.append(f"{name}: {key} {h[key]!r} is not a valid number")
    if errs:
        return errs
    count, low, high, total = h["Count"], h["Min"], h["Max"], h["Sum"]
    if count != sum(counts):
        errs.append(f"{name}: Count {count} is not the sum of Counts {sum(counts)}")
    if low > high:
        errs.append(f"{name}: Min {low} > Max {high}")
    # The statistic set must be possible: some `count` numbers in [Min, Max] sum to Sum.
    slack = 1e-9 * max(1.0, abs(total))
    if not (low + high * (count - 1) + slack >= total >= high + low * (count - 1) - slack):
        errs.append(f"{name}: no {count} values in [{low}, {high}] sum to {total}")
    return errs


def validate(doc: Any, *, raw: str | None = None, now_ms: int | None = None) -> list[str]:
    """Every rule *doc* breaks (an empty list for a valid EMF document).

    *raw* is the line as written (for the size limit); *now_ms* checks that the timestamp is
    at most two weeks old and two hours ahead, as CloudWatch accepts."""
    errs: list[str] = []
    if raw is not None and len(raw.encode()) > MAX_DOCUMENT_BYTES:
        errs.append(f"document is {len(raw.encode())} bytes (at most {MAX_DOCUMENT_BYTES})")
    if not isinstance(doc, dict):
        return [*errs, "the root must be a JSON object"]
    aws = doc.get("_aws")
    if not isinstance(aws, dict):
        return [*errs, "_aws: required object"]
    stamp = aws.get("Timestamp")
    if not isinstance(stamp, int) or isinstance(stamp, bool) or stamp < 0:
        errs.append(f"_aws.Timestamp: an integer of milliseconds is required, got {stamp!r}")
    elif now_ms is not None and not (now_ms - 14 * 86_400_000 <= stamp <= now_ms + 2 * 3_600_000):
        errs.append(f"_aws.Timestamp {stamp} is out of CloudWatch's window around {now_ms}")
    directives = aws.get("CloudWatchMetrics")
    if not isinstance(directives, list):
        return [*errs, "_aws.CloudWatchMetrics: required array"]
    for i, d in enumerate(directives):
        where = f"CloudWatchMetrics[{i}]"
        if not isinstance(d, dict):
            errs.append(f"{where}: must be an object")
            continue
        extra = set(d) - {"Namespace", "Dimensions", "Metrics"}
        if extra:
            errs.append(f"{where}: unexpected members {sorted(extra)}")
        ns = d.get("Namespace")
        if not isinstance(ns, str) or not _NAMESPACE.match(ns) or ns.startswith("AWS/"):
            errs.append(f"{where}.Namespace: invalid {ns!r}")
        dim_sets = d.get("Dimensions")
        dim_keys: set[str] = set()
        if not isinstance(dim_sets, list) or not dim_sets:
            errs.append(f"{where}.Dimensions: a non-empty array of DimensionSets is required")
            dim_sets = []
        for dims in dim_sets:
            if not isinstance(dims, list):
                errs.append(f"{where}.Dimensions: a DimensionSet must be an array")
                continue
            if len(dims) > MAX_DIMENSIONS:
                errs.append(f"{where}: a DimensionSet of {len(dims)} keys (at most 30)")
            if len(set(dims)) != len(dims):
                errs.append(f"{where}: a DimensionSet repeats a key")
            for key in dims:
                if (
                    not isinstance(key, str)
                    or not 1 <= len(key) <= 255
                    or not _ASCII_PRINTABLE.match(key)
                    or key.startswith(":")
                ):
                    errs.append(f"{where}: invalid dimension name {key!r}")
                    continue
                dim_keys.add(key)
                value = doc.get(key)
                if (
                    not isinstance(value, str)
                    or not 1 <= len(value) <= 1024
                    or not _ASCII_PRINTABLE.match(value)
                    or not value.strip()
                ):
                    errs.append(f"dimension {key}: the root member must be a string, got {value!r}")
        metrics = d.get("Metrics")
        if not isinstance(metrics, list):
            errs.append(f"{where}.Metrics: required array")
            continue
        if len(metrics) > MAX_METRICS:
            errs.append(f"{where}.Metrics: {len(metrics)} definitions (at most {MAX_METRICS})")
        names = [m.get("Name") for m in metrics if isinstance(m, dict)]
        if len(set(names)) != len(names):
            errs.append(f"{where}.Metrics: a metric is defined twice")
        for m in metrics:
            if not isinstance(m, dict):
                errs.append(f"{where}.Metrics: a MetricDefinition must be an object")
                continue
            extra = set(m) - {"Name", "Unit", "StorageResolution"}
            if extra:
                errs.append(f"{where}.Metrics: unexpected members {sorted(extra)}")
            name = m.get("Name")
            if not isinstance(name, str) or not 1 <= len(name) <= 255 or not name.strip():
                errs.append(f"{where}.Metrics: invalid Name {name!r}")
                continue
            if name in dim_keys:
                errs.append(f"{name}: both a metric and a dimension")
            if "Unit" in m and m["Unit"] not in UNITS:
                errs.append(f"{name}: unit {m['Unit']!r} is not a CloudWatch unit")
            if "StorageResolution" in m and m["StorageResolution"] not in (1, 60):
                errs.append(f"{name}: StorageResolution must be 1 or 60")
            if name not in doc:
                errs.append(f"{name}: no root member for the metric")
                continue
            errs += _check_value(name, doc[name])
    return errs


def parse_lines(text: str, *, now_ms: int | None = None) -> list[dict[str, Any]]:
    """The EMF documents in *text* (one per line), each checked; raises AssertionError listing
    what is wrong with the first invalid one."""
    docs = []
    for line in text.splitlines():
        if not line.strip():
            continue
        doc = json.loads(line)
        errs = validate(doc, raw=line, now_ms=now_ms)
        assert not errs, f"invalid EMF document: {errs}\n{line[:500]}"
        docs.append(doc)
    return docs
