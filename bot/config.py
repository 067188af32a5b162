"""One settings object, read from the environment and `.env`, validated at start-up.

Every setting is documented in `.env.example`. A missing or malformed value raises
:class:`ConfigError` with one line naming the variable; the command line prints it and exits 2.
"""

from __future__ import annotations

import re
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.domain.attachments import DEFAULT_TYPES
from bot.domain.emoji import EmojiAction, hint_emoji, parse_file_emoji
from bot.domain.metrics import CATALOGUE, LABELS
from bot.domain.models import KINDS
from bot.domain.projects import ProjectRoute, ProjectRouting, parse_routes

DEFAULT_TYPE_KINDS: dict[str, str] = {
    "bug": "bug",
    "defect": "bug",
    "story": "idea",
    "new feature": "idea",
    "feature": "idea",
    "improvement": "idea",
    "epic": "idea",
    "question": "question",
    "support": "question",
}
DEFAULT_ISSUE_TYPES: dict[str, str] = {
    "idea": "Story",
    "bug": "Bug",
    "question": "Task",
    "other": "Task",
}


# A parameter whose name says it is secret. Over-redacting a harmless value is fine.
_SECRET_NAME = (
    r"[\w.\-]*(?:password|passwd|pwd|secret|token|api_?key|access_?key|private_?key|signature)"
    r"[\w.\-]*"
)
# In a URL query (``?password=``, ``&access_token=``): the value runs to "&" or a space
# (SQLAlchemy keeps ";", "#" and quotes in a query value).
_SECRET_QUERY = re.compile(rf"(?i)((?<=[?&;]){_SECRET_NAME}=)[^&\s]+")
# In a libpq keyword DSN or "name=value" text (``host=db password='a b'``): quoted or one word.
_SECRET_KEYWORD = re.compile(
    rf"(?i)((?:^|(?<=[\s,({{\[\"'])){_SECRET_NAME}\s*=\s*)"
    r"(?:'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^&\s]+)"
)
# ``scheme://user:password@`` (and ``scheme://token@``, which some services take as userinfo).
# The password may hold "/" (SQLAlchemy accepts it unquoted), so a URL with "@" in its path is
# over-redacted rather than a password leaked.
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^/@\s:?#]*)(:[^@\s]*)?@")
# Slack tokens (bot, user, app-level, refresh, config) and HTTP credentials in header form.
_SLACK_TOKEN = re.compile(r"\b(xox[abeoprs]|xapp)-[0-9A-Za-z\-]+")
_AUTH_HEADER = re.compile(
    r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic|token)\s+)?)[^\s\"',}]+"
)
# A bare "Bearer …"/"Basic …" credential outside a header, and Pinecone API keys.
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_PINECONE_KEY = re.compile(r"\bpcsk_[A-Za-z0-9_-]{6,}")


def _userinfo(m: re.Match[str]) -> str:
    scheme, user, password = m.group(1), m.group(2), m.group(3)
    if password:
        return f"{scheme}{user}:***@"
    # A lone userinfo part is a user name for databases, but a token for many web services.
    return (
        f"{scheme}{user}@"
        if scheme.lower().startswith(("postgres", "sqlite", "mysql"))
        else f"{scheme}***@"
    )


def redact_text(text: str) -> str:
    """*text* with every credential it may carry replaced by ``***``: the password of
    ``scheme://user:pass@host``, secret URL query or DSN parameters (``?password=…``,
    ``&token=…``, ``password=… host=…``), Slack tokens and ``Authorization`` header values.
    Safe to print or log (the logging set up by the CLI passes every line through it)."""
    text = _URL_USERINFO.sub(_userinfo, text)
    text = _SECRET_QUERY.sub(lambda m: f"{m.group(1)}***", text)
    text = _SECRET_KEYWORD.sub(lambda m: f"{m.group(1)}***", text)
    text = _SLACK_TOKEN.sub(lambda m: f"{m.group(1)}-***", text)
    text = _PINECONE_KEY.sub("***", text)
    text = _AUTH_HEADER.sub(lambda m: f"{m.group(1)}***", text)
    return _AUTH_SCHEME.sub(lambda m: f"{m.group(1)} ***", text)


