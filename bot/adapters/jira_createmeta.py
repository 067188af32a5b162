"""Jira's create metadata read into ``CreateMeta``, and ``FieldValue``s written as Jira fields.

Two shapes of the API, both paged:

- ``GET issue/createmeta/{project}/issuetypes`` then ``.../issuetypes/{typeId}`` (Jira Cloud and
  Data Center 8.4+). Cloud answers ``{issueTypes | fields, startAt, maxResults, total}``, Data
  Center ``{values, isLast, ...}``; each field names itself in ``fieldId``.
- the older ``GET issue/createmeta?projectKeys=..&expand=projects.issuetypes.fields`` (Data
  Center before 8.4; removed from Cloud), whose fields are an object keyed by field id.

Only translation: the choice of which fields to ask lives in ``bot.domain.issue_fields``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bot.domain.issue_fields import Choice, CreateMeta, FieldKind, FieldSpec, FieldValue
from bot.domain.ports import TrackerRejected

logger = logging.getLogger(__name__)

GetJson = Callable[[str, dict[str, Any]], Any]
PAGE = 50
MAX_PAGES = 40  # 2,000 fields or types: the bound guards a server that never says "last"
ALLOWED_MAX = 1000  # more allowed values than this are cut (the form pages them by search)


def fetch_create_meta(get_json: GetJson, project: str, issue_type: str) -> CreateMeta:
    """The create screen of *issue_type* (a name) in *project*; raises TrackerRejected when the
    project cannot create that type, TrackerRetryable when Jira does not answer."""
    try:
        types = _paged(get_json, f"issue/createmeta/{project}/issuetypes", ("issueTypes",))
    except TrackerRejected as exc:
        if "HTTP 404" not in str(exc):
            raise
        return _legacy(get_json, project, issue_type)
    names = tuple(str(t.get("name")) for t in types if not t.get("subtask") and t.get("name"))
    wanted = next(
        (t for t in types if str(t.get("name", "")).lower() == issue_type.strip().lower()), None
    )
    if wanted is None or wanted.get("id") is None:
        raise TrackerRejected(
            f"{project} cannot create issues of type {issue_type}",
            {"issuetype": f"not an issue type of {project} (available: {', '.join(names)})"},
        )
    raw = _paged(get_json, f"issue/createmeta/{project}/issuetypes/{wanted['id']}", ("fields",))
    fields = tuple(spec for spec in (parse_field(f) for f in raw) if spec is not None)
    return CreateMeta(
        project=project, issue_type=str(wanted["name"]), fields=fields, issue_types=names
    )


def _paged(get_json: GetJson, path: str, cloud_keys: tuple[str, ...]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    start = 0
    for _ in range(MAX_PAGES):
        raw = get_json(path, {"startAt": start, "maxResults": PAGE})
        if not isinstance(raw, dict):
            break
        page: Any = raw.get("values")
        for key in cloud_keys:
            if page is None:
                page = raw.get(key)
        page = [x for x in page or [] if isinstance(x, dict)]
        out.extend(page)
        start = int(raw.get("startAt", start)) + len(page)
        total = raw.get("total")
        if "isLast" in raw:
            done = bool(raw["isLast"])
        elif total is not None:
            done = start >= int(total)
        else:
            done = len(page) < int(raw.get("maxResults", PAGE))
        if not page or done:
            break
    return out


def _legacy(get_json: GetJson, project: str, issue_type: str) -> CreateMeta:
    raw = get_json(
        "issue/createmeta",
        {"projectKeys": project, "expand": "projects.issuetypes.fields"},
    )
    projects = raw.get("projects") if isinstance(raw, dict) else None
    found = next(
        (p for p in projects or [] if str(p.get("key", "")).upper() == project.upper()), None
    )
    if found is None:
        raise TrackerRejected(f"no project {project} to create issues in", {"project": project})
    types = [t for t in found.get("issuetypes") or [] if isinstance(t, dict)]
    names = tuple(str(t.get("name")) for t in types if not t.get("subtask") and t.get("name"))
    wanted = next(
        (t for t in types if str(t.get("name", "")).lower() == issue_type.strip().lower()), None
    )
    if wanted is None:
        raise TrackerRejected(
            f"{project} cannot create issues of type {issue_type}",
            {"issuetype": f"not an issue type of {project} (available: {', '.join(names)})"},
        )
    raw_fields = wanted.get("fields") or {}
    specs = []
    for fid, f in raw_fields.items() if isinstance(raw_fields, dict) else ():
        if isinstance(f, dict):
            spec = parse_field({**f, "fieldId": f.get("fieldId") or f.get("key") or fid})
            if spec is not None:
                specs.append(spec)
    return CreateMeta(
        project=project, issue_type=str(wanted["name"]), fields=tuple(specs), issue_types=names
    )


def parse_field(raw: dict[str, Any]) -> FieldSpec | None:
    """One create-metadata field as a FieldSpec (None when it names no field)."""
    fid = raw.get("fieldId") or raw.get("key")
    if not isinstance(fid, str) or not fid:
        return None
    got = raw.get("schema")
    schema: dict[str, Any] = got if isinstance(got, dict) else {}
    allowed = []
    for v in (raw.get("allowedValues") or [])[:ALLOWED_MAX]:
        if isinstance(v, dict) and v.get("id") is not None and not v.get("disabled"):
            name = v.get("name") or v.get("value") or str(v["id"])
            allowed.append(Choice(id=str(v["id"]), name=str(name)))
    return FieldSpec(
        id=fid,
        name=str(raw.get("name") or fid),
        kind=field_kind(schema),
        required=bool(raw.get("required")),
        has_default=bool(raw.get("hasDefaultValue")),
        allowed=tuple(allowed),
    )


def field_kind(schema: dict[str, Any]) -> FieldKind:
    """The form's kind of input for a Jira field schema."""
    kind = str(schema.get("type") or "")
    items = str(schema.get("items") or "")
    custom = str(schema.get("custom") or "")
    if kind in ("option", "priority", "version", "component", "resolution", "securitylevel"):
        return "option"
    if kind == "array" and items in ("option", "component", "version"):
        return "options"
    if kind == "array" and items == "string":
        return "labels"
    if kind == "user":
        return "user"
    if kind in ("date", "datetime", "number"):
        return kind  # type: ignore[return-value]
    if kind == "string":
        return "paragraph" if custom.endswith(":textarea") else "text"
    return "unsupported"


def jira_value(v: FieldValue, user: Callable[[str], dict[str, str] | None]) -> Any:
    """*v* as Jira's REST v2 wants it; None to leave the field out (a person with no account).
    *user* finds the account of an e-mail."""
    value = v.value
    if v.kind == "option":
        return {"id": str(value)}
    if v.kind == "options":
        ids = value if isinstance(value, tuple) else (str(value),)
        return [{"id": x} for x in ids]
    if v.kind == "user":
        return user(str(value)) if value else None
    if v.kind == "number":
        return float(value) if isinstance(value, float | int) else None
    if v.kind == "labels":
        return list(value) if isinstance(value, tuple) else [str(value)]
    if v.kind == "unsupported":
        return None
    return str(value)
