"""A small fake Jira REST server for tests: real `jira` client in, recorded requests out.

Loopback only, ephemeral port, threaded. Emulates the endpoints ideabot's JiraTracker (and the
`jira` library behind it) calls, on ``/rest/api/2``, ``/rest/api/3`` and ``/rest/api/latest``:

- ``GET serverInfo``, ``GET myself``, ``GET field``
- ``GET project/{key}``, ``GET issue/createmeta/{key}/issuetypes`` (Cloud answers
  ``{issueTypes, startAt, maxResults, total}``, Data Center ``{values, isLast, ...}``)
- ``transition(key, status, assignee=, resolution=)`` changes an issue as a person would
  (``updated`` moves on); ``send_webhook(url, key, secret=)`` posts Jira's signed webhook;
  ``PUT issue/{key}`` edits description, summary and labels
- ``POST issue`` (validated: project, issue type, summary, labels, reporter, required fields;
  summary, description and comment lengths counted in UTF-16 code units, as Java counts them),
  ``GET issue/{key}``, ``POST/GET issue/{key}/comment``, ``POST/GET issue/{key}/remotelink``
  (``globalId`` and ``title`` at most 255 UTF-16 units)
- ``GET user/search`` (only ``query=`` on Cloud, only ``username=`` on Data Center)
- ``GET/POST search`` (startAt/maxResults/total; 410 Gone on Cloud) and ``GET/POST search/jql``
  (nextPageToken; Cloud only); v3 answers descriptions as Atlassian Document Format; issues
  carry ``labels`` and ``components`` (``[{"name": ...}]``)
- ``serverInfo`` says ``deploymentType`` Cloud, or Server/DataCenter (``deployment_type=``)
- every path also under the Cloud API gateway's ``/ex/jira/{cloudId}`` prefix
- a small JQL subset: ``project``, ``key``, ``issuetype``, ``status`` (``=``, ``!=``, ``in``),
  ``labels`` (``=``, ``!=``),
  ``updated``/``created`` compared with ``"yyyy/MM/dd HH:mm"``, ``"yyyy-MM-dd"`` or ``-2d``/``-15m``
  (dates read as wall times in the account's time zone, ``time_zone=``, UTC by default, as
  Jira reads them in the searching user's zone), joined by AND,
  then ``ORDER BY updated|created|key [ASC|DESC]``.

Usage::

    with FakeJira(project="PROJ") as jira:        # or jira = FakeJira(); jira.start(); jira.stop()
        tracker = JiraTracker(jira.base_url, "PROJ", jira.token, email=jira.email)
        jira.fail_next("/rest/api/2/issue", 503)  # the next matching request answers 503
        ...
        jira.issues["PROJ-1"]["fields"]["summary"]; jira.requests_to("/remotelink")
"""

from __future__ import annotations

import base64
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse
from zoneinfo import ZoneInfo

# Also under the API gateway's /ex/jira/{cloudId} (scoped tokens and OAuth on Cloud).
_API = re.compile(r"^(?:/ex/jira/[\w-]+)?/rest/api/(2|3|latest)/(.*)$")
_DEFAULT_TYPES = ("Bug", "Story", "Task", "Epic")
# Jira counts its limits in Java chars (UTF-16 code units): an emoji counts twice.
SUMMARY_LIMIT = 255
TEXT_LIMIT = 32_767
_SEARCH_GONE = (
    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API."
)
_TOO_LONG = "The entered text is too long. It exceeds the allowed limit of 32,767 characters."
_KEEP = object()  # transition(): leave the field as it is
_STANDARD_FIELDS = {
    "project",
    "summary",
    "description",
    "issuetype",
    "labels",
    "reporter",
    "priority",
    "assignee",
    "components",
}


@dataclass
class RecordedRequest:
    """One request the fake received (also the ones it refused)."""

    method: str
    path: str
    query: dict[str, list[str]]
    json: Any
    headers: dict[str, str]
    status: int = 0

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class _Failure:
    path: str
    status: int
    times: int
    headers: dict[str, str]
    body: Any
    method: str | None
    delay: float = 0.0


@dataclass
class FakeUser:
    email: str
    name: str
    account_id: str
    display_name: str = ""


