"""The one composition root: Settings -> adapters (built once) -> use cases.

Every entry point (CLI, Slack app, scheduler, tests) receives its use cases from
:func:`bootstrap`. Tests pass fakes or adapters aimed at local servers as keyword arguments,
through the same door. Network checks (channel names, issue types) are the explicit start-up
step :meth:`Bot.startup`, which ``serve`` runs and ``doctor`` reports.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from bot.bootstrap_loop import build_announcer, build_issue_reader, sync_hook
from bot.config import ConfigError, Settings
from bot.domain.attachments import AttachmentPolicy, FileSource, IssueAttachments
from bot.domain.filing import (
    FilingJob,
    FilingResult,
    LabelPolicy,
    RetryLimits,
    check_issue_types,
)
from bot.domain.flags import AllOn, Flags
from bot.domain.issue_changes import IssueChange, IssueState
from bot.domain.metrics import Metrics, NullMetrics
from bot.domain.models import Match, MessageRef, Triage
from bot.domain.notes import IdeaExtractor, NotesPolicy
from bot.domain.ports import (
    Analyzer,
    CachedIndex,
    Calendar,
    Chat,
    Embedder,
    Notifier,
    Store,
    StoredPost,
    TicketIndex,
    Tracker,
    TrackerRejected,
    Warmable,
)
from bot.domain.projects import ProjectRouting
from bot.domain.threads import ThreadLimits
from bot.service.announce import AnnounceChanges
from bot.service.app_home import AppHome
from bot.service.catalogue import Catalogue
from bot.service.channels import IdeaChannels
from bot.service.edit_post import EditPost
from bot.service.engagement import RecordEngagement
from bot.service.file_message import FileMessage, FilingAccess
from bot.service.filing import Filer
from bot.service.notes import NotesFinder
from bot.service.receive_post import ReceivePost
from bot.service.required_fields import MetaCache, RequiredFields
from bot.service.review import ReviewFiling
from bot.service.run_digest import DigestService, Rendered
from bot.service.sync_jira import JiraSync
from bot.service.thread_comments import ThreadComments
from bot.service.triage import TriagePolicy, Triager

if TYPE_CHECKING:
    from bot.domain.tracing import Tracer

logger = logging.getLogger(__name__)


# What the bot keeps under BOT_DATA_DIR besides the database: the local index, Pinecone's sidecar.
_DATA_SUBDIRS = ("index", "pinecone")


def prepare_data_dir(settings: Settings) -> Path:
    """BOT_DATA_DIR as a directory only the bot's user may read (``0700``), whatever the umask.

    The database there holds private-channel text. A data dir left by an older bot (``0755``,
    files ``0644``) is tightened, with one log line: the directory, the SQLite files and the
    index folders the bot writes. Other files in it are not touched (they are not ours), but the
    ``0700`` directory already keeps other users out of them.
    """
    from sqlalchemy.engine import make_url

    from bot.adapters.files import private_dir, tighten_all, tighten_path
    from bot.adapters.sql_schema import sqlite_files

    data = settings.bot_data_dir.expanduser()
    if not data.exists():
        return private_dir(data)
    changed, failed = 0, []
    try:
        changed += tighten_path(data)
    except OSError as exc:
        failed.append(f"{data} ({exc.strerror or type(exc).__name__})")
    ours = [data / d for d in _DATA_SUBDIRS]
    if not settings.database_url:  # the default SQLite file under BOT_DATA_DIR
        database = make_url(settings.sqlalchemy_url).database
        ours += sqlite_files(database) if database else []
    n, f = tighten_all(ours)
    changed, failed = changed + n, failed + f
    if changed:
        logger.warning(
            "BOT_DATA_DIR %s was readable by other users: made %d entries private (0700/0600)",
            data,
            changed,
        )
    if failed:
        # Not fatal: a data dir shared on purpose (another owner) keeps working.
        logger.warning("BOT_DATA_DIR: could not make private: %s", "; ".join(failed[:5]))
    return data


def build_store(settings: Settings) -> Store:
    """The SQL store: ``DATABASE_URL``, else SQLite under BOT_DATA_DIR (see prepare_data_dir)."""
    from bot.adapters.store_sql import SqlStore

    return SqlStore(settings.sqlalchemy_url)


def build_local_embedder(compute: str = "int8") -> Embedder:
    """The embedded all-MiniLM-L6-v2 model (no network, nothing downloaded); *compute* float32
    is the model as it ran before int8 compute, for the vectors it made (see build_embedder)."""
    from bot.adapters.embedder_cache import CachedEmbedder
    from bot.adapters.embedder_onnx import OnnxEmbedder

    # 256 word pieces: on labelled duplicates, fused retrieval reached R@5 0.880 / MRR 0.681 at 256
    # against 0.853 / 0.647 at 128 (bench/eval_duplicates.py). Slack posts are shorter anyway.
    return CachedEmbedder(OnnxEmbedder(max_tokens=256, compute=compute))


def build_remote_embedder(settings: Settings, spec: str, **params: Any) -> Embedder:
    """A ``provider:model`` embedder through LangChain, its dimension probed now (one call).

    Raises ConfigError naming EMBEDDINGS_MODEL when the package is missing or the model does
    not answer within EMBEDDINGS_TIMEOUT.
    """
    from bot.adapters.embedder_cache import CachedEmbedder
    from bot.adapters.embedder_remote import EmbeddingsUnavailable
    from bot.adapters.embedder_remote import build_remote_embedder as build

    try:
        remote = build(
            spec,
            timeout=settings.embeddings_timeout,
            batch_size=settings.embeddings_batch_size,
            requests_per_minute=settings.embeddings_requests_per_minute,
            base_url=settings.embeddings_base_url,
            params=params,
        )
    except EmbeddingsUnavailable as exc:
        raise ConfigError(f"EMBEDDINGS_MODEL: {exc}") from None
    return CachedEmbedder(remote)


def build_embedder(settings: Settings, store: Store | None = None, **params: Any) -> Embedder:
    """EMBEDDINGS_MODEL's embedder: a remote ``provider:model``, else the embedded model.
    *params* go to the remote model's LangChain class (tests give the key and URL).

    A Pinecone namespace filled by the embedded model before it computed in int8 keeps being
    searched with that model: its vectors differ a little (cosine ~0.995), and Pinecone cannot
    search old vectors while new ones are made, so switching would mean a new, empty index
    (the local index re-embeds in the background instead; see LocalIndex)."""
    if settings.embeddings_model:
        return build_remote_embedder(settings, settings.embeddings_model, **params)
    if settings.pinecone_configured and store is not None:
        from bot.adapters.embedder_onnx import OnnxEmbedder

        recorded = store.get_value(f"pinecone:{_namespace(settings)}:model")
        if recorded == OnnxEmbedder.MODEL_ID_FLOAT32:
            logger.info(
                "Pinecone holds vectors of %s: the embedded model computes in float32 for them "
                "(about 2.5x the CPU of int8; a new, empty PINECONE_INDEX switches)",
                recorded,
            )
            return build_local_embedder("float32")
    return build_local_embedder()


def previous_embedders(settings: Settings, **params: Any) -> Callable[[str], Embedder | None]:
    """Builds the embedder of a model whose vectors the catalogue holds (the model before
    EMBEDDINGS_MODEL changed), so searches can go on with its vectors while the new model's
    are made. The embedded model always can be; a remote one with its provider's defaults
    (its key variable) and, for the same provider, EMBEDDINGS_BASE_URL; None when it cannot."""

    def build(model_id: str) -> Embedder | None:
        from bot.adapters.embedder_onnx import OnnxEmbedder

        if model_id == OnnxEmbedder.MODEL_ID_INT8:
            return build_local_embedder()
        if model_id == OnnxEmbedder.MODEL_ID_FLOAT32:
            return build_local_embedder("float32")
        if ":" not in model_id:
            return None
        same = (settings.embeddings_model or "").split(":", 1)[0] == model_id.split(":", 1)[0]
        try:
            return build_remote_embedder(
                settings.model_copy(
                    update={"embeddings_base_url": settings.embeddings_base_url if same else None}
                ),
                model_id,
                **(params if same else {}),
            )
        except ConfigError as exc:
            logger.warning("the previous embedding model cannot be used: %s", exc)
            return None

    return build


def _namespace(settings: Settings) -> str:
    return settings.jira_project or "default"


def build_index(
    settings: Settings,
    embedder: Embedder,
    store: Store,
    previous: Callable[[str], Embedder | None] | None = None,
) -> TicketIndex:
    """The ticket index: a cache of the store's catalogue (local), or Pinecone beside it.

    Neither writes to ``BOT_DATA_DIR``: the database is the only state. Pinecone's dimension is
    checked against the embedder's here (a ConfigError naming PINECONE_INDEX). After a model
    change the local index searches the old vectors, embedded by *previous*, until the new
    model's are made in the background.
    """
    if settings.pinecone_configured:
        from bot.adapters.index_local import IndexModelMismatch
        from bot.adapters.index_pinecone import IndexDimensionMismatch, PineconeIndex

        assert settings.pinecone_api_key is not None
        try:
            return PineconeIndex(
                embedder,
                catalogue=store,
                api_key=settings.pinecone_api_key.get_secret_value(),
                index_name=settings.pinecone_index,
                host=settings.pinecone_host,
                namespace=_namespace(settings),
            )
        except (IndexDimensionMismatch, IndexModelMismatch) as exc:
            name = "PINECONE_INDEX" if settings.pinecone_index else "PINECONE_HOST"
            raise ConfigError(f"{name}: {exc}") from None
    from bot.adapters.index_local import LocalIndex

    return LocalIndex(embedder, store, _namespace(settings), previous=previous)


def build_tracker(
    settings: Settings, metrics: Metrics | None = None, tracer: Tracer | None = None
) -> Tracker | None:
    if not settings.jira_configured:
        return None
    from bot.adapters.jira_tracker import JiraTracker

    assert settings.jira_url and settings.jira_project and settings.jira_api_token
    return JiraTracker(
        url=settings.jira_url,
        project=settings.jira_project,
        token=settings.jira_api_token.get_secret_value(),
        email=settings.jira_email,
        deployment=settings.jira_deployment,
        # Each request ends by a total deadline (not just per socket read), short enough that a
        # filing's writes end inside its outbox lease (see jira_request_deadline).
        timeout=jira_request_deadline(settings),
        metrics=metrics,
        tracer=tracer,
    )


JIRA_DEADLINE_MAX = 15.0


def jira_request_deadline(settings: Settings) -> float:
    """The total deadline of one Jira request: 15 s, less when the filing lease is short.

    A filing renews its lease right before writing to Jira, and the write is at most
    ``JIRA_REQUESTS_PER_WRITE`` requests; with each given a fifth of the lease (4 of them: 80 %),
    the lease outlives the write by a margin for clock skew between replicas, so no other worker
    takes the item over while a create is in flight (bot.service.lease_keeper).
    """
    from bot.adapters.jira_tracker import JIRA_REQUESTS_PER_WRITE

    return min(JIRA_DEADLINE_MAX, settings.filing_lease_seconds / (JIRA_REQUESTS_PER_WRITE + 1))


def build_llm(settings: Settings) -> Any:
    if not settings.llm_model:
        return None
    from bot.adapters.llm_text import build_chat_model

    return build_chat_model(settings.llm_model, timeout=settings.llm_timeout)


def build_offline_analyzer(
    settings: Settings, embedder: Embedder, index: TicketIndex | None
) -> Analyzer:
    """The analyzer that needs no LLM (the LLM's fallback, and the ``llm-analysis`` flag's off)."""
    from bot.adapters.analyzer_offline import OfflineAnalyzer

    return OfflineAnalyzer(
        embedder=embedder,
        index=index,
        type_kinds=settings.type_kinds,
        min_labelled=settings.offline_min_labelled,
    )


def build_analyzer(
    settings: Settings,
    embedder: Embedder,
    index: TicketIndex | None,
    llm: Any,
    offline: Analyzer | None = None,
    metrics: Metrics | None = None,
) -> Analyzer:
    offline = offline or build_offline_analyzer(settings, embedder, index)
    if llm is None:
        return offline
    from bot.adapters.analyzer_llm import LlmAnalyzer

    return LlmAnalyzer(
        llm,
        fallback=offline,
        timeout=settings.llm_timeout,
        model_name=settings.llm_model,
        prompts_dir=settings.prompts_dir,
        metrics=metrics,
    )


def build_notes(
    settings: Settings,
    index: TicketIndex | None,
    classifier: Analyzer,
    llm: Any,
    flags: Flags,
    metrics: Metrics,
) -> NotesFinder:
    """Finds the ideas of notes posts: with the LLM when one is configured (the offline
    extractor answers when it fails), else offline with the kind *classifier*'s help."""
    from bot.adapters.ideas_offline import OfflineIdeaExtractor

    extractor: IdeaExtractor = OfflineIdeaExtractor(classifier)
    if llm is not None:
        from bot.adapters.ideas_llm import LlmIdeaExtractor

        extractor = LlmIdeaExtractor(
            llm,
            fallback=extractor,
            timeout=settings.llm_timeout,
            model_name=settings.llm_model,
            prompts_dir=settings.prompts_dir,
            max_chars=settings.max_post_chars,
            metrics=metrics,
        )
    return NotesFinder(
        extractor,
        index,
        NotesPolicy(min_chars=settings.notes_min_chars, max_ideas=settings.notes_max_ideas),
        min_score=settings.similar_min_score,
        flags=flags,
        metrics=metrics,
    )


