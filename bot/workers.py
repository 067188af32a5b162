"""The outbox worker: a daemon thread that runs the filings that are due (retries, leftovers)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from bot.service.filing import Filer

logger = logging.getLogger(__name__)


class OutboxWorker:
    """Polls the outbox in a daemon thread; ``run_once(now)`` does one pass (for tests)."""

    def __init__(
        self,
        filer: Filer,
        poll_interval: float = 2.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.filer = filer
        self.poll_interval = poll_interval
        self.clock = clock or filer.clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self, now: datetime | None = None) -> int:
        """Processes what is due at *now* (default: the filer's clock)."""
        return self.filer.run_due(now or self.clock())

    def start(self) -> None:
        """Starts the polling thread (idempotent); it picks up work left by a previous run."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="ideabot-outbox", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stops the thread after its current pass."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                logger.exception("outbox pass failed")
            self._stop.wait(self.poll_interval)