@dataclass
class _State:
    issues: dict[str, dict[str, Any]] = field(default_factory=dict)
    comments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    links: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def units(text: str) -> int:
    """Length in UTF-16 code units, as Jira (Java) counts it."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _fmt(dt: datetime) -> str:
    """Jira's timestamp format: 2024-01-05T10:00:00.000+0000."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def adf(text: str) -> dict[str, Any]:
    """Plain text as an Atlassian Document Format document (one paragraph per line)."""
    paragraphs = [
        {"type": "paragraph", "content": [{"type": "text", "text": line}] if line else []}
        for line in text.split("\n")
    ]
    return {"type": "doc", "version": 1, "content": paragraphs}


class JqlError(ValueError):
    pass


_CLAUSE = re.compile(
    r'^\s*(\w+)\s*(>=|<=|!=|=|>|<|\bin\b|\bnot in\b)\s*(\(.*\)|"[^"]*"|\'[^\']*\'|\S+)\s*$',
    re.IGNORECASE,
)


def _unquote(v: str) -> str:
    v = v.strip()
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
        return v[1:-1]
    return v


def _jql_date(v: str, zone: tzinfo = UTC) -> datetime:
    v = _unquote(v)
    rel = re.fullmatch(r"-(\d+)([wdhm])", v)
    if rel:  # relative dates such as -15m, -2d
        unit = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes"}[rel.group(2)]
        return datetime.now(UTC) - timedelta(**{unit: int(rel.group(1))})
    for fmt in ("%Y/%m/%d %H:%M", "%Y-%m-%d %H:%M", "%Y/%m/%d", "%Y-%m-%d"):
        try:
            return datetime.strptime(v, fmt).replace(tzinfo=zone)
        except ValueError:
            continue
    raise JqlError(f"Date value '{v}' for field 'updated' is invalid.")


def parse_jql(
    jql: str, zone: tzinfo = UTC
) -> tuple[list[tuple[str, str, Any]], list[tuple[str, bool]]]:
    """(clauses, order): clauses are (field, op, value); order is [(field, descending)].

    Date literals are wall times in *zone* (the searching account's time zone)."""
    order: list[tuple[str, bool]] = []
    m = re.search(r"\border\s+by\b(.*)$", jql, re.IGNORECASE)
    where = jql[: m.start()] if m else jql
    if m:
        for part in m.group(1).split(","):
            bits = part.split()
            if not bits:
                continue
            name = bits[0].lower()
            if name not in ("updated", "created", "key"):
                raise JqlError(f"Not able to sort using field '{bits[0]}'.")
            desc = len(bits) > 1 and bits[1].lower() == "desc"
            order.append((name, desc))
    clauses: list[tuple[str, str, Any]] = []
    if where.strip():
        for raw in re.split(r"\s+and\s+", where.strip(), flags=re.IGNORECASE):
            cm = _CLAUSE.match(raw)
            if not cm:
                raise JqlError(f"Error in the JQL Query: cannot parse '{raw.strip()}'.")
            name, op, value = cm.group(1).lower(), cm.group(2).lower(), cm.group(3)
            if name in ("type",):
                name = "issuetype"
            if name in ("updated", "created"):
                if op not in (">=", "<=", ">", "<", "="):
                    raise JqlError(f"Operator '{op}' is not supported for '{name}'.")
                clauses.append((name, op, _jql_date(value, zone)))
            elif name == "labels":
                if op not in ("=", "!="):
                    raise JqlError(f"Operator '{op}' is not supported for 'labels'.")
                clauses.append((name, op, _unquote(value).lower()))
            elif name in ("project", "key", "issuetype", "status"):
                if op in ("in", "not in"):
                    vals = [_unquote(x) for x in value.strip()[1:-1].split(",") if x.strip()]
                    clauses.append((name, op, [x.lower() for x in vals]))
                elif op in ("=", "!="):
                    clauses.append((name, op, _unquote(value).lower()))
                else:
                    raise JqlError(f"Operator '{op}' is not supported for '{name}'.")
            else:
                raise JqlError(
                    f"Field '{cm.group(1)}' does not exist or you do not have permission."
                )
    return clauses, order


def _matches(issue: dict[str, Any], clauses: list[tuple[str, str, Any]]) -> bool:
    f = issue["fields"]
    for name, op, value in clauses:
        if name == "labels":
            has = value in [x.lower() for x in f.get("labels") or []]
            ok = has if op == "=" else not has
        elif name in ("updated", "created"):
            have: datetime = issue["_" + name]
            ok = {
                ">=": have >= value,
                "<=": have <= value,
                ">": have > value,
                "<": have < value,
                "=": have == value,
            }[op]
        else:
            actual = {
                "project": f["project"]["key"],
                "key": issue["key"],
                "issuetype": f["issuetype"]["name"],
                "status": f["status"]["name"],
            }[name].lower()
            if op == "=":
                ok = actual == value
            elif op == "!=":
                ok = actual != value
            elif op == "in":
                ok = actual in value
            else:
                ok = actual not in value
        if not ok:
            return False
    return True


