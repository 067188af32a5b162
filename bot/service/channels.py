"""The channels the bot listens in (``IDEA_CHANNELS``), by id once resolved at start-up."""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence

from bot.domain.ports import Chat

# Channel names are lower-case; ids (C…, G…, D…) are upper-case letters and digits.
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]+$")


class IdeaChannels:
    """IDEA_CHANNELS as channel ids. Names (``#ideas``) are looked up once by :meth:`resolve`.

    Every use case that asks "is this an idea channel?" (triage, filing, the takeaway digest)
    shares one instance, so they all see the same resolved ids.
    """

    def __init__(self, configured: Sequence[str]) -> None:
        self.configured = tuple(c.strip() for c in configured if c.strip())
        self._ids = frozenset(c for c in self.configured if _CHANNEL_ID.match(c))
        self._names = tuple(c for c in self.configured if not _CHANNEL_ID.match(c))
        self._lock = threading.Lock()

    @property
    def needs_lookup(self) -> bool:
        """True while some configured names have not been looked up yet."""
        return bool(self._names)

    def resolve(self, chat: Chat) -> None:
        """Looks the configured names up (unknown names are logged by the chat adapter)."""
        if not self._names:
            return
        found = chat.resolve_channels(list(self._names))
        with self._lock:
            self._ids = self._ids | frozenset(found)
            self._names = ()

    @property
    def ids(self) -> frozenset[str]:
        with self._lock:
            return self._ids

    def __contains__(self, channel: object) -> bool:
        return channel in self.ids