def build_flags(settings: Settings) -> Flags:
    """The feature flags: the FEATURE_FLAGS_FILE flag file, or everything on without one.

    Raises ConfigError with one line when the file cannot be read or is not a valid flag file.
    """
    if settings.feature_flags_file is None:
        return AllOn()
    from bot.adapters.flagd import FlagFileError
    from bot.adapters.flags_openfeature import OpenFeatureFlags

    try:
        return OpenFeatureFlags(settings.feature_flags_file, settings.feature_flags_check_seconds)
    except FlagFileError as exc:
        raise ConfigError(f"FEATURE_FLAGS_FILE: {exc}") from None


def build_calendar(settings: Settings) -> Calendar | None:
    if not settings.meetings_ics:
        return None
    from bot.adapters.calendar_ics import IcsCalendar

    return IcsCalendar(settings.meetings_ics, tz=settings.digest_zone)


def check_prompts(settings: Settings) -> None:
    """Fails start-up on a broken prompt file rather than on the first post that needs it."""
    from bot.adapters.prompts import PromptError, load_all

    try:
        load_all(settings.prompts_dir)
    except PromptError as exc:
        raise ConfigError(f"PROMPTS_DIR: {exc}") from None


# Every Slack Web API call ends within this, retries included (bot.adapters.slack_deadline):
# under HANDOFF (10 s, bot.workers) and far under the inbox and filing leases, so a reply still in
# flight never outlives the lease of the work that sent it.
SLACK_CALL_DEADLINE = 8.0


