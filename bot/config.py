"""One settings object, read from the environment and `.env`, validated at start-up.

Every setting is documented in `.env.example`. A missing or malformed value raises
:class:`ConfigError` with one line naming the variable; `__main__` prints it and exits 2.
"""

from __future__ import annotations

import re
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_TYPE_KINDS = {
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
DEFAULT_ISSUE_TYPES = {"idea": "Story", "bug": "Bug", "question": "Task", "other": "Task"}


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


def _parse_map(raw: str, var: str) -> dict[str, str]:
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


def _parse_list(raw: Any) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, list):
        return [str(x).strip() for x in raw if str(x).strip()]
    return [x.strip() for x in str(raw).split(",") if x.strip()]


_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def _parse_time(raw: str) -> time:
    m = _HHMM.match(raw.strip())
    if not m:
        raise ValueError(f"expected HH:MM, got {raw!r}")
    return time(int(m.group(1)), int(m.group(2)))


CsvList = Annotated[list[str], NoDecode]


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
    embeddings_model: str | None = None
    offline_min_labelled: int = Field(30, ge=1)
    jira_type_kinds: str = ""
    duplicate_threshold: float = Field(0.70, gt=0, le=1)
    similar_min_score: float = Field(0.5, ge=0, le=1)
    max_post_chars: int = Field(8000, ge=200)

    # index
    pinecone_api_key: SecretStr | None = None
    pinecone_index: str | None = None
    pinecone_host: str | None = None

    # jira
    jira_url: str | None = None
    jira_email: str | None = None
    jira_api_token: SecretStr | None = None
    jira_project: str | None = None
    jira_issue_types: str = ""
    jira_sync_jql: str | None = None
    jira_sync_minutes: int = Field(30, ge=0)
    jira_deployment: Literal["auto", "cloud", "datacenter"] = "auto"

    # slack
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str | None = None
    idea_channels: CsvList = Field(default_factory=list)
    triage_threads: bool = False
    file_emoji: str = "ticket"
    filed_emoji: str = "white_check_mark"
    file_allowed_users: CsvList = Field(default_factory=list)
    file_allowed_groups: CsvList = Field(default_factory=list)

    # digests
    digest_channel: str | None = None
    digest_timezone: str = "UTC"
    digest_days: str = "mon-fri"
    meeting_digest_at: str = "08:30"
    takeaway_digest_at: str = "17:30"
    digest_grace_minutes: int = Field(120, ge=0)
    meetings_ics: CsvList = Field(default_factory=list)
    workday: str = "09:00-17:30"

    log_level: str = "INFO"
    prompts_dir: Path | None = None

    @field_validator(
        "idea_channels", "file_allowed_users", "file_allowed_groups", "meetings_ics", mode="before"
    )
    @classmethod
    def _csv(cls, v: Any) -> list[str]:
        return _parse_list(v)

    @field_validator("file_emoji", "filed_emoji")
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

    @field_validator("digest_timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v

    @field_validator("meeting_digest_at", "takeaway_digest_at")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        _parse_time(v)
        return v.strip()

    @field_validator("workday")
    @classmethod
    def _workday(cls, v: str) -> str:
        parts = v.split("-")
        if len(parts) != 2:
            raise ValueError(f"expected HH:MM-HH:MM, got {v!r}")
        a, b = (_parse_time(p) for p in parts)
        if a >= b:
            raise ValueError(f"the working day must end after it starts, got {v!r}")
        return v

    @field_validator("jira_issue_types", "jira_type_kinds")
    @classmethod
    def _maps(cls, v: str) -> str:
        _parse_map(v, "")
        return v

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        v = v.upper()
        if v not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError(f"expected DEBUG, INFO, WARNING or ERROR, got {v!r}")
        return v

    @model_validator(mode="after")
    def _pairs(self) -> Settings:
        if self.pinecone_api_key and not (self.pinecone_index or self.pinecone_host):
            raise ValueError("PINECONE_INDEX: required when PINECONE_API_KEY is set")
        # JIRA_EMAIL is optional: without it the token is a Data Center personal access token.
        jira = [self.jira_url, self.jira_api_token, self.jira_project]
        if any(jira) or self.jira_email:
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
        m = dict(DEFAULT_TYPE_KINDS)
        m.update({k: v.lower() for k, v in _parse_map(self.jira_type_kinds, "").items()})
        return m

    @property
    def issue_types(self) -> dict[str, str]:
        m = dict(DEFAULT_ISSUE_TYPES)
        m.update(_parse_map(self.jira_issue_types, ""))
        return m

    @property
    def workday_hours(self) -> tuple[time, time]:
        a, b = self.workday.split("-")
        return _parse_time(a), _parse_time(b)

    @property
    def jira_configured(self) -> bool:
        return bool(self.jira_url and self.jira_project)

    @property
    def pinecone_configured(self) -> bool:
        return bool(self.pinecone_api_key)


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