def redact_url(url: str) -> str:
    """A database or service URL fit to show an operator (see :func:`redact_text`)."""
    return redact_text(url)


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
LOG_LEVELS: tuple[LogLevel, ...] = ("DEBUG", "INFO", "WARNING", "ERROR")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Workday(NamedTuple):
    """The working day (``WORKDAY``), local times in DIGEST_TIMEZONE; ``start < end``."""

    start: time
    end: time


def _parse_map(raw: str) -> dict[str, str]:
    """``"a=B, c=D"`` -> ``{"a": "B", "c": "D"}``; names lower-cased, values kept as written."""
    out: dict[str, str] = {}
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise ValueError(f"expected name=value pairs separated by commas, got {part!r}")
        k, v = part.split("=", 1)
        if not k.strip() or not v.strip():
            raise ValueError(f"empty name or value in {part!r}")
        out[k.strip().lower()] = v.strip()
    return out


def _as_map(raw: Any) -> dict[str, str]:
    # From the environment a map is a string; from Python (tests, overrides) it may be a dict.
    if isinstance(raw, dict):
        return {str(k).strip().lower(): str(v).strip() for k, v in raw.items()}
    return _parse_map(str(raw))


def _kind(value: str, what: str) -> str:
    if value.lower() in KINDS:
        return value.lower()
    raise ValueError(f"unknown kind {value!r} {what} (expected one of {', '.join(KINDS)})")


def _parse_list(raw: Any) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, list):
        return [str(x).strip() for x in raw if str(x).strip()]
    return [x.strip() for x in str(raw).split(",") if x.strip()]


_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def _parse_time(raw: Any) -> time:
    if isinstance(raw, time):
        return raw
    m = _HHMM.match(str(raw).strip())
    if not m:
        raise ValueError(f"expected HH:MM, got {raw!r}")
    return time(int(m.group(1)), int(m.group(2)))


def _parse_days(raw: str) -> str:
    """Checks a cron ``day_of_week`` of day names; returns it lower-case, without spaces.

    Only names are accepted: APScheduler numbers weekdays from Monday = 0, unlike cron's Sunday = 0,
    so a number written the cron way would silently move every digest by a day.
    """
    text = re.sub(r"\s+", "", raw.lower())
    if text == "*":
        return text
    expected = "expected day names mon..sun, ranges (mon-fri) or lists (mon,wed,fri)"
    if not text:
        raise ValueError(f"{expected}, got {raw!r}")
    for part in text.split(","):
        first, _, last = part.partition("-")
        if first not in WEEKDAYS or (last and last not in WEEKDAYS) or part.endswith("-"):
            raise ValueError(f"{expected}, got {raw!r}")
        if last and WEEKDAYS.index(first) > WEEKDAYS.index(last):
            raise ValueError(
                f"the range {part!r} runs backwards; a week runs mon..sun (write e.g. fri-sun,mon)"
            )
    return text


CsvList = Annotated[list[str], NoDecode]

_NAMESPACE = re.compile(r"^[A-Za-z0-9.\-_/#:]{1,255}$")
_ASCII = re.compile(r"^[\x20-\x7e]+$")


def _check_namespace(raw: str) -> str:
    """A CloudWatch namespace: 1-255 of letters, digits and ``. - _ / # :``, not ``AWS/...``."""
    v = raw.strip()
    if not _NAMESPACE.match(v) or v.startswith("AWS/"):
        raise ValueError(
            f"expected 1-255 letters, digits or . - _ / # : (and not AWS/...), got {raw!r}"
        )
    return v