def build_slack_client(settings: Settings) -> Any:
    if not settings.slack_bot_token:
        return None
    from bot.adapters.slack_deadline import (
        DeadlineConnectionRetry,
        DeadlineRateLimitRetry,
        DeadlineWebClient,
    )

    kwargs: dict[str, Any] = {"token": settings.slack_bot_token.get_secret_value()}
    if settings.slack_api_url:
        kwargs["base_url"] = settings.slack_api_url.rstrip("/") + "/"
    # Slack's 429s carry Retry-After: waited for and retried while the wait fits the deadline.
    retry = [DeadlineConnectionRetry(max_retry_count=2), DeadlineRateLimitRetry(max_retry_count=3)]
    return DeadlineWebClient(
        deadline=SLACK_CALL_DEADLINE,
        timeout=int(SLACK_CALL_DEADLINE),
        retry_handlers=retry,
        **kwargs,
    )


def build_chat(
    slack_client: Any, metrics: Metrics | None = None, tracer: Tracer | None = None
) -> Chat | None:
    if slack_client is None:
        return None
    from bot.adapters.slack_chat import SlackChat

    return SlackChat(slack_client, metrics, tracer)


class LogNotifier:
    """The Notifier when no chat is configured (batch commands): outcomes go to the log."""

    def triage_reply(self, post: StoredPost, triage: Triage) -> str:
        logger.info("triaged %s:%s as %s", post.channel, post.ts, triage.kind)
        return ""

    def find_triage_reply(self, post: StoredPost) -> str | None:
        return None  # nothing is posted, so nothing can have been posted before

    def filing_outcome(self, job: FilingJob, result: FilingResult) -> None:
        logger.info("filing %s: %s %s", job.key, result.status, result.key or "")

    def duplicate_offer(self, job: FilingJob, match: Match) -> None:
        logger.info("filing %s: likely a duplicate of %s", job.key, match.key)

    def to_requester(
        self, ref: MessageRef, requester: str, thread_ts: str | None, result: FilingResult
    ) -> None:
        logger.info("filing %s for %s: %s", ref.key, requester, result.status)

    def idea_posted(self, channel: str, user: str, text: str) -> str:
        raise ConfigError("SLACK_BOT_TOKEN: required to post ideas")

    def update_triage_reply(
        self,
        post: StoredPost,
        triage: Triage,
        filed: FilingResult | None = None,
        issue: IssueState | None = None,
    ) -> None:
        logger.info("re-triaged %s:%s as %s", post.channel, post.ts, triage.kind)

    def issue_changed(self, post: StoredPost, change: IssueChange, url: str | None) -> None:
        logger.info("%s changed: %s", change.after.key, ", ".join(change.fields))

    def react(self, post: StoredPost, emoji: str) -> None:
        logger.info("would react :%s: to %s:%s", emoji, post.channel, post.ts)

    def edited_after_filing(
        self, post: StoredPost, filed: FilingResult, commented: bool | None
    ) -> None:
        logger.info("%s:%s edited after filing %s", post.channel, post.ts, filed.key or "")

    def post_deleted(self, post: StoredPost, filed: FilingResult | None) -> None:
        logger.info("%s:%s deleted", post.channel, post.ts)


