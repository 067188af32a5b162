"""The fields of a tracker's create screen, the values a person or a default gives them, and the
rules that check one against the other before anything is sent.

Pure: the tracker adapter reads create metadata into :class:`CreateMeta` and writes
:class:`FieldValue` in its own format; the Slack side renders them as inputs. Which fields the
bot fills itself (summary, description, type, project, reporter, labels) is :data:`BOT_FIELDS`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

FieldKind = Literal[
    "option",  # one of allowed values (select lists, priority)
    "options",  # several of allowed values (multi-selects, components, versions)
    "user",  # a person, given by e-mail; the tracker finds the account
    "date",  # YYYY-MM-DD
    "datetime",  # ISO 8601
    "number",
    "text",  # one line
    "paragraph",  # several lines
    "labels",
    "unsupported",  # a type the form cannot set (cascading selects, attachments...)
]
FieldRaw = str | float | tuple[str, ...]

# Set by the bot from the post and its triage, never asked as a "field".
BOT_FIELDS = frozenset(
    {"summary", "description", "issuetype", "project", "reporter", "labels", "attachment"}
)
# Optional fields the review form offers when the create screen has them.
OFFERED_FIELDS = ("priority", "components", "assignee")
ANY_PROJECT = "*"
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class Frozen(BaseModel):
    # As bot.domain.models.Frozen, which imports this module (NewIssue carries FieldValues).
    model_config = ConfigDict(frozen=True, extra="forbid")


class Choice(Frozen):
    """One allowed value of a select field: the tracker's id and the name people see."""

    id: str
    name: str


class FieldSpec(Frozen):
    """One field of a create screen, for one project and issue type."""

    id: str  # "customfield_10010", "priority"
    name: str  # "Team"
    kind: FieldKind
    required: bool = False
    has_default: bool = False  # the tracker fills it when left out
    allowed: tuple[Choice, ...] = ()

    def choice(self, text: str) -> Choice | None:
        """The allowed value whose id or name is *text* (names compared case-insensitively)."""
        wanted = text.strip().lower()
        for c in self.allowed:
            if c.id == text.strip() or c.name.strip().lower() == wanted:
                return c
        return None


class CreateMeta(Frozen):
    """What the tracker asks for when creating an issue of one type in one project."""

    project: str
    issue_type: str
    fields: tuple[FieldSpec, ...] = ()
    issue_types: tuple[str, ...] = ()  # every type the project can create (for the form)

    def field(self, key: str) -> FieldSpec | None:
        """The field whose id or name is *key* (names compared case-insensitively)."""
        low = key.strip().lower()
        for f in self.fields:
            if f.id == key.strip() or f.name.strip().lower() == low:
                return f
        return None

    def asked(self) -> list[FieldSpec]:
        """The fields a person may have to give: required ones the bot does not fill itself
        (even when the tracker has a default), then the offered optional ones present."""
        out = [f for f in self.fields if f.required and f.id not in BOT_FIELDS]
        ids = {f.id for f in out}
        for fid in OFFERED_FIELDS:
            f = self.field(fid)
            if f is not None and f.id not in ids and f.kind != "unsupported":
                out.append(f)
        return out

    def missing(self, values: Mapping[str, FieldValue]) -> list[FieldSpec]:
        """Required fields that neither *values* nor the tracker's own default fill."""
        return [
            f
            for f in self.fields
            if f.required
            and f.id not in BOT_FIELDS
            and not f.has_default
            and not _filled(values.get(f.id))
        ]


class FieldValue(Frozen):
    """A value for one field: option ids, an e-mail, an ISO date, a number or text."""

    kind: FieldKind
    value: FieldRaw
    label: str = ""  # what people see (an option's name, a person's name)


def _filled(v: FieldValue | None) -> bool:
    if v is None:
        return False
    return v.value not in ("", ()) and v.value is not None


@runtime_checkable
class FieldCatalog(Protocol):
    """Where create metadata comes from (the tracker adapter)."""

    def create_meta(self, project: str, issue_type: str) -> CreateMeta:
        """The create screen of *issue_type* in *project*; raises TrackerError."""
        ...


def validate(meta: CreateMeta, values: Mapping[str, FieldValue]) -> dict[str, str]:
    """Problems with *values* by field id (empty: fine), checked as the tracker would: every
    required field given, choices among the allowed ones, dates and numbers well-formed."""
    errors: dict[str, str] = {}
    for f in meta.missing(values):
        errors[f.id] = f"{f.name} is required."
    for fid, v in values.items():
        spec = meta.field(fid)
        if spec is None or fid in errors or not _filled(v):
            continue
        problem = _check(spec, v)
        if problem:
            errors[fid] = problem
    return errors