def _check_dimensions(raw: Any) -> dict[str, str]:
    """``"Environment=prod, Service=ideabot"`` -> a dict, names keeping their case, each a valid
    CloudWatch dimension that clashes with no metric label (those are dimensions too)."""
    if isinstance(raw, dict):
        pairs = {str(k).strip(): str(v).strip() for k, v in raw.items()}
    else:
        pairs = {}
        for part in str(raw).split(","):
            if not part.strip():
                continue
            name, eq, value = part.partition("=")
            if not eq or not name.strip() or not value.strip():
                raise ValueError(f"expected Name=value pairs separated by commas, got {part!r}")
            pairs[name.strip()] = value.strip()
    most_labels = max(len(s.labels) for s in CATALOGUE.values())
    if len(pairs) > 30 - most_labels:
        raise ValueError(f"at most {30 - most_labels} dimensions (CloudWatch allows 30 in all)")
    for name, value in pairs.items():
        if not _ASCII.match(name) or len(name) > 255 or name.startswith(":"):
            raise ValueError(f"invalid dimension name {name!r} (ASCII, not starting with ':')")
        if name in LABELS or name == "outcome" or name.startswith("ideabot_"):
            raise ValueError(f"dimension name {name!r} is taken by a metric label or name")
        if not _ASCII.match(value) or len(value) > 1024:
            raise ValueError(f"invalid value {value!r} for dimension {name!r} (ASCII, 1-1024)")
    return pairs