def build_files(slack_client: Any) -> FileSource | None:
    """The files of posts and threads, downloaded with the bot token (``files:read``)."""
    if slack_client is None:
        return None
    from bot.adapters.slack_files import SlackFiles

    return SlackFiles(slack_client)


def build_app_home(
    settings: Settings,
    store: Store,
    chat: Chat,
    channels: IdeaChannels,
    clock: Callable[[], datetime],
) -> AppHome:
    """The Home tab's use case, rendering with the Block Kit builder."""
    from bot.slack.home_blocks import build_home

    return AppHome(
        store=store,
        chat=chat,
        render=build_home,
        channels=channels,
        project=_namespace(settings),
        file_emoji=settings.file_emoji_hint,
        clock=clock,
    )


def build_notifier(settings: Settings, chat: Chat | None) -> Notifier:
    if chat is None:
        return LogNotifier()
    from bot.slack.notifier_connect import ConnectSafeNotifier

    # Slack Connect channels get the internal details only ephemerally, for members.
    return ConnectSafeNotifier(
        chat, settings.file_emoji_hint, settings.filed_emoji, vote_emoji=settings.vote_emoji[0]
    )


def build_text_writer(
    settings: Settings, llm: Any, metrics: Metrics | None = None
) -> Callable[[str, dict[str, str]], str | None]:
    """The digests' LLM text (takeaways, meeting overview) for the configured model."""
    from bot.adapters.llm_text import run_text_prompt

    model: Any = llm if llm is not None else settings.llm_model

    def write(prompt: str, variables: dict[str, str]) -> str | None:
        return run_text_prompt(
            model,
            prompt,
            variables,
            timeout=settings.llm_timeout,
            prompts_dir=settings.prompts_dir,
            metrics=metrics,
        )

    return write


