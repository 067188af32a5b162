"""The Tracker port on Jira (Cloud or Data Center), through the `jira` library.

Only translation lives here: NewIssue -> Jira fields, Jira JSON -> Ticket, HTTP failures ->
TrackerRetryable / TrackerRejected. Retrying is the outbox's job, so the library's own retry loop
(which sleeps on 429/503) is switched off with ``max_retries=0``.

Every request has a total deadline (``DeadlineAdapter``): the client's timeout bounds each socket
read, so a server trickling a byte at a time could hold a request, and the outbox lease counting
on it, for ever.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Literal, TypeVar, get_args
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jira import JIRA

from bot.adapters.jira_createmeta import fetch_create_meta, jira_value
from bot.adapters.jira_format import (
    JIRA_TEXT_LIMIT,
    cut_utf16,
    marker_query,
    render_wiki,
    safe_link,
    updated_query,
    utf16_len,
)
from bot.adapters.jira_http import DeadlineAdapter, api_status, mapped_errors
from bot.domain.filing import MARKER_PREFIX
from bot.domain.issue_fields import CreateMeta
from bot.domain.metrics import API_CALL_SECONDS, API_CALLS, Metrics, NullMetrics
from bot.domain.models import CreatedIssue, NewComment, NewIssue, Ticket
from bot.domain.ports import TrackerRejected, TrackerRetryable
from bot.domain.tracing import SPAN_JIRA, NoopTracer, Tracer

logger = logging.getLogger(__name__)

SUMMARY_LIMIT = 255
LINK_FIELD_LIMIT = 255  # a remote link's globalId and title, in UTF-16 units
SEARCH_FIELDS = [
    "summary",
    "description",
    "issuetype",
    "status",
    "updated",
    "labels",
    "components",
]
# UTC offsets run from -12 h to +14 h. A JQL wall time written this far behind UTC means an
# instant at or before the one meant, whatever zone Jira reads it in.
UNKNOWN_ZONE_MARGIN = timedelta(hours=14)
_DC_TOKEN = "start:"
_WS = re.compile(r"\s+")
_GATEWAY_PATH = re.compile(r"^/ex/jira/[^/]+/?$")
T = TypeVar("T")
Deployment = Literal["auto", "cloud", "datacenter"]

# The most Jira requests one filing attempt makes (bot.service.filing), each ended by the total
# deadline: serverInfo while it keeps failing (it is asked again on next need) before the marker
# search, after it (the gateway's browse URL), before the reporter lookup and for the new issue's
# URL: 4; the marker search, the reporter lookup, the create, the create again without the
# reporter and the remote link: 5. A comment needs fewer (comment search, comment, link,
# serverInfo). The outbox lease must outlive this many deadlines (bot.service.filing.LEASE).
JIRA_REQUESTS_PER_ATTEMPT = 9
# Of those, the most that run from the lease renewal right before a write (bot.service.filing)
# to the end of the last request that creates something: serverInfo, the reporter lookup, the
# create and the create again without the reporter (a comment: 1). What follows (the remote
# link, idempotent by its globalId, and the browse URL) creates nothing twice.
JIRA_REQUESTS_PER_WRITE = 4
# How a comment's marker is written: its own last line, after everything from a person or model.
COMMENT_MARKER_LINE = "ideabot marker: {marker}"
COMMENT_SEARCH_PAGE = 100  # the newest comments searched for a marker (one request)


def is_gateway_url(url: str) -> bool:
    """True when *url* is Cloud's API gateway (``https://api.atlassian.com/ex/jira/<cloudId>``).

    Scoped API tokens and OAuth apps reach a Cloud site only through it.
    """
    parts = urlparse(url)
    return (parts.hostname or "").lower() == "api.atlassian.com" and _GATEWAY_PATH.match(
        parts.path
    ) is not None


def is_cloud_url(url: str) -> bool:
    """True when *url* looks like Jira Cloud: a ``*.atlassian.net`` site or the API gateway.

    Only the fallback for when ``serverInfo`` cannot tell (see ``JiraTracker.cloud``).
    """
    host = (urlparse(url).hostname or "").lower()
    return host == "atlassian.net" or host.endswith(".atlassian.net") or is_gateway_url(url)


def single_line_summary(text: str, limit: int = SUMMARY_LIMIT) -> str:
    """Jira's summary: one line, at most *limit* UTF-16 units (cut with an ellipsis)."""
    line = _WS.sub(" ", text).strip()
    if utf16_len(line) <= limit:
        return line
    return cut_utf16(line, limit - 1).rstrip() + "…"