class FakeJira:
    """A threaded fake Jira. ``start()`` returns the base URL; see the module docstring."""

    def __init__(
        self,
        project: str = "PROJ",
        *,
        email: str = "bot@example.com",
        token: str = "fake-jira-token-123",
        issue_types: tuple[str, ...] = _DEFAULT_TYPES,
        required_fields: dict[str, str] | None = None,
        users: list[FakeUser] | None = None,
        reporter_settable: bool = True,
        cloud: bool = False,
        max_page: int = 100,
        createmeta_issuetypes: bool = True,
        createmeta_page: int = 50,
        deployment_type: str | None = None,
        time_zone: str = "UTC",
        says_time_zone: bool = True,
    ) -> None:
        self.project = project
        # The bot account's time zone: JQL date literals are read in it, as Jira does, and
        # ``GET myself`` says it (unless *says_time_zone* is False).
        self.time_zone = time_zone
        self.says_time_zone = says_time_zone
        self.project_id = "10000"
        self.email = email
        self.token = token
        self.issue_types = list(issue_types)
        # field id -> Jira's message when missing, e.g. {"customfield_10010": "Team is required."}
        self.required_fields: dict[str, str] = dict(required_fields or {})
        self.users: list[FakeUser] = list(
            users
            if users is not None
            else [FakeUser("alice@example.com", "alice", "5b10a2844c20165700ede21g", "Alice")]
        )
        self.reporter_settable = reporter_settable
        self.cloud = cloud
        # serverInfo's deploymentType: "Cloud", or "Server" / "DataCenter" on a self-managed Jira
        self.deployment_type = deployment_type or ("Cloud" if cloud else "Server")
        self.max_page = max_page
        self.createmeta_issuetypes = createmeta_issuetypes
        self.createmeta_page = createmeta_page  # the server's own cap on a createmeta page
        self.requests: list[RecordedRequest] = []
        self._state = _State()
        self._failures: list[_Failure] = []
        self._lock = threading.RLock()
        self._next_id = 10001
        self._next_num = 1
        self._next_link = 1
        self._next_comment = 1
        self._release = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> str:
        """Starts serving on 127.0.0.1 (ephemeral port); returns the base URL."""
        fake = self

        class Handler(_Handler):
            owner = fake

        self._release.clear()
        self._server = _Server(("127.0.0.1", 0), Handler)
        host, port = self._server.server_address[:2]
        self.base_url = f"http://{host!s}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        """Stops the server (and releases any request held by an injected delay)."""
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeJira:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ test controls

    @property
    def issues(self) -> dict[str, dict[str, Any]]:
        """Issues by key (in creation order), as ``{"id", "key", "fields": {...}}``."""
        with self._lock:
            return {k: _public(v) for k, v in self._state.issues.items()}

    def comments(self, key: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._state.comments.get(key, []))

    def remote_links(self, key: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._state.links.get(key, []))

    def requests_to(self, path_substring: str, method: str | None = None) -> list[RecordedRequest]:
        """Recorded requests whose path contains *path_substring* (and with *method*, if given)."""
        with self._lock:
            return [
                r
                for r in self.requests
                if path_substring in r.path and (method is None or r.method == method.upper())
            ]

    def fail_next(
        self,
        path_substring: str,
        status: int = 503,
        times: int = 1,
        headers: dict[str, str] | None = None,
        body: Any = None,
        method: str | None = None,
    ) -> None:
        """The next *times* requests whose path contains *path_substring* answer *status*."""
        if body is None:
            body = {
                429: {"errorMessages": ["Rate limit exceeded."]},
                503: {"errorMessages": ["Service Unavailable"]},
            }.get(status, {"errorMessages": [f"Injected failure {status}"], "errors": {}})
        with self._lock:
            self._failures.append(
                _Failure(path_substring, status, times, dict(headers or {}), body, method)
            )

    def clear_failures(self) -> None:
        """Drops the failures and delays queued with ``fail_next``/``delay_next`` not yet used."""
        with self._lock:
            self._failures.clear()

    def delay_next(
        self, path_substring: str, seconds: float, times: int = 1, method: str | None = None
    ) -> None:
        """Holds the next matching requests (with *method*, if given) for *seconds* (or until
        stop) before answering."""
        with self._lock:
            self._failures.append(_Failure(path_substring, 0, times, {}, None, method, seconds))

    def add_issue(
        self,
        summary: str,
        description: str = "",
        issue_type: str = "Story",
        status: str = "To Do",
        updated: datetime | None = None,
        labels: list[str] | None = None,
        project: str | None = None,
        components: list[str] | None = None,
    ) -> str:
        """Seeds an issue directly (for search tests); returns its key."""
        with self._lock:
            issue = self._new_issue(
                {
                    "project": {"key": project or self.project},
                    "summary": summary,
                    "description": description,
                    "issuetype": {"name": issue_type},
                    "labels": labels or [],
                    "components": [
                        {"id": str(10100 + i), "name": c} for i, c in enumerate(components or [])
                    ],
                },
                status,
                updated,
            )
            return str(issue["key"])

    def transition(
        self,
        key: str,
        status: str | None = None,
        *,
        assignee: str | object | None = _KEEP,
        resolution: str | object | None = _KEEP,
        when: datetime | None = None,
    ) -> None:
        """Changes an issue as a person in Jira would: moves it to *status* (its category from
        the name: To Do/Open/Backlog "new", Done/Closed/Resolved "done", else
        "indeterminate"), assigns it (a display name; None unassigns), sets or clears its
        *resolution*; ``updated`` moves forward (to *when* if later)."""
        with self._lock:
            issue = self._state.issues[key]
            f = issue["fields"]
            if status is not None:
                f["status"] = _status(status)
            if assignee is not _KEEP:
                f["assignee"] = (
                    None if assignee is None else {"displayName": str(assignee), "active": True}
                )
            if resolution is not _KEEP:
                f["resolution"] = None if resolution is None else {"name": str(resolution)}
            self._touch(issue, when)

    def webhook_payload(self, key: str, event: str = "jira:issue_updated") -> bytes:
        """The body Jira posts to a webhook for *key* (the issue as it is now)."""
        with self._lock:
            issue = self._issue_json(self._state.issues[key], "2", None)
        return json.dumps(
            {"timestamp": 0, "webhookEvent": event, "issue": issue, "changelog": {"items": []}}
        ).encode()

    def send_webhook(
        self,
        url: str,
        key: str,
        *,
        secret: str | None = None,
        header_secret: str | None = None,
        event: str = "jira:issue_updated",
        body: bytes | None = None,
        timeout: float = 30.0,
    ) -> tuple[int, str]:
        """POSTs Jira's webhook for *key* to *url*, signed with *secret* (``X-Hub-Signature``,
        as Jira does) and/or carrying *header_secret*; returns (status, body text)."""
        import hashlib
        import hmac
        import urllib.error
        import urllib.request

        data = self.webhook_payload(key, event) if body is None else body
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Atlassian Webhook HTTP Client",
        }
        if secret is not None:
            digest = hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()
            headers["X-Hub-Signature"] = f"sha256={digest}"
        if header_secret is not None:
            headers["X-Ideabot-Webhook-Secret"] = header_secret
        req = urllib.request.Request(url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    # ------------------------------------------------------------------ internals

    def _touch(self, issue: dict[str, Any], when: datetime | None = None) -> None:
        # Jira's ``updated`` never goes back, and two changes in one millisecond still differ.
        now = when or datetime.now(UTC)
        issue["_updated"] = max(now, issue["_updated"] + timedelta(milliseconds=1))

    def _edit(self, issue: dict[str, Any], body: Any) -> tuple[int, Any, dict[str, str]]:
        """``PUT issue/{key}``: sets the fields given (description, summary, labels)."""
        if not isinstance(body, dict) or not isinstance(body.get("fields", {}), dict):
            return 400, {"errorMessages": ["Can not deserialize the request body."]}, {}
        fields = body.get("fields") or {}
        errors: dict[str, str] = {}
        for name, value in fields.items():
            if name not in ("description", "summary", "labels"):
                errors[name] = (
                    f"Field '{name}' cannot be set. "
                    "It is not on the appropriate screen, or unknown."
                )
            elif name == "description" and isinstance(value, str) and units(value) > TEXT_LIMIT:
                errors[name] = _TOO_LONG
        if errors:
            return 400, {"errorMessages": [], "errors": errors}, {}
        issue["fields"].update(fields)
        self._touch(issue)
        return 204, None, {}

    # ------------------------------------------------------------------ internals (issues)

    def _new_issue(
        self, fields: dict[str, Any], status: str = "To Do", when: datetime | None = None
    ) -> dict[str, Any]:
        now = when or datetime.now(UTC)
        key = f"{fields['project'].get('key', self.project)}-{self._next_num}"
        self._next_num += 1
        issue_id = str(self._next_id)
        self._next_id += 1
        type_name = fields["issuetype"].get("name") or self._type_by_id(fields["issuetype"]["id"])
        stored = dict(fields)
        stored["project"] = {
            "id": self.project_id,
            "key": fields["project"].get("key", self.project),
        }
        stored["issuetype"] = {"id": self._type_id(type_name), "name": type_name}
        stored["status"] = _status(status)
        stored.setdefault("assignee", None)
        stored["resolution"] = None
        stored.setdefault("labels", [])
        stored.setdefault("components", [])
        stored.setdefault("reporter", None)
        issue = {
            "id": issue_id,
            "key": key,
            "fields": stored,
            "_updated": now,
            "_created": now,
        }
        self._state.issues[key] = issue
        return issue

    def _type_id(self, name: str) -> str:
        return str(10001 + [t.lower() for t in self.issue_types].index(name.lower()))

    def _type_by_id(self, type_id: str) -> str:
        return self.issue_types[int(type_id) - 10001]

    def _take_failure(self, method: str, path: str) -> _Failure | None:
        with self._lock:
            for f in self._failures:
                if f.path in path and (f.method is None or f.method == method) and f.times > 0:
                    f.times -= 1
                    if f.times == 0:
                        self._failures.remove(f)
                    return f
        return None

    def _authorised(self, headers: dict[str, str]) -> bool:
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:] == self.token
        if auth.lower().startswith("basic "):
            try:
                user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                return False
            return user == self.email and pw == self.token
        return False

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], body: Any, version: str
    ) -> tuple[int, Any, dict[str, str]]:
        """Routes one authorised API request; returns (status, json, headers)."""
        with self._lock:
            return self._route(method, path, query, body, version)

    def _issue_json(self, issue: dict[str, Any], version: str, fields: list[str] | None) -> Any:
        out = _public(issue)
        f = dict(out["fields"])
        f["updated"] = _fmt(issue["_updated"])
        f["created"] = _fmt(issue["_created"])
        if version == "3" and isinstance(f.get("description"), str):
            f["description"] = adf(f["description"])
        if fields is not None and "*all" not in fields and "*navigable" not in fields:
            f = {k: v for k, v in f.items() if k in fields}
        out["fields"] = f
        out["self"] = f"{self.base_url}/rest/api/{version}/issue/{issue['id']}"
        return out

    def _find(self, id_or_key: str) -> dict[str, Any] | None:
        issue = self._state.issues.get(id_or_key.upper())
        if issue is None:
            issue = next((i for i in self._state.issues.values() if i["id"] == id_or_key), None)
        return issue

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], body: Any, version: str
    ) -> tuple[int, Any, dict[str, str]]:
        parts = [p for p in path.split("/") if p]
        q = {k: v[-1] for k, v in query.items()}
        not_found: tuple[int, Any, dict[str, str]] = (
            404,
            {"errorMessages": ["Issue Does Not Exist"], "errors": {}},
            {},
        )
        if parts == ["serverInfo"]:
            return 200, self._server_info(), {}
        if parts == ["myself"]:
            me = self._user_json(FakeUser(self.email, "bot", "bot-account", "Bot"))
            if self.says_time_zone:
                me["timeZone"] = self.time_zone
            return 200, me, {}
        if parts == ["field"]:
            return 200, self._fields(), {}
        if len(parts) == 2 and parts[0] == "project" and method == "GET":
            if parts[1].upper() not in (self.project, self.project_id):
                return 404, {"errorMessages": ["No project could be found."], "errors": {}}, {}
            return 200, self._project_json(), {}
        if parts[:2] == ["issue", "createmeta"] and len(parts) == 4 and parts[3] == "issuetypes":
            if not self.createmeta_issuetypes:
                return 404, {"errorMessages": ["null for uri"]}, {}
            if parts[2].upper() not in (self.project, self.project_id):
                return 404, {"errorMessages": ["No project could be found."], "errors": {}}, {}
            start = int(q.get("startAt", 0))
            size = min(int(q.get("maxResults", 50)), self.createmeta_page)
            types = self._types_json()
            page = types[start : start + size]
            meta: dict[str, Any] = {"startAt": start, "maxResults": size, "total": len(types)}
            if self.cloud:  # Cloud: {issueTypes, startAt, maxResults, total}, no isLast
                meta["issueTypes"] = page
            else:  # Data Center: {values, isLast, ...}
                meta.update(values=page, isLast=start + len(page) >= len(types))
            return 200, meta, {}
        if parts == ["issue"] and method == "POST":
            return self._create(body)
        if len(parts) == 2 and parts[0] == "issue" and method == "PUT":
            issue = self._find(parts[1])
            if issue is None:
                return not_found
            return self._edit(issue, body)
        if len(parts) == 2 and parts[0] == "issue" and method == "GET":
            issue = self._find(parts[1])
            if issue is None:
                return not_found
            fields = _list_param(query.get("fields"))
            return 200, self._issue_json(issue, version, fields), {}
        if len(parts) == 3 and parts[0] == "issue" and parts[2] in ("comment", "remotelink"):
            issue = self._find(parts[1])
            if issue is None:
                return not_found
            if parts[2] == "comment":
                return self._comment(issue, method, body)
            return self._remotelink(issue, method, body)
        if parts == ["user", "search"]:
            # Cloud dropped username= (GDPR) for query=; Data Center searches by username=.
            term = (q.get("query") if self.cloud else q.get("username")) or ""
            term = term.lower()
            if not term:
                needed = "query" if self.cloud else "username"
                return 400, {"errorMessages": [f"The '{needed}' parameter is required."]}, {}
            found = [
                self._user_json(u)
                for u in self.users
                if term in u.email.lower() or term in u.name.lower()
            ]
            return 200, found, {}
        if parts == ["search"] and self.cloud:
            return 410, {"errorMessages": [_SEARCH_GONE], "errors": {}}, {}
        if parts == ["search", "jql"] and not self.cloud:
            return 404, {"errorMessages": [f"null for uri: {path}"]}, {}
        if parts in (["search"], ["search", "jql"]):
            params = dict(q)
            fields = _list_param(query.get("fields"))
            if method == "POST" and isinstance(body, dict):
                params.update({k: v for k, v in body.items() if not isinstance(v, list)})
                if isinstance(body.get("fields"), list):
                    fields = [str(x) for x in body["fields"]]
            return self._search(parts == ["search", "jql"], params, fields, version)
        return 404, {"errorMessages": [f"null for uri: {path}"]}, {}

    def _server_info(self) -> dict[str, Any]:
        return {
            "baseUrl": self.base_url,
            "version": "1001.0.0" if self.cloud else "9.12.0",
            "versionNumbers": [1001, 0, 0] if self.cloud else [9, 12, 0],
            "deploymentType": self.deployment_type,
            "serverTitle": "Fake Jira",
        }

    def _user_json(self, u: FakeUser) -> dict[str, Any]:
        if self.cloud:
            return {
                "self": f"{self.base_url}/rest/api/2/user?accountId={u.account_id}",
                "accountId": u.account_id,
                "emailAddress": u.email,
                "displayName": u.display_name or u.name,
                "active": True,
            }
        return {
            "self": f"{self.base_url}/rest/api/2/user?username={u.name}",
            "name": u.name,
            "key": u.name,
            "emailAddress": u.email,
            "displayName": u.display_name or u.name,
            "active": True,
        }

    def _fields(self) -> list[dict[str, Any]]:
        std = ["summary", "description", "issuetype", "labels", "status", "updated", "created",
               "project", "reporter", "components"]  # fmt: skip
        out = [{"id": s, "name": s.title(), "custom": False, "clauseNames": [s]} for s in std]
        for fid in self.required_fields:
            num = fid.rsplit("_", 1)[-1]
            out.append({"id": fid, "name": fid, "custom": True, "clauseNames": [f"cf[{num}]", fid]})
        return out

    def _types_json(self) -> list[dict[str, Any]]:
        return [
            {"id": self._type_id(n), "name": n, "subtask": False, "description": ""}
            for n in self.issue_types
        ] + [{"id": "10099", "name": "Sub-task", "subtask": True, "description": ""}]

    def _project_json(self) -> dict[str, Any]:
        return {
            "id": self.project_id,
            "key": self.project,
            "name": f"Project {self.project}",
            "issueTypes": self._types_json(),
        }

    def _create(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        if not isinstance(body, dict) or not isinstance(body.get("fields"), dict):
            return 400, {"errorMessages": ["Can not deserialize the request body."]}, {}
        f = body["fields"]
        errors: dict[str, str] = {}
        project = f.get("project") or {}
        if project.get("key", "").upper() != self.project and project.get("id") != self.project_id:
            errors["project"] = "valid project is required"
        itype = f.get("issuetype") or {}
        names = [t.lower() for t in self.issue_types]
        if "name" in itype:
            if str(itype["name"]).lower() not in names:
                errors["issuetype"] = "The issue type selected is invalid."
            else:
                itype = {"name": self.issue_types[names.index(str(itype["name"]).lower())]}
        elif "id" in itype:
            try:
                itype = {"name": self._type_by_id(str(itype["id"]))}
            except (ValueError, IndexError):
                errors["issuetype"] = "The issue type selected is invalid."
        else:
            errors["issuetype"] = "issue type is required"
        summary = f.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            errors["summary"] = "You must specify a summary of the issue."
        elif units(summary) > SUMMARY_LIMIT:
            errors["summary"] = "Summary must be less than 255 characters."
        elif "\n" in summary or "\r" in summary:
            errors["summary"] = "The summary is invalid because it contains newline characters."
        description = f.get("description")
        if isinstance(description, str) and units(description) > TEXT_LIMIT:
            errors["description"] = _TOO_LONG
        labels = f.get("labels", [])
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            errors["labels"] = "Labels must be a list of strings."
        else:
            for label in labels:
                if not label or re.search(r"\s", label):
                    errors["labels"] = f"The label '{label}' contains spaces which is invalid."
        reporter = f.get("reporter")
        if reporter is not None:
            if not self.reporter_settable:
                errors["reporter"] = (
                    "Field 'reporter' cannot be set. "
                    "It is not on the appropriate screen, or unknown."
                )
            else:
                user = self._user_for(reporter)
                if user is None:
                    errors["reporter"] = "The reporter specified is not a user."
                else:
                    f = {**f, "reporter": self._user_json(user)}
        for fid, message in self.required_fields.items():
            if f.get(fid) in (None, "", [], {}):
                errors[fid] = message
        for name in f:
            if name not in _STANDARD_FIELDS and name not in self.required_fields:
                errors[name] = (
                    f"Field '{name}' cannot be set. "
                    "It is not on the appropriate screen, or unknown."
                )
        if errors:
            return 400, {"errorMessages": [], "errors": errors}, {}
        fields = {**f, "issuetype": itype, "project": {"key": self.project}}
        fields.setdefault("description", None)
        issue = self._new_issue(fields)
        return (
            201,
            {
                "id": issue["id"],
                "key": issue["key"],
                "self": f"{self.base_url}/rest/api/2/issue/{issue['id']}",
            },
            {},
        )

    def _user_for(self, ref: Any) -> FakeUser | None:
        if not isinstance(ref, dict):
            return None
        for u in self.users:
            if self.cloud and ref.get("accountId") == u.account_id:
                return u
            if not self.cloud and ref.get("name") == u.name:
                return u
        return None

    def _comment(
        self, issue: dict[str, Any], method: str, body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        comments = self._state.comments.setdefault(issue["key"], [])
        if method == "GET":
            return 200, {"startAt": 0, "maxResults": 1048576, "total": len(comments),
                         "comments": comments}, {}  # fmt: skip
        if not isinstance(body, dict) or not body.get("body"):
            return (
                400,
                {"errorMessages": [], "errors": {"comment": "Comment body can not be empty!"}},
                {},
            )
        if isinstance(body["body"], str) and units(body["body"]) > TEXT_LIMIT:
            return 400, {"errorMessages": [], "errors": {"comment": _TOO_LONG}}, {}
        comment = {
            "id": str(self._next_comment),
            "body": body["body"],
            "created": _fmt(datetime.now(UTC)),
            "self": f"{self.base_url}/rest/api/2/issue/{issue['id']}/comment/{self._next_comment}",
        }
        self._next_comment += 1
        comments.append(comment)
        issue["_updated"] = datetime.now(UTC)
        return 201, comment, {}

    def _remotelink(
        self, issue: dict[str, Any], method: str, body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        links = self._state.links.setdefault(issue["key"], [])
        if method == "GET":
            return 200, links, {}
        obj = body.get("object") if isinstance(body, dict) else None
        if not isinstance(obj, dict) or not obj.get("url") or not obj.get("title"):
            errors = {"title": "'title' is required."} if isinstance(obj, dict) else {}
            return 400, {"errorMessages": [], "errors": errors or {"object": "required"}}, {}
        gid = body.get("globalId")
        errors = {}
        if isinstance(gid, str) and units(gid) > 255:
            errors["globalId"] = "The global ID must not be longer than 255 characters."
        if units(str(obj["title"])) > 255:
            errors["title"] = "The title must not be longer than 255 characters."
        if errors:
            return 400, {"errorMessages": [], "errors": errors}, {}
        for link in links:
            if gid and link.get("globalId") == gid:
                link["object"] = obj
                return 200, {"id": link["id"], "self": link["self"]}, {}
        link = {
            "id": self._next_link,
            "globalId": gid,
            "object": obj,
            "self": f"{self.base_url}/rest/api/2/issue/{issue['key']}/remotelink/{self._next_link}",
        }
        self._next_link += 1
        links.append(link)
        return 201, {"id": link["id"], "self": link["self"]}, {}

    def _search(
        self, token_paging: bool, q: dict[str, Any], fields: list[str] | None, version: str
    ) -> tuple[int, Any, dict[str, str]]:
        try:
            clauses, order = parse_jql(str(q.get("jql", "")), ZoneInfo(self.time_zone))
        except JqlError as exc:
            return 400, {"errorMessages": [str(exc)], "errors": {}}, {}
        hits = [i for i in self._state.issues.values() if _matches(i, clauses)]
        hits.sort(key=lambda i: int(i["id"]))
        for name, desc in reversed(order or [("key", True)]):
            if name == "key":
                hits.sort(key=lambda i: int(i["id"]), reverse=desc)
            else:
                hits.sort(key=lambda i, n=name: i["_" + n], reverse=desc)  # type: ignore[misc]
        size = min(int(q.get("maxResults", 50)), self.max_page)
        if token_paging:
            token = q.get("nextPageToken")
            start = 0
            if token:
                try:
                    start = int(
                        base64.urlsafe_b64decode(str(token).encode()).decode().split(":")[1]
                    )
                except (ValueError, IndexError):
                    return 400, {"errorMessages": ["Invalid nextPageToken."], "errors": {}}, {}
            page = hits[start : start + size]
            end = start + len(page)
            out: dict[str, Any] = {
                "issues": [self._issue_json(i, version, fields) for i in page],
                "isLast": end >= len(hits),
            }
            if end < len(hits):
                out["nextPageToken"] = base64.urlsafe_b64encode(f"page:{end}".encode()).decode()
            return 200, out, {}
        start = int(q.get("startAt", 0))
        page = hits[start : start + size]
        return (
            200,
            {
                "startAt": start,
                "maxResults": size,
                "total": len(hits),
                "issues": [self._issue_json(i, version, fields) for i in page],
            },
            {},
        )


def _status(name: str) -> dict[str, Any]:
    low = name.lower()
    if low in ("to do", "open", "backlog", "new"):
        category = "new"
    elif low in ("done", "closed", "resolved"):
        category = "done"
    else:
        category = "indeterminate"
    return {"name": name, "statusCategory": {"key": category}}


def _public(issue: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": issue["id"],
        "key": issue["key"],
        "fields": json.loads(json.dumps(issue["fields"], default=str)),
    }


def _list_param(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [x.strip() for v in values for x in v.split(",") if x.strip()]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout tests) leaves a broken pipe; that is expected here.
        pass


class _Handler(BaseHTTPRequestHandler):
    owner: FakeJira
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self, method: str) -> None:
        fake = self.owner
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in self.headers.items()}
        rec = RecordedRequest(method, url.path, parse_qs(url.query), body, headers)
        with fake._lock:
            fake.requests.append(rec)
        failure = fake._take_failure(method, url.path)
        if failure is not None and failure.delay:
            fake._release.wait(failure.delay)
            failure = None
        if failure is not None:
            rec.status = failure.status
            self._send(failure.status, failure.body, failure.headers)
            return
        if not fake._authorised(headers):
            rec.status = 401
            self._send(
                401,
                {"errorMessages": ["You are not authenticated. Authentication required."]},
                {"WWW-Authenticate": 'Basic realm="protected-area"'},
            )
            return
        m = _API.match(url.path)
        if not m:
            rec.status = 404
            self._send(404, {"errorMessages": [f"null for uri: {url.path}"]}, {})
            return
        status, payload, extra = fake.handle(method, m.group(2), rec.query, body, m.group(1))
        rec.status = status
        self._send(status, payload, extra)

    def _send(self, status: int, payload: Any, headers: dict[str, str]) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")