def build_digests(
    settings: Settings,
    store: Store,
    chat: Chat | None,
    calendar: Calendar | None,
    llm: Any,
    channels: IdeaChannels,
    clock: Callable[[], datetime],
    metrics: Metrics | None = None,
    flags: Flags | None = None,
) -> DigestService:
    from bot.slack import digest_blocks

    return DigestService(
        store=store,
        chat=chat,
        calendar=calendar,
        tz=settings.digest_timezone,
        workday=settings.workday,
        render_meetings=lambda d: Rendered(
            digest_blocks.meeting_summary(d),
            digest_blocks.build_meeting_blocks(d),
            digest_blocks.meeting_text(d),
        ),
        render_takeaways=lambda d: Rendered(
            digest_blocks.takeaway_summary(d),
            digest_blocks.build_takeaway_blocks(d),
            digest_blocks.takeaway_text(d),
        ),
        idea_channels=channels,
        write=(
            build_text_writer(settings, llm, metrics)
            if (llm is not None or settings.llm_model)
            else None
        ),
        clock=clock,
        metrics=metrics or NullMetrics(),
        flags=flags or AllOn(),
    )


@dataclass
class Adapters:
    """The outside world, each built once: what the use cases are made of."""

    store: Store
    embedder: Embedder
    index: TicketIndex
    analyzer: Analyzer
    tracker: Tracker | None
    calendar: Calendar | None
    chat: Chat | None
    slack_client: Any  # a slack_sdk.WebClient (typed loosely: no SDK import here) or None
    llm: Any  # a LangChain chat model or None (offline)
    flags: Flags = field(default_factory=AllOn)
    # Built once from METRICS_FORMAT / OTEL_* (bot.observability.setup); serve starts them.
    metrics: Metrics = field(default_factory=NullMetrics)
    tracer: Tracer | None = None


