"""The one composition root: Settings -> adapters -> services.

Every entry point (CLI, Slack app, scheduler, tests) goes through :func:`bootstrap`. Tests pass
fakes or adapters aimed at local servers as keyword arguments, through the same door.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.config import ConfigError, Settings
from bot.domain.ports import Analyzer, Calendar, Embedder, Store, TicketIndex, Tracker
from bot.domain.triage import TriagePolicy, TriageService
from bot.services import Services

logger = logging.getLogger(__name__)


def build_store(settings: Settings) -> Store:
    from bot.adapters.store_sql import SqlStore

    settings.bot_data_dir.mkdir(parents=True, exist_ok=True)
    return SqlStore(settings.sqlalchemy_url)


def build_embedder(settings: Settings) -> Embedder:
    if settings.embeddings_model and settings.embeddings_model not in {"local", "minilm"}:
        # Only the embedded model is supported; saying so beats silently ignoring the setting.
        raise ConfigError(
            f"EMBEDDINGS_MODEL: unsupported value {settings.embeddings_model!r}; "
            "leave it unset (or 'local') for the embedded all-MiniLM-L6-v2 model"
        )
    from bot.adapters.embedder_cache import CachedEmbedder
    from bot.adapters.embedder_onnx import OnnxEmbedder

    # 256 word pieces: on labelled duplicates, fused retrieval reached R@5 0.880 / MRR 0.681 at 256
    # against 0.853 / 0.647 at 128 (bench/eval_duplicates.py). Slack posts are shorter anyway.
    return CachedEmbedder(OnnxEmbedder(max_tokens=256))


def _namespace(settings: Settings) -> str:
    return settings.jira_project or "default"


def build_index(settings: Settings, embedder: Embedder) -> TicketIndex:
    if settings.pinecone_configured:
        from bot.adapters.index_pinecone import PineconeIndex

        assert settings.pinecone_api_key is not None
        return PineconeIndex(
            api_key=settings.pinecone_api_key.get_secret_value(),
            embedder=embedder,
            index_name=settings.pinecone_index,
            host=settings.pinecone_host,
            namespace=_namespace(settings),
            state_dir=settings.bot_data_dir / "pinecone",
        )
    from bot.adapters.index_local import LocalIndex

    return LocalIndex(settings.bot_data_dir / "index" / _namespace(settings), embedder)


def build_tracker(settings: Settings) -> Tracker | None:
    if not settings.jira_configured:
        return None
    from bot.adapters.jira_tracker import JiraTracker

    assert settings.jira_url and settings.jira_project and settings.jira_api_token
    return JiraTracker(
        url=settings.jira_url,
        project=settings.jira_project,
        token=settings.jira_api_token.get_secret_value(),
        email=settings.jira_email,
        # One filing attempt makes at most five Jira requests; with 15 s each it stays well inside
        # the outbox lease (bot.domain.filing), so a slow Jira never lets two workers file.
        timeout=15.0,
    )


def build_llm(settings: Settings) -> Any:
    if not settings.llm_model:
        return None
    from bot.adapters.llm_text import build_chat_model

    return build_chat_model(settings.llm_model, timeout=settings.llm_timeout)


def build_analyzer(
    settings: Settings, embedder: Embedder, index: TicketIndex | None, llm: Any
) -> Analyzer:
    from bot.adapters.analyzer_offline import OfflineAnalyzer

    offline = OfflineAnalyzer(
        embedder=embedder,
        index=index,
        type_kinds=settings.type_kinds,
        min_labelled=settings.offline_min_labelled,
    )
    if llm is None:
        return offline
    from bot.adapters.analyzer_llm import LlmAnalyzer

    return LlmAnalyzer(
        llm,
        fallback=offline,
        timeout=settings.llm_timeout,
        model_name=settings.llm_model,
        prompts_dir=settings.prompts_dir,
    )


def build_calendar(settings: Settings) -> Calendar | None:
    if not settings.meetings_ics:
        return None
    from zoneinfo import ZoneInfo

    from bot.adapters.calendar_ics import IcsCalendar

    return IcsCalendar(settings.meetings_ics, tz=ZoneInfo(settings.digest_timezone))


def build_slack_client(settings: Settings) -> Any:
    if not settings.slack_bot_token:
        return None
    from slack_sdk import WebClient
    from slack_sdk.http_retry.builtin_handlers import (
        ConnectionErrorRetryHandler,
        RateLimitErrorRetryHandler,
    )

    kwargs: dict[str, Any] = {"token": settings.slack_bot_token.get_secret_value()}
    if settings.slack_api_url:
        kwargs["base_url"] = settings.slack_api_url.rstrip("/") + "/"
    client = WebClient(**kwargs)
    # Slack's 429s carry Retry-After; the SDK's handler sleeps for it and retries.
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=3))
    client.retry_handlers.append(ConnectionErrorRetryHandler(max_retry_count=2))
    return client


def check_prompts(settings: Settings) -> None:
    """Fails start-up on a broken prompt file rather than on the first post that needs it."""
    from bot.adapters.prompts import PromptError, load_all

    try:
        load_all(settings.prompts_dir)
    except PromptError as exc:
        raise ConfigError(f"PROMPTS_DIR: {exc}") from None


def bootstrap(settings: Settings, **overrides: Any) -> Services:
    """Wires the services for *settings*; any keyword replaces the adapter of that name."""
    check_prompts(settings)
    store: Store = overrides.get("store") or build_store(settings)
    embedder: Embedder = overrides.get("embedder") or build_embedder(settings)
    index: TicketIndex = overrides.get("index") or build_index(settings, embedder)
    llm = overrides["llm"] if "llm" in overrides else build_llm(settings)
    analyzer: Analyzer = overrides.get("analyzer") or build_analyzer(settings, embedder, index, llm)
    policy = TriagePolicy(
        min_score=settings.similar_min_score,
        duplicate_threshold=settings.duplicate_threshold,
        max_chars=settings.max_post_chars,
    )
    tracker = overrides["tracker"] if "tracker" in overrides else build_tracker(settings)
    calendar = overrides["calendar"] if "calendar" in overrides else build_calendar(settings)
    slack_client = (
        overrides["slack_client"] if "slack_client" in overrides else build_slack_client(settings)
    )
    return Services(
        settings=settings,
        store=store,
        embedder=embedder,
        index=index,
        analyzer=analyzer,
        triage=TriageService(analyzer, index, policy),
        tracker=tracker,
        calendar=calendar,
        slack_client=slack_client,
        llm=llm,
    )