class Settings(BaseSettings):
    """All of ideabot's settings. Field names are the environment variables, upper-cased."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        env_ignore_empty=True,
    )

    # state
    bot_data_dir: Path = Path("./.ideabot")
    database_url: str | None = None

    # analysis
    llm_model: str | None = None
    llm_timeout: float = Field(20.0, gt=0, le=600)
    # provider:model through LangChain (bot/adapters/embedder_remote.py); unset: the embedded one.
    embeddings_model: str | None = None
    embeddings_base_url: str | None = None
    # One batch's total time, retries included.
    embeddings_timeout: float = Field(30.0, gt=0, le=600)
    embeddings_batch_size: int = Field(64, ge=1, le=2048)
    embeddings_requests_per_minute: float = Field(0.0, ge=0)
    offline_min_labelled: int = Field(30, ge=1)
    # Only the pairs set here; `type_kinds` adds the defaults.
    jira_type_kinds: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    duplicate_threshold: float = Field(0.70, gt=0, le=1)
    similar_min_score: float = Field(0.5, ge=0, le=1)
    max_post_chars: int = Field(8000, ge=200)
    # Notes with many ideas (bot.service.notes): posts this long are read for several ideas, and
    # at most this many are listed (Slack's message limits allow the 5).
    notes_min_chars: int = Field(400, ge=1)
    notes_max_ideas: int = Field(5, ge=2, le=5)

    # index
    pinecone_api_key: SecretStr | None = None
    pinecone_index: str | None = None
    pinecone_host: str | None = None

    # jira
    jira_url: str | None = None
    jira_email: str | None = None
    jira_api_token: SecretStr | None = None
    jira_project: str | None = None
    # Only the pairs set here; `issue_types` adds the defaults.
    jira_issue_types: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    jira_sync_jql: str | None = None
    jira_sync_minutes: int = Field(30, ge=0)
    jira_deployment: Literal["auto", "cloud", "datacenter"] = "auto"
    filing_max_attempts: int = Field(20, ge=1, le=1000)
    filing_max_age_hours: float = Field(24.0, gt=0, le=24 * 30)
    # A filing's outbox lease, renewed by a heartbeat while an attempt runs: how long a dead
    # replica's filing waits for another; Jira requests get at most a fifth of it each.
    filing_lease_seconds: float = Field(60.0, ge=10, le=3600)
    label_allow: CsvList = Field(default_factory=list)
    label_deny: CsvList = Field(default_factory=list)
    # Defaults for create-screen fields ("Team=Platform", or JSON per project):
    # bot/domain/issue_fields.py parse_field_defaults.
    jira_field_defaults: Annotated[dict[str, dict[str, str]], NoDecode] = Field(
        default_factory=dict
    )
    # Channel -> project routes (bot/domain/projects.py); JIRA_PROJECT files everything else.
    jira_projects: Annotated[dict[str, ProjectRoute], NoDecode] = Field(default_factory=dict)
    # Similar tickets from every mapped project, not only the channel's own.
    similar_across_projects: bool = False
    # Files of the post and its thread attached to the issue (bot/domain/attachments.py)
    attach_max_files: int = Field(5, ge=0, le=20)
    attach_max_mb: float = Field(10.0, gt=0, le=100)
    attach_types: CsvList = Field(default_factory=lambda: list(DEFAULT_TYPES))

    # slack
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str | None = None
    idea_channels: CsvList = Field(default_factory=list)
    triage_threads: bool = False
    comment_on_edit: bool = False
    # Filing carries the thread's replies: the first this many, then "and N more".
    thread_context_replies: int = Field(default=20, ge=0, le=100)
    file_emoji: str = "ticket"
    filed_emoji: str = "white_check_mark"
    file_allowed_users: CsvList = Field(default_factory=list)
    file_allowed_groups: CsvList = Field(default_factory=list)

    # digests
    digest_channel: str | None = None
    # A name checked against the tz database at load; `digest_zone` is the ZoneInfo.
    digest_timezone: str = "UTC"
    # APScheduler's day_of_week of names, checked and normalised at load ("mon-fri").
    digest_days: str = "mon-fri"
    meeting_digest_at: time = time(8, 30)
    takeaway_digest_at: time = time(17, 30)
    digest_grace_minutes: int = Field(120, ge=0)
    meetings_ics: CsvList = Field(default_factory=list)
    workday: Annotated[Workday, NoDecode] = Workday(time(9), time(17, 30))

    log_level: LogLevel = "INFO"
    prompts_dir: Path | None = None
    # serving: how long SIGTERM waits for running work, and Socket Mode's health port
    shutdown_grace_seconds: float = Field(20.0, ge=0, le=3600)
    health_port: int | None = Field(None, ge=1, le=65535)

    # observability (bot/observability, bot/domain/metrics.py)
    log_format: Literal["text", "json"] = "text"
    metrics_format: Literal["none", "prometheus", "emf"] = "prometheus"
    metrics_port: int | None = Field(None, ge=1, le=65535)
    metrics_namespace: str = "ideabot"
    # Static EMF dimensions, name=Value pairs; names keep their case (CloudWatch is case-sensitive).
    metrics_dimensions: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    metrics_flush_seconds: float = Field(60.0, ge=1, le=3600)
    otel_exporter_otlp_endpoint: str | None = None
    otel_service_name: str = "ideabot"

    # feature flags (bot/domain/flags.py): a flagd flag file; unset = every feature on
    feature_flags_file: Path | None = None
    feature_flags_check_seconds: float = Field(5.0, ge=0, le=3600)

    # Jira -> Slack (bot/service/announce.py): changes of filed issues told in the post's thread
    jira_announce_fields: CsvList = Field(
        default_factory=lambda: ["status", "assignee", "resolution"]
    )
    jira_resolved_emoji: str = "checkered_flag"
    jira_webhook_secret: SecretStr | None = None
    # Votes (bot/domain/votes.py): these reactions and replies by others, each person once
    vote_emoji: CsvList = Field(default_factory=lambda: ["+1"])
    votes_in_jira: bool = True

    @field_validator("jira_announce_fields", "vote_emoji", mode="before")
    @classmethod
    def _loop_lists(cls, v: Any) -> list[str]:
        return _parse_list(v)

    @field_validator("jira_announce_fields")
    @classmethod
    def _announce_fields(cls, v: list[str]) -> list[str]:
        from bot.domain.issue_changes import parse_fields

        return list(parse_fields(v))

    @field_validator("vote_emoji")
    @classmethod
    def _vote_emoji(cls, v: list[str]) -> list[str]:
        out = [e.strip().strip(":") for e in v]
        bad = [e for e in out if not re.fullmatch(r"[a-z0-9_+\-']+", e)]
        if bad or not out:
            raise ValueError(f"expected emoji names such as '+1', got {bad or v!r}")
        return out

    @field_validator("jira_resolved_emoji")
    @classmethod
    def _resolved_emoji(cls, v: str) -> str:
        v = v.strip().strip(":")
        if v and not re.fullmatch(r"[a-z0-9_+\-']+", v):
            raise ValueError(f"expected an emoji name (or nothing), got {v!r}")
        return v

    @field_validator(
        "idea_channels",
        "file_allowed_users",
        "file_allowed_groups",
        "meetings_ics",
        "label_allow",
        "label_deny",
        "attach_types",
        mode="before",
    )
    @classmethod
    def _csv(cls, v: Any) -> list[str]:
        return _parse_list(v)

    @field_validator("file_emoji")
    @classmethod
    def _file_emoji(cls, v: str) -> str:
        actions = parse_file_emoji(v)  # checked here, read through ``file_emojis``
        single = len(actions) == 1 and "=" not in v
        return next(iter(actions)) if single else v.strip()

    @field_validator("filed_emoji")
    @classmethod
    def _emoji(cls, v: str) -> str:
        v = v.strip().strip(":")
        if not v or not re.fullmatch(r"[a-z0-9_+\-']+", v):
            raise ValueError(f"expected an emoji name such as 'ticket', got {v!r}")
        return v

    @field_validator("llm_model")
    @classmethod
    def _llm(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        if ":" not in v or not all(p.strip() for p in v.split(":", 1)):
            raise ValueError(f"expected provider:model (e.g. openai:gpt-4o-mini), got {v!r}")
        return v.strip()

    @field_validator("embeddings_model")
    @classmethod
    def _embeddings(cls, v: str | None) -> str | None:
        if v is None or not v.strip() or v.strip().lower() in {"local", "minilm"}:
            return None
        provider, sep, name = v.strip().partition(":")
        if not sep or not provider.strip() or not name.strip():
            raise ValueError(
                "expected provider:model (e.g. openai:text-embedding-3-small), "
                f"or 'local' for the embedded model; got {v!r}"
            )
        return f"{provider.strip().lower()}:{name.strip()}"

    @field_validator("embeddings_base_url")
    @classmethod
    def _embeddings_url(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        if not re.match(r"^https?://[^/\s]+", v.strip()):
            raise ValueError(f"expected an http(s) URL such as http://localhost:8080/v1, got {v!r}")
        return v.strip()

    @field_validator("digest_timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v

    @field_validator("digest_days")
    @classmethod
    def _days(cls, v: str) -> str:
        return _parse_days(v)

    @field_validator("meeting_digest_at", "takeaway_digest_at", mode="before")
    @classmethod
    def _hhmm(cls, v: Any) -> time:
        return _parse_time(v)

    @field_validator("workday", mode="before")
    @classmethod
    def _workday(cls, v: Any) -> Workday:
        if isinstance(v, tuple):
            a, b = (_parse_time(x) for x in v)
        else:
            parts = str(v).split("-")
            if len(parts) != 2:
                raise ValueError(f"expected HH:MM-HH:MM, got {v!r}")
            a, b = (_parse_time(p) for p in parts)
        if a >= b:
            raise ValueError(f"the working day must end after it starts, got {v!r}")
        return Workday(a, b)

    @field_validator("jira_issue_types", mode="before")
    @classmethod
    def _issue_types(cls, v: Any) -> dict[str, str]:
        return {_kind(k, f"in '{k}={t}'"): t for k, t in _as_map(v).items()}

    @field_validator("jira_field_defaults", mode="before")
    @classmethod
    def _field_defaults(cls, v: Any) -> dict[str, dict[str, str]]:
        from bot.domain.issue_fields import parse_field_defaults

        return parse_field_defaults(v)

    @field_validator("jira_projects", mode="before")
    @classmethod
    def _projects(cls, v: Any) -> dict[str, ProjectRoute]:
        return parse_routes(v)

    @field_validator("jira_type_kinds", mode="before")
    @classmethod
    def _type_kinds(cls, v: Any) -> dict[str, str]:
        return {t: _kind(k, f"in '{t}={k}'") for t, k in _as_map(v).items()}

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, v: Any) -> str:
        level = str(v).strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"expected DEBUG, INFO, WARNING or ERROR, got {v!r}")
        return level

    @field_validator("log_format", "metrics_format", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> str:
        return str(v).strip().lower()

    @field_validator("metrics_namespace")
    @classmethod
    def _namespace(cls, v: str) -> str:
        return _check_namespace(v)

    @field_validator("metrics_dimensions", mode="before")
    @classmethod
    def _dimensions(cls, v: Any) -> dict[str, str]:
        return _check_dimensions(v)

    @field_validator("otel_exporter_otlp_endpoint")
    @classmethod
    def _otlp(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        if not re.match(r"^https?://[^/\s]+", v.strip()):
            raise ValueError(f"expected an http(s) URL such as http://collector:4318, got {v!r}")
        return v.strip()

    @model_validator(mode="after")
    def _pairs(self) -> Settings:
        if self.pinecone_api_key and not (self.pinecone_index or self.pinecone_host):
            raise ValueError("PINECONE_INDEX: required when PINECONE_API_KEY is set")
        # JIRA_EMAIL is optional: without it the token is a Data Center personal access token.
        jira = [self.jira_url, self.jira_api_token, self.jira_project]
        if any(jira) or self.jira_email or self.jira_projects:
            missing = [
                n
                for n, v in zip(["JIRA_URL", "JIRA_API_TOKEN", "JIRA_PROJECT"], jira, strict=True)
                if not v
            ]
        else:
            missing = []
        if missing:
            raise ValueError(f"{missing[0]}: required when any JIRA_* setting is set")
        return self

    # ------------------------------------------------------------------ derived values

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            url = self.database_url
            # Heroku-style URLs say postgres://; SQLAlchemy wants a driver, and we ship psycopg 3.
            if url.startswith("postgres://"):
                url = "postgresql+psycopg://" + url[len("postgres://") :]
            elif url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url[len("postgresql://") :]
            return url
        return f"sqlite:///{(self.bot_data_dir / 'ideabot.sqlite3').resolve()}"

    @property
    def type_kinds(self) -> dict[str, str]:
        """Lower-case Jira issue type name -> kind: the defaults, then JIRA_TYPE_KINDS."""
        return {**DEFAULT_TYPE_KINDS, **self.jira_type_kinds}

    @property
    def issue_types(self) -> dict[str, str]:
        """Kind -> the Jira issue type filed for it: the defaults, then JIRA_ISSUE_TYPES."""
        return {**DEFAULT_ISSUE_TYPES, **self.jira_issue_types}

    @property
    def digest_zone(self) -> ZoneInfo:
        """DIGEST_TIMEZONE as a ZoneInfo (the name was checked at load, so this cannot fail)."""
        return ZoneInfo(self.digest_timezone)

    @property
    def jira_configured(self) -> bool:
        return bool(self.jira_url and self.jira_project)

    @property
    def file_emojis(self) -> dict[str, EmojiAction]:
        """FILE_EMOJI as emoji -> what it files (one name: files by the analysed kind)."""
        return parse_file_emoji(self.file_emoji)

    @property
    def file_emoji_hint(self) -> str:
        """The file emoji the triage reply suggests."""
        return hint_emoji(self.file_emojis)

    def project_routing(self) -> ProjectRouting:
        """A new routing of channels to projects (JIRA_PROJECTS, JIRA_PROJECT the fallback).
        The composition root builds one and shares it (``Bot.routing``): names resolve once."""
        return ProjectRouting(
            self.jira_project,
            self.jira_projects,
            across_projects=self.similar_across_projects,
        )

    @property
    def pinecone_configured(self) -> bool:
        return bool(self.pinecone_api_key)


def allowed_projects(settings: Settings) -> tuple[str, ...]:
    """Every project the bot may file into: JIRA_PROJECT first, then JIRA_PROJECTS'."""
    return settings.project_routing().allowed_projects()


def load_settings(**overrides: Any) -> Settings:
    """Reads the settings; raises ConfigError with a one-line message naming the bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__")
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        if not loc and ":" in msg:
            raise ConfigError(msg) from None
        raise ConfigError(f"{loc.upper() or 'settings'}: {msg}") from None