@dataclass
class Bot:
    """The use cases, wired. Entry points call these and nothing else of the bot's logic."""

    settings: Settings
    adapters: Adapters
    channels: IdeaChannels
    triager: Triager
    catalogue: Catalogue
    filer: Filer
    digests: DigestService
    sync: JiraSync | None
    receive_post: ReceivePost | None  # None without Slack
    file_message: FileMessage | None  # None without Slack
    edit_post: EditPost | None = None  # None without Slack
    engagement: RecordEngagement | None = None  # None without Slack
    review: ReviewFiling | None = None  # the review form; None without Slack or Jira
    announce: AnnounceChanges | None = None  # None without Jira
    thread_comments: ThreadComments | None = None  # None without Slack
    app_home: AppHome | None = None  # None without Slack
    # Channel -> Jira project (JIRA_PROJECTS); ``routing.allowed_projects()`` for pickers.
    routing: ProjectRouting = field(default_factory=lambda: ProjectRouting(None))

    def startup(self) -> None:
        """The start-up checks that need the network: channel names, Jira issue types.

        Raises ConfigError for a JIRA_ISSUE_TYPES mapping the project cannot take.
        """
        if self.adapters.chat is not None:
            self.channels.resolve(self.adapters.chat)
            missing = self.routing.resolve(self.adapters.chat.resolve_channels)
            if missing:
                logger.warning("JIRA_PROJECTS: channels not found: %s", ", ".join(missing))
        # Loading the ticket cache from the database takes a moment: start it now, in the
        # background, so the first post does not wait for it (``catalogue_ready`` tells when).
        self.catalogue.warm_up()
        problems = self.issue_type_problems()
        if problems:
            raise ConfigError(problems[0])

    def warm_up(self) -> None:
        """Starts loading, in the background, what the first post would wait for (the offline
        classifier and its model); the long-running entry points call it after ``startup``."""
        for analyzer in (self.triager.analyzer, self.triager.offline):
            if isinstance(analyzer, Warmable):
                analyzer.warm_up()

    def catalogue_ready(self) -> bool:
        """Readiness (``/readyz``): the database answers and the ticket cache has caught up
        with the catalogue at least once. Cheap; never waits for the load."""
        return self.catalogue.ready()

    def ready(self) -> list[str]:
        """What keeps this process from doing its work; empty when ready.

        The database must answer (every event is recorded there before it is acknowledged) and
        the ticket cache must have caught up with the catalogue at least once (cheap; the first
        call starts that load in the background). No secret or message text in the answers.
        """
        problems: list[str] = []
        try:
            self.adapters.store.ping()
        except Exception as exc:
            problems.append(f"database: {type(exc).__name__}")
        try:
            self.catalogue.count()
            if not self.catalogue_ready():
                problems.append("index: loading")
        except Exception as exc:
            problems.append(f"index: {type(exc).__name__}")
        return problems

    def issue_type_problems(self) -> list[str]:
        """What is wrong with the issue types the bot would file as (asks Jira; empty: fine):
        JIRA_ISSUE_TYPES in the project, and each project of JIRA_PROJECTS with its own map."""
        tracker = self.adapters.tracker
        if tracker is None:
            return []
        defaults = self.settings.issue_types
        problems = check_issue_types(defaults, tracker.issue_types())
        main = self.settings.jira_project.strip().upper() if self.settings.jira_project else ""
        for project in self.routing.allowed_projects():
            if project.upper() == main:
                continue
            wanted = {**defaults, **self.routing.route_for_project(project).issue_types}
            try:
                available = tracker.issue_types(project)
            except TrackerRejected as exc:
                problems.append(f"JIRA_PROJECTS: project {project}: {exc}")
                continue
            problems += [
                f"JIRA_PROJECTS: project {project}: {p.removeprefix('JIRA_ISSUE_TYPES: ')}"
                for p in check_issue_types(wanted, available)
            ]
        return problems


