"""A Metrics port that records every call, checked against the catalogue like the real adapters."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from bot.domain.metrics import LabelGuard, MetricError, spec_for

Key = tuple[str, tuple[tuple[str, str], ...]]


def _key(name: str, labels: dict[str, str]) -> Key:
    return name, tuple(sorted(labels.items()))


@dataclass
class RecordingMetrics:
    """``counters``/``gauges`` hold totals and latest values, ``observations`` every histogram
    value, ``ages`` each age gauge's moment; keys are ``(name, sorted label pairs)`` with the
    label values as the adapters would bound them."""

    counters: dict[Key, float] = field(default_factory=dict)
    observations: dict[Key, list[float]] = field(default_factory=dict)
    gauges: dict[Key, float] = field(default_factory=dict)
    ages: dict[Key, datetime | None] = field(default_factory=dict)
    guard: LabelGuard = field(default_factory=LabelGuard)

    def _checked(self, name: str, kind: str, labels: dict[str, str]) -> Key:
        spec = spec_for(name)
        if spec.kind != kind:
            raise MetricError(f"{name} is a {spec.kind}, not a {kind}")
        values = self.guard.check(spec, labels)
        return _key(name, dict(zip(spec.labels, values, strict=True)))

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        key = self._checked(name, "counter", labels)
        self.counters[key] = self.counters.get(key, 0.0) + amount

    def observe(self, name: str, value: float, **labels: str) -> None:
        self.observations.setdefault(self._checked(name, "histogram", labels), []).append(value)

    def set_gauge(self, name: str, value: float, **labels: str) -> None:
        self.gauges[self._checked(name, "gauge", labels)] = value

    def set_since(self, name: str, since: datetime | None, **labels: str) -> None:
        self.ages[self._checked(name, "age", labels)] = since

    # ------------------------------------------------------------------ reading

    def count(self, name: str, **labels: str) -> float:
        """The counter's total for exactly these labels (0 when never incremented)."""
        return self.counters.get(_key(name, labels), 0.0)

    def total(self, name: str) -> float:
        """The counter's total over all its label values."""
        return sum(v for (n, _), v in self.counters.items() if n == name)

    def values(self, name: str, **labels: str) -> list[float]:
        return self.observations.get(_key(name, labels), [])
