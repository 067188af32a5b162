"""Which Jira project a channel files into (``JIRA_PROJECTS``, ``JIRA_PROJECT`` the fallback).

Pure values: the routes as configured, parsed from the environment's compact form or JSON, and
the channel -> route lookup the use cases share. Channel names (``#mobile``) become ids once the
chat has been asked (:meth:`ProjectRouting.resolve`), like ``IDEA_CHANNELS``.

Compact form, entries separated by ``;``::

    #mobile=MOB; #web,C0123ABC=WEB|labels=web,frontend|components=UI|types=bug:Defect,idea:Story

JSON form (an object, channel -> project key or an object)::

    {"#mobile": "MOB", "C0123ABC": {"project": "WEB", "issue_types": {"bug": "Defect"},
     "labels": ["web"], "components": ["UI"]}}
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pydantic import Field

from bot.domain.models import KINDS, Frozen

# Jira project keys: an upper-case letter, then upper-case letters, digits or underscores.
_PROJECT_KEY = re.compile(r"^[A-Z][A-Z0-9_]{0,99}$")
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]+$")
_CHANNEL_NAME = re.compile(r"^#?[a-z0-9][a-z0-9_\-]{0,79}$")


class ProjectRoute(Frozen):
    """Where one channel's posts are filed: the project, and what it files them as.

    *issue_types* (kind -> issue type) overrides ``JIRA_ISSUE_TYPES`` for this project only;
    *labels* and *components* are added to every issue filed there.
    """

    project: str
    issue_types: dict[str, str] = Field(default_factory=dict)
    labels: tuple[str, ...] = ()
    components: tuple[str, ...] = ()

    def issue_type(self, kind: str, defaults: Mapping[str, str]) -> str:
        """The issue type for *kind*: this project's map, then *defaults*, then the idea's."""
        return (
            self.issue_types.get(kind)
            or defaults.get(kind)
            or self.issue_types.get("idea")
            or defaults.get("idea", "Task")
        )


def project_key(value: str, where: str = "") -> str:
    """*value* as a Jira project key (upper-cased); raises ValueError naming *where*."""
    key = value.strip().upper()
    if not _PROJECT_KEY.match(key):
        raise ValueError(f"{where}{value!r} is not a Jira project key (letters, digits, _)")
    return key


def _channel(value: str) -> str:
    raw = value.strip()
    if _CHANNEL_ID.match(raw):
        return raw
    name = raw.lower()
    if not _CHANNEL_NAME.match(name):
        raise ValueError(f"{value!r} is not a channel id (C0123ABC) or name (#mobile)")
    return "#" + name.lstrip("#")


def _types(pairs: Mapping[str, Any] | Iterable[tuple[str, str]], where: str) -> dict[str, str]:
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    out: dict[str, str] = {}
    for kind, issue_type in items:
        k = str(kind).strip().lower()
        if k not in KINDS:
            raise ValueError(f"{where}unknown kind {kind!r} (expected one of {', '.join(KINDS)})")
        if not str(issue_type).strip():
            raise ValueError(f"{where}empty issue type for {kind!r}")
        out[k] = str(issue_type).strip()
    return out


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list):
        raise ValueError(f"{where}expected a list of names, got {value!r}")
    return tuple(s for s in (str(x).strip() for x in value) if s)


def _compact_route(text: str, where: str) -> ProjectRoute:
    project, *options = text.split("|")
    route: dict[str, Any] = {"project": project_key(project, where)}
    for option in options:
        name, eq, value = option.partition("=")
        name = name.strip().lower()
        if not eq or not value.strip():
            raise ValueError(f"{where}expected option=value after '|', got {option.strip()!r}")
        if name in ("labels", "components"):
            route[name] = _strings(value, where)
        elif name == "types":
            pairs = []
            for pair in value.split(","):
                kind, colon, issue_type = pair.partition(":")
                if not colon:
                    raise ValueError(f"{where}types: expected kind:Type pairs, got {pair!r}")
                pairs.append((kind, issue_type))
            route["issue_types"] = _types(pairs, where)
        else:
            raise ValueError(f"{where}unknown option {name!r} (labels, components, types)")
    return ProjectRoute(**route)


def _json_route(value: Any, where: str) -> ProjectRoute:
    if isinstance(value, str):
        return ProjectRoute(project=project_key(value, where))
    if not isinstance(value, dict):
        raise ValueError(f"{where}expected a project key or an object, got {value!r}")
    unknown = set(value) - {"project", "issue_types", "labels", "components"}
    if unknown:
        raise ValueError(f"{where}unknown key {sorted(unknown)[0]!r}")
    if not isinstance(value.get("project"), str):
        raise ValueError(f"{where}'project' (a project key) is required")
    types = value.get("issue_types") or {}
    if not isinstance(types, dict):
        raise ValueError(f"{where}'issue_types' must be an object of kind: issue type")
    return ProjectRoute(
        project=project_key(value["project"], where),
        issue_types=_types(types, where),
        labels=_strings(value.get("labels") or [], where),
        components=_strings(value.get("components") or [], where),
    )


def parse_routes(raw: Any) -> dict[str, ProjectRoute]:
    """``JIRA_PROJECTS`` (compact text, JSON text, or a dict) -> channel -> route.

    Channel ids are kept as written; names are lower-cased with a leading ``#``. Raises
    ValueError with a message naming the entry at fault.
    """
    if raw is None or raw == "" or raw == {}:
        return {}
    if isinstance(raw, Mapping) and all(isinstance(v, ProjectRoute) for v in raw.values()):
        return {_channel(str(k)): v for k, v in raw.items()}
    if isinstance(raw, str) and raw.strip().startswith("{"):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"invalid JSON: {exc}") from None
    out: dict[str, ProjectRoute] = {}
    if isinstance(raw, Mapping):
        for channel, value in raw.items():
            where = f"{channel}: "
            route = _json_route(value, where)
            for c in str(channel).split(","):
                _add(out, _channel(c), route)
        return out
    for entry in str(raw).split(";"):
        if not entry.strip():
            continue
        channels, eq, rest = entry.partition("=")
        if not eq or not channels.strip() or not rest.strip():
            raise ValueError(f"expected channels=PROJECT entries separated by ';', got {entry!r}")
        route = _compact_route(rest, f"{channels.strip()}: ")
        for c in channels.split(","):
            _add(out, _channel(c), route)
    return out


def _add(out: dict[str, ProjectRoute], channel: str, route: ProjectRoute) -> None:
    if channel in out and out[channel] != route:
        raise ValueError(f"{channel} is mapped twice ({out[channel].project}, {route.project})")
    out[channel] = route


class ProjectRouting:
    """Channel -> project route, with the fallback project for every other channel.

    Shared by triage (which project's tickets to search), filing (where to file) and the
    review modal (which projects a person may move an idea to: :meth:`allowed_projects`).
    """

    def __init__(
        self,
        fallback: str | None,
        routes: Mapping[str, ProjectRoute] | None = None,
        *,
        across_projects: bool = False,
    ) -> None:
        self.fallback = ProjectRoute(project=fallback) if fallback else None
        self.across_projects = across_projects
        routes = dict(routes or {})
        self._order = tuple(dict.fromkeys(r.project for r in routes.values()))
        self._ids = {c: r for c, r in routes.items() if not c.startswith("#")}
        self._names = {c: r for c, r in routes.items() if c.startswith("#")}
        self._lock = threading.Lock()

    @property
    def several(self) -> bool:
        """True when more than one project is configured."""
        return len(self.allowed_projects()) > 1

    def allowed_projects(self) -> tuple[str, ...]:
        """Every project the bot files into: the fallback first, then the mapped ones."""
        keys = [self.fallback.project] if self.fallback else []
        return tuple(dict.fromkeys([*keys, *self._order]))

    def route(self, channel: str | None) -> ProjectRoute | None:
        """The route of *channel* (an id), else the fallback; None without either."""
        with self._lock:
            found = self._ids.get(channel or "")
        return found or self.fallback

    def route_for_project(self, project: str) -> ProjectRoute:
        """The configuration of *project* (its first route), or a bare route for it."""
        with self._lock:
            routes = [*self._ids.values(), *self._names.values()]
        for r in routes:
            if r.project == project:
                return r
        return ProjectRoute(project=project)

    def project(self, channel: str | None) -> str | None:
        """The project *channel* files into."""
        r = self.route(channel)
        return r.project if r else None

    def search_projects(self, channel: str | None) -> tuple[str, ...] | None:
        """The projects whose tickets are searched for a post in *channel*: its own, or None
        (no filter) with one project or ``SIMILAR_ACROSS_PROJECTS``."""
        if self.across_projects or not self.several:
            return None
        project = self.project(channel)
        return (project,) if project else None

    @property
    def needs_lookup(self) -> bool:
        with self._lock:
            return bool(self._names)

    def resolve(self, lookup: Callable[[Sequence[str]], set[str]]) -> list[str]:
        """Turns the configured names into ids with *lookup* (the chat's ``resolve_channels``),
        one name at a time so each id keeps its route; returns the names not found."""
        with self._lock:
            names = dict(self._names)
        missing: list[str] = []
        found: dict[str, ProjectRoute] = {}
        for name, route in names.items():
            ids = lookup([name])
            if not ids:
                missing.append(name)
            for channel in ids:
                found.setdefault(channel, route)
        with self._lock:
            for channel, route in found.items():
                self._ids.setdefault(channel, route)  # an id written out wins over a name
            self._names = {}
        return missing