def bootstrap(
    settings: Settings,
    *,
    clock: Callable[[], datetime] | None = None,
    rng: Callable[[float, float], float] | None = None,
    **overrides: Any,
) -> Bot:
    """Wires the use cases for *settings*; any keyword replaces the adapter of that name
    (``store``, ``embedder``, ``index``, ``analyzer``, ``offline_analyzer``, ``tracker``,
    ``calendar``, ``llm``, ``slack_client``, ``chat``, ``flags``, ``metrics``, ``tracer``,
    ``issues``). *clock*
    and *rng* make retries and digests deterministic."""
    from bot.observability.setup import make_metrics, make_tracer

    check_prompts(settings)
    metrics: Metrics = overrides.get("metrics") or make_metrics(settings)
    tracer: Tracer = overrides.get("tracer") or make_tracer(settings)
    # First: a bad flag file is a one-line start-up error before any connection is made.
    flags: Flags = overrides.get("flags") or build_flags(settings)
    prepare_data_dir(settings)
    clock = clock or (lambda: datetime.now(UTC))
    store: Store = overrides.get("store") or build_store(settings)
    embedder: Embedder = overrides.get("embedder") or build_embedder(settings, store)
    index: TicketIndex = overrides.get("index") or build_index(
        settings, embedder, store, previous_embedders(settings)
    )
    llm = overrides["llm"] if "llm" in overrides else build_llm(settings)
    # With an LLM the Triager also gets the offline analyzer: the ``llm-analysis`` flag picks one
    # per post. (An injected analyzer comes with its own ``offline_analyzer``, or none.)
    offline: Analyzer | None = overrides.get("offline_analyzer")
    analyzer: Analyzer | None = overrides.get("analyzer")
    if analyzer is None:
        if llm is not None:
            offline = offline or build_offline_analyzer(settings, embedder, index)
        analyzer = build_analyzer(settings, embedder, index, llm, offline, metrics)
    tracker = (
        overrides["tracker"] if "tracker" in overrides else build_tracker(settings, metrics, tracer)
    )
    calendar = overrides["calendar"] if "calendar" in overrides else build_calendar(settings)
    slack_client = (
        overrides["slack_client"] if "slack_client" in overrides else build_slack_client(settings)
    )
    chat: Chat | None = (
        overrides["chat"] if "chat" in overrides else build_chat(slack_client, metrics, tracer)
    )
    adapters = Adapters(
        store=store,
        embedder=embedder,
        index=index,
        analyzer=analyzer,
        tracker=tracker,
        calendar=calendar,
        chat=chat,
        slack_client=slack_client,
        llm=llm,
        flags=flags,
        metrics=metrics,
        tracer=tracer,
    )
    channels = IdeaChannels(settings.idea_channels)
    index_kind = "pinecone" if settings.pinecone_configured else "local"
    routing = settings.project_routing()
    attach = AttachmentPolicy(
        max_files=settings.attach_max_files,
        max_bytes=int(settings.attach_max_mb * 1024 * 1024),
        types=tuple(settings.attach_types),
    )
    files = build_files(slack_client)
    triager = Triager(
        analyzer,
        index,
        TriagePolicy(
            min_score=settings.similar_min_score,
            duplicate_threshold=settings.duplicate_threshold,
            max_chars=settings.max_post_chars,
        ),
        metrics=metrics,
        index_kind=index_kind,
        flags=flags,
        offline=offline if offline is not analyzer else None,
        routing=routing,
        notes=build_notes(settings, index, offline or analyzer, llm, flags, metrics),
        tracer=tracer,
    )
    notifier = build_notifier(settings, chat)
    filer = Filer(
        store=store,
        tracker=tracker,
        project=settings.jira_project or "",
        issue_types=settings.issue_types,
        notifier=notifier,
        index=index,
        clock=clock,
        rng=rng or random.uniform,
        limits=RetryLimits(
            max_attempts=settings.filing_max_attempts,
            max_age=timedelta(hours=settings.filing_max_age_hours),
        ),
        labels=LabelPolicy(tuple(settings.label_allow), tuple(settings.label_deny)),
        metrics=metrics,
        routing=routing,
        files=files,
        attachments=tracker if isinstance(tracker, IssueAttachments) else None,
        attachment_policy=attach,
        tracer=tracer,
        lease=timedelta(seconds=settings.filing_lease_seconds),
    )
    issues = overrides["issues"] if "issues" in overrides else build_issue_reader(tracker)
    # Without Slack there is nowhere to tell a change: recording it as told would lose it.
    announce = build_announcer(
        settings,
        store,
        issues if chat is not None else None,
        notifier,
        flags=flags,
        metrics=metrics,
        clock=clock,
    )
    sync = (
        JiraSync(
            tracker,
            index,
            store,
            settings.jira_project,
            narrow=settings.jira_sync_jql,
            metrics=metrics,
            index_kind=index_kind,
            also=routing.allowed_projects(),
            on_changed=sync_hook(announce),
        )
        if tracker is not None and settings.jira_project
        else None
    )
    receive_post = file_message = edit_post = engagement = thread_comments = app_home = None
    required = build_required_fields(settings, filer, notifier)
    if chat is not None:
        engagement = RecordEngagement(
            store=store,
            notifier=notifier,
            filer=filer,
            vote_emoji=tuple(settings.vote_emoji),
            loop=announce,
        )
        edit_post = EditPost(
            store=store,
            triager=triager,
            notifier=notifier,
            filer=filer,
            channels=channels,
            tracker=tracker,
            engagement=engagement,
            comment_on_edit=settings.comment_on_edit,
            triage_threads=settings.triage_threads,
            clock=clock,
        )
        receive_post = ReceivePost(
            store=store,
            triager=triager,
            notifier=notifier,
            chat=chat,
            channels=channels,
            triage_threads=settings.triage_threads,
            engagement=engagement,
            clock=clock,
            flags=flags,
        )
        file_message = FileMessage(
            store=store,
            chat=chat,
            notifier=notifier,
            filer=filer,
            triager=triager,
            channels=channels,
            file_emoji=settings.file_emoji_hint,
            file_emojis=settings.file_emojis,
            access=FilingAccess(settings.file_allowed_users, settings.file_allowed_groups),
            clock=clock,
            edits=edit_post,
            flags=flags,
            required=required,
            files=files,
            attachment_policy=attach,
            thread_limits=ThreadLimits(replies=settings.thread_context_replies),
        )
        thread_comments = ThreadComments(
            store=store,
            chat=chat,
            notifier=notifier,
            filer=filer,
            file_message=file_message,
            flags=flags,
        )
        receive_post.thread_comments = thread_comments
        app_home = build_app_home(settings, store, chat, channels, clock)
    return Bot(
        settings=settings,
        adapters=adapters,
        channels=channels,
        triager=triager,
        catalogue=Catalogue(index, index if isinstance(index, CachedIndex) else None),
        filer=filer,
        digests=build_digests(
            settings, store, chat, calendar, llm, channels, clock, metrics=metrics, flags=flags
        ),
        sync=sync,
        receive_post=receive_post,
        file_message=file_message,
        edit_post=edit_post,
        engagement=engagement,
        announce=announce,
        thread_comments=thread_comments,
        app_home=app_home,
        routing=routing,
        review=build_review(routing, file_message, required, chat, notifier),
    )


