"""The bundle of wired dependencies every entry point receives (built in ``bot.bootstrap``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.config import Settings
from bot.domain.ports import Analyzer, Calendar, Embedder, Store, TicketIndex, Tracker
from bot.domain.triage import TriageService


@dataclass
class Services:
    """Everything the Slack app, the CLI and the scheduler need, wired once.

    ``tracker`` is None when Jira is not configured; ``slack_client`` is a ``slack_sdk.WebClient``
    (typed loosely so this module imports no SDK) or None when Slack is not configured.
    ``llm`` is a LangChain chat model or None (offline).
    """

    settings: Settings
    store: Store
    embedder: Embedder
    index: TicketIndex
    analyzer: Analyzer
    triage: TriageService
    tracker: Tracker | None = None
    calendar: Calendar | None = None
    slack_client: Any = None
    llm: Any = None
    extras: dict[str, Any] = field(default_factory=dict)