def link_global_id(url: str) -> str:
    """The remote link's ``globalId`` for *url*: the URL itself, or a hash when it is too long.

    Jira keeps at most 255 characters there. The hash is of the URL alone, so a retry, in this
    process or another, sends the same id and updates the link instead of adding a second one.
    """
    if utf16_len(url) <= LINK_FIELD_LIMIT:
        return url
    digest = hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()
    return f"ideabot:url-sha256:{digest}"


def clean_labels(labels: tuple[str, ...] | list[str]) -> list[str]:
    """Jira labels may not contain whitespace; replace it with '-' and drop empties/duplicates."""
    out: list[str] = []
    for label in labels:
        c = _WS.sub("-", label.strip())
        if c and c not in out:
            out.append(c[:255])
    return out


def flatten_adf(node: Any) -> str:
    """Plain text of an Atlassian Document Format tree (REST v3 rich text); strings pass through."""
    if node is None:
        return ""
    if isinstance(node, str):
        return node
    parts: list[str] = []
    _walk_adf(node, parts)
    text = "".join(parts)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


_ADF_BLOCKS = {
    "paragraph",
    "heading",
    "listItem",
    "codeBlock",
    "blockquote",
    "rule",
    "panel",
    "tableRow",
    "mediaSingle",
}


def _walk_adf(node: Any, out: list[str]) -> None:
    if isinstance(node, list):
        for child in node:
            _walk_adf(child, out)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    attrs = node.get("attrs") or {}
    if kind == "text":
        out.append(str(node.get("text", "")))
    elif kind == "hardBreak":
        out.append("\n")
    elif kind in ("mention", "emoji", "status"):
        out.append(str(attrs.get("text") or attrs.get("shortName") or ""))
    elif kind in ("inlineCard", "blockCard"):
        out.append(str(attrs.get("url", "")))
    elif kind == "tableCell" or kind == "tableHeader":
        _walk_adf(node.get("content", []), out)
        out.append(" ")
    else:
        _walk_adf(node.get("content", []), out)
    if kind in _ADF_BLOCKS:
        out.append("\n")


def parse_jira_datetime(value: str | None) -> datetime | None:
    """Jira's ``2024-01-05T10:00:00.000+0000`` (or ISO with a colon / Z) as an aware datetime."""
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            dt = datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")
        except ValueError:
            return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def jql_wall_time(since: datetime, zone: ZoneInfo | None) -> datetime:
    """The naive wall time to write in JQL so that Jira, reading it in *zone* (the account's
    own time zone), means an instant at or before *since*, to the minute.

    Without a zone, *since* in UTC minus ``UNKNOWN_ZONE_MARGIN``: early enough in every zone
    (re-reading a few hours is cheap, as unchanged tickets are skipped). Around a daylight-
    saving change a wall time can happen twice; it is moved back until both readings are early
    enough.
    """
    since = since.astimezone(UTC)
    if zone is None:
        return (since - UNKNOWN_ZONE_MARGIN).replace(tzinfo=None, second=0, microsecond=0)
    wall = since.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0)
    for _ in range(4):
        readings = [wall.replace(tzinfo=zone, fold=f).astimezone(UTC) for f in (0, 1)]
        if max(readings) <= since:
            break
        wall -= timedelta(minutes=30)
    return wall