def _check(spec: FieldSpec, v: FieldValue) -> str | None:
    if spec.kind in ("option", "options") and spec.allowed:
        ids = {c.id for c in spec.allowed}
        given = v.value if isinstance(v.value, tuple) else (str(v.value),)
        bad = [x for x in given if x not in ids]
        if bad:
            return f"{spec.name}: not one of the allowed values."
    if spec.kind == "date" and not _is_date(str(v.value)):
        return f"{spec.name}: a date is needed (YYYY-MM-DD)."
    if spec.kind == "number" and not isinstance(v.value, float | int):
        return f"{spec.name}: a number is needed."
    return None


def _is_date(text: str) -> bool:
    if not _DATE.fullmatch(text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def value_from_text(spec: FieldSpec, text: str) -> FieldValue | None:
    """*text* (a configured default) as a value of *spec*, or None when it cannot be one."""
    text = text.strip()
    if not text:
        return None
    if spec.kind == "option":
        c = spec.choice(text)
        return FieldValue(kind="option", value=c.id, label=c.name) if c else None
    if spec.kind == "options":
        choices = [spec.choice(part) for part in text.split(",") if part.strip()]
        if not choices or any(c is None for c in choices):
            return None
        found = [c for c in choices if c is not None]
        return FieldValue(
            kind="options", value=tuple(c.id for c in found), label=", ".join(c.name for c in found)
        )
    if spec.kind == "number":
        try:
            return FieldValue(kind="number", value=float(text), label=text)
        except ValueError:
            return None
    if spec.kind == "date":
        return FieldValue(kind="date", value=text, label=text) if _is_date(text) else None
    if spec.kind == "labels":
        labels = tuple(p.strip() for p in text.split(",") if p.strip())
        return FieldValue(kind="labels", value=labels, label=text)
    if spec.kind == "unsupported":
        return None
    return FieldValue(kind=spec.kind, value=text, label=text)


def resolve_defaults(
    meta: CreateMeta, defaults: Mapping[str, Mapping[str, str]]
) -> tuple[dict[str, FieldValue], list[str]]:
    """The configured defaults (``parse_field_defaults``) that apply to *meta*'s project, as
    values of its fields, and the problems (a default naming no field of the screen is skipped
    silently: screens differ by issue type; one whose value the field cannot take is named)."""
    entries = {**defaults.get(ANY_PROJECT, {}), **defaults.get(meta.project, {})}
    values: dict[str, FieldValue] = {}
    problems: list[str] = []
    for key, text in entries.items():
        spec = meta.field(key)
        if spec is None:
            continue
        v = value_from_text(spec, text)
        if v is None:
            problems.append(f"JIRA_FIELD_DEFAULTS: {key}={text} is not a value {spec.name} takes")
            continue
        values[spec.id] = v
    return values, problems


def parse_field_defaults(raw: object) -> dict[str, dict[str, str]]:
    """JIRA_FIELD_DEFAULTS: ``Team=Platform, Product area=Web`` (every project) or JSON,
    ``{"Team": "Platform"}`` or per project ``{"IDEA": {"Team": "Platform"}, "*": {...}}``.
    Field names or ids; values are option names, numbers, dates or text. Raises ValueError
    with a message naming what is wrong."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str) and raw.strip().startswith("{"):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON ({exc.msg} at character {exc.pos})") from None
    if isinstance(raw, Mapping):
        if all(isinstance(v, Mapping) for v in raw.values()) and raw:
            return {str(p).strip(): _entries(v, f"project {p}") for p, v in raw.items()}
        return {ANY_PROJECT: _entries(raw, "the object")}
    if not isinstance(raw, str):
        raise ValueError("expected 'Field=value, ...' or a JSON object")
    out: dict[str, str] = {}
    for part in _split(raw):
        name, sep, value = part.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValueError(f"expected Field=value, got {part.strip()!r}")
        out[name.strip()] = value.strip()
    return {ANY_PROJECT: out} if out else {}


def _split(raw: str) -> Iterable[str]:
    # Commas separate entries, except inside a multi-value default ("Components=Web,API"):
    # a piece without "=" continues the previous entry's value.
    pieces: list[str] = []
    for piece in raw.split(","):
        if "=" in piece or not pieces:
            pieces.append(piece)
        else:
            pieces[-1] += "," + piece
    return [p for p in pieces if p.strip()]


def _entries(value: object, where: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected an object of field -> value")
    out: dict[str, str] = {}
    for k, v in value.items():
        if isinstance(v, list):
            v = ",".join(str(x) for x in v)
        if not isinstance(v, str | int | float) or isinstance(v, bool) or not str(k).strip():
            raise ValueError(f"{where}: {k!r} needs a text, number or list value")
        out[str(k).strip()] = str(v)
    return out