def build_required_fields(
    settings: Settings, filer: Filer, notifier: Notifier
) -> RequiredFields | None:
    """Create metadata, JIRA_FIELD_DEFAULTS and the "needs *Team*" note, when the tracker can
    say what its create screen needs."""
    from bot.domain.issue_fields import FieldCatalog
    from bot.service.required_fields import FieldsNotifier

    tracker = filer.tracker
    if not isinstance(tracker, FieldCatalog) or not settings.jira_project:
        return None
    if not hasattr(notifier, "needs_fields"):  # no Slack: nobody to ask
        return None
    cache = MetaCache(tracker)
    filer.on_field_rejected = cache.forget
    return RequiredFields(
        cache=cache,
        project=settings.jira_project,
        issue_type_for=filer.issue_type_for,
        notifier=cast("FieldsNotifier", notifier),
        defaults=settings.jira_field_defaults,
    )


def build_review(
    routing: ProjectRouting,
    file_message: FileMessage | None,
    required: RequiredFields | None,
    chat: Chat | None,
    notifier: Notifier,
) -> ReviewFiling | None:
    if file_message is None or required is None or chat is None:
        return None
    return ReviewFiling(
        file_message=file_message,
        required=required,
        chat=chat,
        notifier=notifier,
        projects=routing.allowed_projects,  # JIRA_PROJECT first, then JIRA_PROJECTS'
    )