class JiraTracker:
    """The Tracker port on Jira Cloud (email + API token) or Data Center (personal access token).

    *deployment* (``JIRA_DEPLOYMENT``) forces the flavour; ``auto`` asks ``serverInfo`` the first
    time it matters (see ``cloud``). *cloud*, when given, is the older spelling of the same. Cloud
    pages searches with ``nextPageToken`` (``/search/jql``) and finds users by ``query``; Data
    Center pages with ``startAt`` (``/search``) and finds users by ``username``.
    """

    def __init__(
        self,
        url: str,
        project: str,
        token: str,
        email: str | None = None,
        timeout: float = 15.0,
        cloud: bool | None = None,
        deployment: Deployment = "auto",
        deadline: float | None = None,
        metrics: Metrics | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        """*timeout* bounds each socket operation; *deadline* (default: *timeout*) each request
        from start to the last byte of its answer. *metrics* counts and times each call;
        *tracer* puts each in a ``jira.call`` span."""
        self.metrics: Metrics = metrics or NullMetrics()
        self.tracer: Tracer = tracer or NoopTracer()
        if deployment not in get_args(Deployment):
            raise ValueError(f"Jira deployment must be auto, cloud or datacenter: {deployment!r}")
        self.url = url.rstrip("/")
        self.project = project
        self._cloud: bool | None = cloud if cloud is not None else _FORCED.get(deployment)
        self._token = token
        self._email = email
        self._timeout = timeout
        self.deadline = timeout if deadline is None else deadline
        self._client: JIRA | None = None
        self._lock = threading.Lock()
        self._info_lock = threading.Lock()
        self._info: dict[str, Any] | None = None
        self._info_asked = False  # True once serverInfo answered or refused for good
        self._reporters: dict[str, dict[str, str] | None] = {}
        # The zone Jira reads JQL dates in, asked at the start of each incremental search
        # (a person may change the account's zone) and kept for that search's later pages.
        self._zone: ZoneInfo | None = None

    def __repr__(self) -> str:
        flavour = {True: "cloud", False: "data-center", None: "auto"}[self._cloud]
        return f"JiraTracker(url={self.url!r}, project={self.project!r}, {flavour})"

    @property
    def cloud(self) -> bool:
        """True on Jira Cloud. Unless set, ``serverInfo``'s ``deploymentType`` decides, once.

        The hostname is the fallback: the API gateway URL that scoped tokens and OAuth need is
        Cloud without being ``*.atlassian.net``, and a Cloud-only setup must never get Data
        Center's retired ``/search`` or ``username=`` look-ups. A passing failure (timeout, 5xx)
        is not remembered, so the next use asks again.
        """
        if self._cloud is not None:
            return self._cloud
        info = self._server_info()
        kind = str((info or {}).get("deploymentType") or "")
        found = kind.lower() == "cloud" if kind else is_cloud_url(self.url)
        if self._info_asked:
            self._cloud = found
            if self._client is not None:
                self._client.deploymentType = "Cloud" if found else "Server"
            logger.info("Jira at %s is %s", self.url, "Cloud" if found else "Data Center")
        return found

    def _server_info(self) -> dict[str, Any] | None:
        """``GET serverInfo``, asked once; None when Jira would not say."""
        with self._info_lock:
            if self._info_asked:
                return self._info
            try:
                raw = self._call("reading serverInfo", lambda: self.client._get_json("serverInfo"))
            except TrackerRetryable as exc:
                logger.warning("Jira serverInfo failed for now (%s); going by the URL", exc)
                return None
            except TrackerRejected as exc:
                logger.warning("Jira refused serverInfo (%s); going by the URL", exc)
                raw = None
            self._info = raw if isinstance(raw, dict) else None
            self._info_asked = True
            return self._info

    def _browse_base(self) -> str:
        """Where people open issues: the site, which the API gateway URL is not.

        Judged by the gateway's distinctive path alone, so a proxy in front of it counts too.
        """
        if _GATEWAY_PATH.match(urlparse(self.url).path):
            site = (self._server_info() or {}).get("baseUrl")
            if isinstance(site, str) and safe_link(site):
                return site.rstrip("/")
        return self.url

    # ------------------------------------------------------------------ client

    @property
    def client(self) -> JIRA:
        """The `jira.JIRA` client, built on first use (building it makes no request)."""
        with self._lock:
            if self._client is None:
                auth: dict[str, Any] = (
                    {"basic_auth": (self._email, self._token)}
                    if self._email
                    else {"token_auth": self._token}
                )
                client = JIRA(
                    server=self.url,
                    # REST v2 takes descriptions and comments as wiki markup (render_wiki), on Data
                    # Center and on Cloud alike; v3 would want Atlassian Document Format instead.
                    options={"check_update": False, "rest_api_version": "2"},
                    timeout=self._timeout,
                    max_retries=0,
                    get_server_info=False,
                    **auth,
                )
                # What get_server_info would have learnt; the library keys its Cloud-only
                # paths (enhanced search, user search by query) on it. In auto mode it is set
                # once serverInfo has answered (cloud), since building the client asks nothing.
                if self._cloud is not None:
                    client.deploymentType = "Cloud" if self._cloud else "Server"
                adapter = DeadlineAdapter(self.deadline)
                client._session.mount("https://", adapter)
                client._session.mount("http://", adapter)
                self._client = client
            return self._client

    def _call(self, action: str, fn: Callable[[], T]) -> T:
        # The method label is the action ("creating the issue" -> creating_the_issue): a fixed
        # set of strings in this module, never an issue key.
        method = action.replace(" ", "_")
        status = "ok"
        started = time.perf_counter()
        try:
            with self.tracer.span(SPAN_JIRA, method=method) as span, mapped_errors(action):
                try:
                    return fn()
                except BaseException as exc:
                    status = api_status(exc)
                    span.set_attribute("status", status)
                    raise
        finally:
            took = time.perf_counter() - started
            self.metrics.inc(API_CALLS, service="jira", method=method, status=status)
            self.metrics.observe(API_CALL_SECONDS, took, service="jira", method=method)
            logger.debug("jira: %s: %s in %.0f ms", action, status, took * 1000)

    # ------------------------------------------------------------------ port

    def browse_url(self, key: str) -> str:
        """The human URL of an issue."""
        return f"{self._browse_base()}/browse/{key}"

    def create_issue(self, issue: NewIssue) -> CreatedIssue:
        """Creates the issue (with reporter when Jira allows it), then links back to *link_url*."""
        summary = single_line_summary(issue.summary)
        if not summary:
            raise TrackerRejected("the issue summary is empty", {"summary": "empty"})
        body = issue.body
        extra: dict[str, Any] = {}
        for fid, value in issue.fields.items():
            jira = jira_value(value, self._reporter)
            if jira is not None:
                extra[fid] = jira
        if issue.assignee_email:
            assignee = self._reporter(issue.assignee_email)
            if assignee:
                extra["assignee"] = assignee
            else:
                # Never filed as someone without an account: named in the description instead.
                who = issue.assignee_name or "someone without a Jira account"
                body = body.model_copy(
                    update={
                        "notes": (
                            *body.notes,
                            f"Assignee asked for: {who}, who has no Jira account",
                        )
                    }
                )
        fields: dict[str, Any] = {
            **extra,
            "project": {"key": issue.project or self.project},
            "summary": summary,
            "description": render_wiki(body),
            "issuetype": {"name": issue.issue_type},
        }
        # Only this issue's own marker may be in the marker namespace: a label that copies
        # another message's marker would make that message's retry adopt this issue.
        own = [x for x in issue.labels if not x.strip().lower().startswith(MARKER_PREFIX)]
        labels = clean_labels((*own, issue.marker) if issue.marker else tuple(own))
        if labels:
            fields["labels"] = labels
        if issue.components:
            fields["components"] = [{"name": c} for c in issue.components]
        reporter = self._reporter(issue.reporter_email) if issue.reporter_email else None
        if reporter:
            fields["reporter"] = reporter
        try:
            key = self._create(fields)
        except TrackerRejected as exc:
            if not reporter or not _mentions_reporter(exc):
                raise
            logger.warning("Jira would not take the reporter field; creating without it")
            fields.pop("reporter")
            key = self._create(fields)
        if issue.link_url:
            self._link(key, issue.link_url, issue.link_title)
        logger.info("created Jira issue %s", key)
        return CreatedIssue(key=key, url=self.browse_url(key))

    def attachment_names(self, key: str) -> set[str]:
        """The file names attached to issue *key* (a retried filing skips those)."""
        raw = self._call(
            "reading the attachments",
            lambda: self.client._get_json(f"issue/{key}", params={"fields": "attachment"}),
        )
        found = ((raw or {}).get("fields") or {}).get("attachment") or []
        return {str(a["filename"]) for a in found if isinstance(a, dict) and a.get("filename")}

    def add_attachment(self, key: str, name: str, data: bytes) -> None:
        """Attaches *data* to issue *key* as *name* (within the request deadline)."""
        self._call(
            "adding an attachment",
            lambda: self.client.add_attachment(key, io.BytesIO(data), filename=name),
        )

    def add_comment(self, comment: NewComment) -> str:
        """Adds a comment (and a remote link to its *link_url*); returns the comment id.

        The comment's *marker* is its last line, below the post (``find_comment_marker``).
        """
        if comment.marker:
            line = "\n\n" + COMMENT_MARKER_LINE.format(marker=comment.marker)
            text = render_wiki(comment.body, JIRA_TEXT_LIMIT - utf16_len(line)) + line
        else:
            text = render_wiki(comment.body)
        created = self._call("adding a comment", lambda: self.client.add_comment(comment.key, text))
        if comment.link_url:
            self._link(comment.key, comment.link_url, None)
        return str(created.id)

    def find_comment_marker(self, key: str, marker: str) -> bool:
        """True when one of the newest comments of *key* ends with *marker*'s line.

        Only the last line counts: the post quoted above it cannot forge one. Comments are read
        directly (not through search), so a comment just added is there.
        """
        params = {"orderBy": "-created", "maxResults": COMMENT_SEARCH_PAGE, "startAt": 0}
        raw = self._call(
            "reading comments",
            partial(self.client._get_json, f"issue/{key}/comment", params=params),
        )
        wanted = COMMENT_MARKER_LINE.format(marker=marker)
        for comment in raw.get("comments", []) if isinstance(raw, dict) else []:
            body = comment.get("body") if isinstance(comment, dict) else None
            text = body if isinstance(body, str) else flatten_adf(body)
            lines = text.rstrip().splitlines()
            if lines and lines[-1].strip() == wanted:
                return True
        return False

    def issue_types(self, project: str | None = None) -> list[str]:
        """Names of the issue types that can be created in *project* (default: the bot's)."""
        key = project or self.project
        try:
            return self._createmeta_types(key)
        except TrackerRejected as exc:
            # Older Data Center (< 8.4) has no createmeta/{project}/issuetypes: ask the project.
            if "HTTP 404" not in str(exc):
                raise
        raw = self._call("reading the project", lambda: self.client._get_json(f"project/{key}"))
        return [str(t["name"]) for t in raw.get("issueTypes", []) if not t.get("subtask")]

    def find_people(self, issue: NewIssue) -> None:
        """Looks up (and keeps) the accounts *issue* names: its reporter, assignee and person
        fields. The filer calls it before renewing its lease, so ``create_issue`` then makes no
        look-up inside the write (``JIRA_REQUESTS_PER_WRITE``)."""
        emails = [issue.reporter_email, issue.assignee_email]
        emails += [str(v.value) for v in issue.fields.values() if v.kind == "user" and v.value]
        for email in emails:
            if email:
                self._reporter(email)

    def create_meta(self, project: str, issue_type: str) -> CreateMeta:
        """The create screen of *issue_type* in *project* (``bot.adapters.jira_createmeta``)."""

        def get(path: str, params: dict[str, Any]) -> Any:
            return self._call(
                "reading create metadata", partial(self.client._get_json, path, params=params)
            )

        return fetch_create_meta(get, project or self.project, issue_type)

    def find_by_marker(self, project: str, marker: str) -> CreatedIssue | None:
        """The issue of *project* labelled *marker* (one filing's own label), or None."""
        tickets, _ = self.search(marker_query(project, marker), page_size=1)
        if not tickets:
            return None
        t = tickets[0]
        return CreatedIssue(key=t.key, url=t.url or self.browse_url(t.key))

    def updated_since(
        self,
        project: str,
        since: datetime | None,
        page_token: str | None = None,
        page_size: int = 100,
        narrow: str | None = None,
    ) -> tuple[list[Ticket], str | None]:
        """One page of *project*'s issues updated since *since* (all when None), oldest first.

        *since* is an instant; JQL dates are wall times that Jira reads in the account's own
        time zone (``GET myself``), so it is written in that zone.
        """
        wall = None
        if since is not None:
            if page_token is None:
                self._zone = self.account_zone()
            wall = jql_wall_time(since, self._zone)
        return self.search(updated_query(project, wall, narrow), page_token, page_size)

    def account_zone(self) -> ZoneInfo | None:
        """The time zone of the account the bot uses (``GET myself``), None when Jira will
        not say or names a zone this machine does not know."""
        try:
            raw = self._call("reading the account", lambda: self.client._get_json("myself"))
        except (TrackerRetryable, TrackerRejected) as exc:
            logger.warning("Jira would not give the account's time zone (%s); widening", exc)
            return None
        name = raw.get("timeZone") if isinstance(raw, dict) else None
        if not isinstance(name, str) or not name:
            logger.warning("Jira gave no time zone for the account; widening the sync window")
            return None
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            logger.warning("unknown time zone %r for the Jira account; widening", name)
            return None

    def search(
        self, jql: str, page_token: str | None = None, page_size: int = 100
    ) -> tuple[list[Ticket], str | None]:
        """One page of issues matching *jql* and the token of the next page (None at the end)."""
        if self.cloud:
            return self._search_cloud(jql, page_token, page_size)
        return self._search_dc(jql, page_token, page_size)

    # ------------------------------------------------------------------ helpers

    def _create(self, fields: dict[str, Any]) -> str:
        # prefetch=False: one POST, no follow-up GET that could fail after the issue exists.
        created = self._call(
            "creating the issue", lambda: self.client.create_issue(fields=fields, prefetch=False)
        )
        return str(created.key)

    def _reporter(self, email: str) -> dict[str, str] | None:
        email = email.strip().lower()
        if email in self._reporters:
            return self._reporters[email]
        # Once: while serverInfo fails, every use of ``cloud`` would ask it again.
        cloud = self.cloud
        query = {"query": email} if cloud else {"user": email}
        try:
            users = self._call(
                "looking up the reporter",
                lambda: self.client.search_users(maxResults=5, **query),  # type: ignore[arg-type]
            )
        except TrackerRejected as exc:
            logger.warning("reporter lookup refused, filing without reporter: %s", exc)
            return None
        found: dict[str, str] | None = None
        for user in users:
            raw = user.raw or {}
            if str(raw.get("emailAddress", "")).lower() not in ("", email):
                continue
            if cloud and raw.get("accountId"):
                found = {"accountId": str(raw["accountId"])}
            elif not cloud and raw.get("name"):
                found = {"name": str(raw["name"])}
            if found:
                break
        if found is None:
            logger.info("no Jira user matches the poster's e-mail; filing without reporter")
        self._reporters[email] = found
        return found

    def _link(self, key: str, url: str, title: str | None) -> None:
        # globalId makes the link idempotent: a retried comment or creation updates, not duplicates.
        payload = {
            "globalId": link_global_id(url),
            "object": {"url": url, "title": single_line_summary(title or url, LINK_FIELD_LIMIT)},
        }
        client = self.client
        try:
            self._call(
                "adding a remote link",
                lambda: client._session.post(
                    client._get_url(f"issue/{key}/remotelink"), data=json.dumps(payload)
                ),
            )
        except (TrackerRejected, TrackerRetryable) as exc:
            logger.warning("could not add the remote link to %s: %s", key, exc)

    def _createmeta_types(self, project: str) -> list[str]:
        names: list[str] = []
        start = 0
        for _ in range(20):  # a project has a handful of types; the bound guards a looping server
            params = {"startAt": start, "maxResults": 50}
            raw = self._call(
                "listing issue types",
                partial(
                    self.client._get_json,
                    f"issue/createmeta/{project}/issuetypes",
                    params=params,
                ),
            )
            # Data Center answers {values, isLast, ...}; Cloud {issueTypes, startAt, maxResults,
            # total} without isLast, so the end is where startAt reaches total.
            page = raw.get("values", raw.get("issueTypes", []))
            names.extend(str(t["name"]) for t in page if not t.get("subtask"))
            start = int(raw.get("startAt", start)) + len(page)
            total = raw.get("total")
            if "isLast" in raw:
                done = bool(raw["isLast"])
            elif total is not None:
                done = start >= int(total)
            else:  # neither: a short page is the last one
                done = len(page) < int(raw.get("maxResults", params["maxResults"]))
            if not page or done:
                break
        return names

    def _search_cloud(
        self, jql: str, page_token: str | None, page_size: int
    ) -> tuple[list[Ticket], str | None]:
        params: dict[str, Any] = {
            "jql": jql,
            "fields": ",".join(SEARCH_FIELDS),
            "maxResults": page_size,
        }
        if page_token:
            params["nextPageToken"] = page_token
        # Raw GET rather than enhanced_search_issues: that one first loads the whole field list.
        raw = self._call(
            "searching issues", lambda: self.client._get_json("search/jql", params=params)
        )
        base = self._browse_base()
        tickets = [self._ticket(i, base) for i in raw.get("issues", [])]
        token = raw.get("nextPageToken")
        if raw.get("isLast") or not token or not tickets:
            token = None
        return tickets, token

    def _search_dc(
        self, jql: str, page_token: str | None, page_size: int
    ) -> tuple[list[Ticket], str | None]:
        start = 0
        if page_token:
            if not page_token.startswith(_DC_TOKEN) or not page_token[len(_DC_TOKEN) :].isdigit():
                raise TrackerRejected(f"not a Data Center page token: {page_token!r}")
            start = int(page_token[len(_DC_TOKEN) :])
        params: dict[str, Any] = {
            "jql": jql,
            "startAt": start,
            "maxResults": page_size,
            "fields": ",".join(SEARCH_FIELDS),
        }
        raw = self._call("searching issues", lambda: self.client._get_json("search", params=params))
        issues = raw.get("issues", [])
        base = self._browse_base()
        tickets = [self._ticket(i, base) for i in issues]
        nxt = int(raw.get("startAt", start)) + len(issues)
        total = raw.get("total")
        more = bool(issues) and (
            nxt < int(total) if total is not None else len(issues) == page_size
        )
        return tickets, f"{_DC_TOKEN}{nxt}" if more else None

    def _ticket(self, raw: dict[str, Any], base: str) -> Ticket:
        f = raw.get("fields") or {}
        key = str(raw["key"])
        return Ticket(
            key=key,
            title=str(f.get("summary") or ""),
            description=flatten_adf(f.get("description")),
            type=(f.get("issuetype") or {}).get("name"),
            url=f"{base}/browse/{key}",
            status=(f.get("status") or {}).get("name"),
            updated=parse_jira_datetime(f.get("updated")),
            labels=tuple(str(x) for x in f.get("labels") or () if x),
            components=tuple(
                str(c["name"])
                for c in f.get("components") or ()
                if isinstance(c, dict) and c.get("name")
            ),
        )


_FORCED: dict[str, bool] = {"cloud": True, "datacenter": False}


def _mentions_reporter(exc: TrackerRejected) -> bool:
    return "reporter" in exc.fields or "reporter" in str(exc).lower()
