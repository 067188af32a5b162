"""Feature flags for unit tests: everything on except what a test switches off."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SwitchedFlags:
    """The Flags port: on unless ``off`` holds (key, channel) or (key, None) for everywhere.

    Every question is recorded in ``asked`` as (key, channel, user).
    """

    off: set[tuple[str, str | None]] = field(default_factory=set)
    asked: list[tuple[str, str | None, str | None]] = field(default_factory=list)

    def enabled(self, key: str, channel: str | None = None, user: str | None = None) -> bool:
        self.asked.append((key, channel, user))
        return (key, None) not in self.off and (key, channel) not in self.off
