"""JiraTracker with the real `jira` client against the local FakeJira server."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from bot.adapters.jira_http import parse_retry_after
from bot.adapters.jira_tracker import (
    JiraTracker,
    flatten_adf,
    is_cloud_url,
    single_line_summary,
)
from bot.domain.models import IssueText, NewComment, NewIssue
from bot.domain.ports import Tracker, TrackerRejected, TrackerRetryable
from tests.fakes.jira_server import FakeJira, FakeUser, adf, units


@pytest.fixture
def fake_jira() -> Iterator[FakeJira]:
    with FakeJira(project="PROJ") as fake:
        yield fake


@pytest.fixture
def cloud_jira() -> Iterator[FakeJira]:
    with FakeJira(project="PROJ", cloud=True) as fake:
        yield fake


def dc_tracker(fake: FakeJira, **kw: object) -> JiraTracker:
    """Data Center style: bearer personal access token; the flavour comes from serverInfo."""
    return JiraTracker(fake.base_url, "PROJ", fake.token, timeout=5.0, **kw)  # type: ignore[arg-type]


def cloud_tracker(fake: FakeJira) -> JiraTracker:
    """Cloud style: e-mail + API token, forced to Cloud since the fake is on 127.0.0.1."""
    return JiraTracker(
        fake.base_url, "PROJ", fake.token, email=fake.email, deployment="cloud", timeout=5.0
    )


def new_issue(**kw: object) -> NewIssue:
    base: dict[str, object] = {
        "project": "PROJ",
        "summary": "Dark mode for the dashboard",
        "body": IssueText(summary="People asked for it.", original="See the Slack thread."),
        "issue_type": "Story",
        "labels": ("ui", "dark mode"),
        "link_url": "https://example.slack.com/archives/C1/p123",
        "link_title": "Slack thread",
    }
    base.update(kw)
    return NewIssue(**base)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- pure helpers


def test_helpers() -> None:
    assert is_cloud_url("https://acme.atlassian.net")
    assert not is_cloud_url("https://jira.acme.com")
    assert not is_cloud_url("https://atlassian.net.evil.com")
    s = single_line_summary("a\nb\r\n  c " + "x" * 300)
    assert "\n" not in s and len(s) == 255 and s.startswith("a b c") and s.endswith("…")
    s = single_line_summary("x" + "😀" * 200)  # 401 UTF-16 units: never half an emoji
    assert units(s) == 254 and s == "x" + "😀" * 126 + "…"
    assert parse_retry_after("7") == 7.0
    now = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30
    assert parse_retry_after("garbage") is None
    assert flatten_adf(adf("line one\nline two")) == "line one\nline two"
    doc = {
        "type": "doc",
        "content": [
            {"type": "heading", "content": [{"type": "text", "text": "Title"}]},
            {
                "type": "bulletList",
                "content": [
                    {
                        "type": "listItem",
                        "content": [
                            {
                                "type": "paragraph",
                                "content": [
                                    {"type": "text", "text": "ask "},
                                    {"type": "mention", "attrs": {"text": "@ann"}},
                                ],
                            }
                        ],
                    }
                ],
            },
        ],
    }
    assert flatten_adf(doc) == "Title\nask @ann"


def test_protocol_and_no_network_in_constructor() -> None:
    secret = "s3cret-token-value"
    tracker = JiraTracker("http://127.0.0.1:9/", "PROJ", secret)  # nothing listens on port 9
    t: Tracker = tracker
    assert t.browse_url("PROJ-7") == "http://127.0.0.1:9/browse/PROJ-7"
    assert tracker.client.server_url == "http://127.0.0.1:9"  # built without any request
    assert secret not in repr(tracker)
    # the flavour is settled without a request when forced (auto asks serverInfo on first need)
    assert JiraTracker("https://jira.acme.com", "P", "t", deployment="cloud").cloud
    assert not JiraTracker("https://acme.atlassian.net", "P", "t", deployment="datacenter").cloud
    assert "auto" in repr(tracker)


# --------------------------------------------------------------------------- create


def test_create_with_all_fields(fake_jira: FakeJira) -> None:
    tracker = cloud_tracker(fake_jira)
    fake_jira.reporter_settable = True
    long_title = "Dark mode\nfor the dashboard " + "very " * 80
    created = tracker.create_issue(new_issue(summary=long_title))
    assert created.key == "PROJ-1"
    assert created.url == f"{fake_jira.base_url}/browse/PROJ-1"

    posts = fake_jira.requests_to("/rest/api/2/issue", "POST")
    creates = [r for r in posts if r.path == "/rest/api/2/issue"]
    assert len(creates) == 1
    sent = creates[0].json["fields"]
    assert "\n" not in sent["summary"] and len(sent["summary"]) <= 255
    assert sent["summary"].startswith("Dark mode for the dashboard very")
    assert sent["labels"] == ["ui", "dark-mode"]
    assert sent["issuetype"] == {"name": "Story"}
    assert sent["project"] == {"key": "PROJ"}
    assert sent["description"].startswith("People asked for it.\n\nh3. Original post\n")
    assert "{noformat}\nSee the Slack thread.\n{noformat}" in sent["description"]
    assert "reporter" not in sent
    assert creates[0].headers["authorization"].startswith("Basic ")

    stored = fake_jira.issues["PROJ-1"]["fields"]
    assert stored["labels"] == ["ui", "dark-mode"]
    links = fake_jira.remote_links("PROJ-1")
    assert [(lk["object"]["url"], lk["object"]["title"]) for lk in links] == [
        ("https://example.slack.com/archives/C1/p123", "Slack thread")
    ]
    # one POST for the issue, one for the link: no prefetch GET, no createmeta look-ups
    assert [(r.method, r.path) for r in fake_jira.requests] == [
        ("POST", "/rest/api/2/issue"),
        ("POST", "/rest/api/2/issue/PROJ-1/remotelink"),
    ]


def test_empty_summary_rejected_without_request(fake_jira: FakeJira) -> None:
    with pytest.raises(TrackerRejected) as err:
        dc_tracker(fake_jira).create_issue(new_issue(summary=" \n "))
    assert "summary" in err.value.fields
    assert fake_jira.requests == []


@pytest.mark.parametrize("cloud", [True, False])
def test_reporter_looked_up_by_email(cloud: bool) -> None:
    with FakeJira(cloud=cloud) as fake:
        tracker = cloud_tracker(fake) if cloud else dc_tracker(fake)
        created = tracker.create_issue(new_issue(reporter_email="Alice@Example.com"))
        lookup = fake.requests_to("/user/search")
        assert len(lookup) == 1
        if cloud:
            assert lookup[0].param("query") == "alice@example.com"
            expected = {"accountId": "5b10a2844c20165700ede21g"}
        else:
            assert lookup[0].param("username") == "alice@example.com"
            expected = {"name": "alice"}
        create = fake.requests_to("/rest/api/2/issue", "POST")[0]
        assert create.json["fields"]["reporter"] == expected
        assert fake.issues[created.key]["fields"]["reporter"]["emailAddress"] == "alice@example.com"
        # the look-up is cached
        tracker.create_issue(new_issue(reporter_email="alice@example.com"))
        assert len(fake.requests_to("/user/search")) == 1


def test_reporter_rejected_falls_back_without_it(fake_jira: FakeJira) -> None:
    fake_jira.reporter_settable = False
    created = dc_tracker(fake_jira).create_issue(new_issue(reporter_email="alice@example.com"))
    creates = [r for r in fake_jira.requests if r.path == "/rest/api/2/issue"]
    assert [r.status for r in creates] == [400, 201]
    assert "reporter" in creates[0].json["fields"]
    assert "reporter" not in creates[1].json["fields"]
    assert fake_jira.issues[created.key]["fields"]["reporter"] is None


def test_unknown_reporter_email_files_without_reporter(fake_jira: FakeJira) -> None:
    dc_tracker(fake_jira).create_issue(new_issue(reporter_email="nobody@example.com"))
    creates = [r for r in fake_jira.requests if r.path == "/rest/api/2/issue"]
    assert len(creates) == 1 and "reporter" not in creates[0].json["fields"]


def test_failing_remote_link_does_not_fail_creation(
    fake_jira: FakeJira, caplog: pytest.LogCaptureFixture
) -> None:
    fake_jira.fail_next("/remotelink", 500)
    with caplog.at_level(logging.WARNING, logger="bot.adapters.jira_tracker"):
        created = dc_tracker(fake_jira).create_issue(new_issue())
    assert created.key in fake_jira.issues
    assert fake_jira.remote_links(created.key) == []
    assert any("remote link" in r.getMessage() for r in caplog.records)


def test_description_escapes_what_people_and_models_wrote(fake_jira: FakeJira) -> None:
    body = IssueText(
        summary="Add SSO !https://evil.example/px.png!",
        original="[kept|https://verbatim.example]",
        permalink="https://acme.slack.com/archives/C1/p1",
        author="Mallory [Verify your Jira account|https://evil.example/sso]",
    )
    tracker = dc_tracker(fake_jira)
    key = tracker.create_issue(new_issue(body=body)).key
    # v2 on both flavours: the description is wiki markup, which Cloud also accepts on v2
    assert fake_jira.requests_to("/issue", "POST")[0].path == "/rest/api/2/issue"
    description = fake_jira.issues[key]["fields"]["description"]
    assert r"Add SSO \!https://evil.example/px.png\!" in description
    assert (
        r"Posted by: Mallory \[Verify your Jira account\|https://evil.example/sso\]" in description
    )
    assert "{noformat}\n[kept|https://verbatim.example]\n{noformat}" in description
    assert "Slack thread: https://acme.slack.com/archives/C1/p1\n" in description
    tracker.add_comment(NewComment(key=key, body=IssueText(author="Eve {html}<script>{html}")))
    assert r"Posted by: Eve \{html\}<script>\{html\}" in fake_jira.comments(key)[0]["body"]


def test_astral_text_fits_jira_limits_in_utf16_units(fake_jira: FakeJira) -> None:
    # 😀 is one Python character but two UTF-16 code units, which is what Jira counts.
    tracker = dc_tracker(fake_jira)
    long_post = "😀 dark mode 𝕏 " * 3000  # 42,000 characters, 54,000 UTF-16 units
    key = tracker.create_issue(
        new_issue(summary="😀" * 200, body=IssueText(summary="𝕏" * 100, original=long_post))
    ).key
    fields = fake_jira.issues[key]["fields"]
    assert units(fields["summary"]) <= 255 and fields["summary"].endswith("😀…")
    assert 32_000 < units(fields["description"]) <= 32_767
    assert "more characters in Slack" in fields["description"]
    tracker.add_comment(NewComment(key=key, body=IssueText(original=long_post)))
    assert units(fake_jira.comments(key)[0]["body"]) <= 32_767


# --------------------------------------------------------------------------- errors


def _one_request(fake: FakeJira, path: str) -> None:
    """The library's retry loop is off: exactly one request reached the server."""
    assert len([r for r in fake.requests if r.path == path]) == 1


def test_429_is_retryable_with_retry_after_seconds(fake_jira: FakeJira) -> None:
    fake_jira.fail_next("/rest/api/2/issue", 429, headers={"Retry-After": "42"})
    with pytest.raises(TrackerRetryable) as err:
        dc_tracker(fake_jira).create_issue(new_issue())
    assert err.value.retry_after == 42.0
    _one_request(fake_jira, "/rest/api/2/issue")
    assert fake_jira.issues == {}


def test_429_with_http_date_retry_after(fake_jira: FakeJira) -> None:
    when = datetime.now(UTC) + timedelta(seconds=120)
    fake_jira.fail_next("/search", 429, headers={"Retry-After": format_datetime(when, usegmt=True)})
    with pytest.raises(TrackerRetryable) as err:
        dc_tracker(fake_jira).search("project = PROJ")
    assert err.value.retry_after is not None and 60 < err.value.retry_after <= 120
    _one_request(fake_jira, "/rest/api/2/search")


def test_503_is_retryable(fake_jira: FakeJira) -> None:
    # With its own retries on, the library would sleep ~2 s and try again on 503 + Retry-After.
    fake_jira.fail_next("/rest/api/2/issue", 503, times=5, headers={"Retry-After": "1"})
    with pytest.raises(TrackerRetryable) as err:
        dc_tracker(fake_jira).create_issue(new_issue())
    assert err.value.retry_after == 1.0
    _one_request(fake_jira, "/rest/api/2/issue")


def test_required_custom_field_is_rejected_with_fields() -> None:
    with FakeJira(required_fields={"customfield_10010": "Team is required."}) as fake:
        with pytest.raises(TrackerRejected) as err:
            dc_tracker(fake).create_issue(new_issue())
        assert err.value.fields == {"customfield_10010": "Team is required."}
        assert "Team is required." in str(err.value)
        _one_request(fake, "/rest/api/2/issue")


def test_bad_issue_type_is_rejected(fake_jira: FakeJira) -> None:
    with pytest.raises(TrackerRejected) as err:
        dc_tracker(fake_jira).create_issue(new_issue(issue_type="Wish"))
    assert "issuetype" in err.value.fields


def test_401_is_rejected_and_never_shows_the_token(
    fake_jira: FakeJira, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "wrong-secret-token-xyz"
    tracker = JiraTracker(fake_jira.base_url, "PROJ", secret, email=fake_jira.email)
    with caplog.at_level(logging.DEBUG), pytest.raises(TrackerRejected) as err:
        tracker.create_issue(new_issue())
    assert "credentials" in str(err.value)
    assert secret not in str(err.value) and secret not in caplog.text
    assert base64.b64encode(f"{fake_jira.email}:{secret}".encode()).decode() not in caplog.text
    assert fake_jira.issues == {}
    _one_request(fake_jira, "/rest/api/2/issue")


def test_connection_errors_and_timeouts_are_retryable(fake_jira: FakeJira) -> None:
    fake_jira.delay_next("/rest/api/2/search", 3.0)
    tracker = JiraTracker(fake_jira.base_url, "PROJ", fake_jira.token, timeout=0.3)
    with pytest.raises(TrackerRetryable, match="timed out") as err:
        tracker.search("project = PROJ")
    assert err.value.ambiguous  # the request was sent: it may have taken effect
    _one_request(fake_jira, "/rest/api/2/search")
    fake_jira.fail_next("/rest/api/2/search", status=503)
    with pytest.raises(TrackerRetryable) as err:
        tracker.search("project = PROJ")
    assert not err.value.ambiguous  # a 503 says it did not

    url = fake_jira.base_url
    fake_jira.stop()
    with pytest.raises(TrackerRetryable):
        JiraTracker(url, "PROJ", "t", timeout=2.0).issue_types()


def test_long_permalink_links_with_a_stable_hashed_global_id(fake_jira: FakeJira) -> None:
    url = "https://acme.slack.com/archives/C1/p1700000000123456?thread_ts=1.2&cid=C1&x=" + "y" * 300
    tracker = dc_tracker(fake_jira)
    key = tracker.create_issue(new_issue(link_url=url, link_title=None)).key
    # the comment's retry links the same URL again: one link, updated in place
    for _ in range(2):
        tracker.add_comment(NewComment(key=key, body=IssueText(original="+1"), link_url=url))
    links = fake_jira.remote_links(key)
    assert len(links) == 1 and links[0]["object"]["url"] == url
    assert len(links[0]["globalId"]) <= 255 and links[0]["globalId"] != url
    assert units(links[0]["object"]["title"]) <= 255
    # the same URL hashes the same in another process (a retry after a restart)
    other = dc_tracker(fake_jira)
    other.add_comment(NewComment(key=key, body=IssueText(original="again"), link_url=url))
    assert len(fake_jira.remote_links(key)) == 1
    assert [r.status for r in fake_jira.requests_to("/remotelink", "POST")] == [201, 200, 200, 200]


# --------------------------------------------------------------------------- comment, types


def test_comment_and_link(fake_jira: FakeJira) -> None:
    tracker = dc_tracker(fake_jira)
    key = tracker.create_issue(new_issue(link_url=None)).key
    cid = tracker.add_comment(
        NewComment(
            key=key,
            body=IssueText(original="Also asked in #design"),
            link_url="https://example.slack.com/p9",
        )
    )
    assert cid == fake_jira.comments(key)[0]["id"]
    assert "{noformat}\nAlso asked in #design\n{noformat}" in fake_jira.comments(key)[0]["body"]
    # a retried comment does not duplicate the link (globalId makes it an upsert)
    tracker.add_comment(
        NewComment(
            key=key, body=IssueText(original="again"), link_url="https://example.slack.com/p9"
        )
    )
    assert [lk["object"]["url"] for lk in fake_jira.remote_links(key)] == [
        "https://example.slack.com/p9"
    ]
    with pytest.raises(TrackerRejected):
        tracker.add_comment(NewComment(key="PROJ-999", body=IssueText(original="nope")))


def test_issue_types(fake_jira: FakeJira) -> None:
    assert dc_tracker(fake_jira).issue_types() == ["Bug", "Story", "Task", "Epic"]
    assert fake_jira.requests_to("/issue/createmeta/PROJ/issuetypes")


def test_issue_types_cloud_shape_and_old_dc_fallback() -> None:
    with FakeJira(cloud=True, issue_types=("Idea", "Bug")) as fake:
        assert cloud_tracker(fake).issue_types() == ["Idea", "Bug"]
    with FakeJira(createmeta_issuetypes=False, issue_types=("Bug", "Task")) as fake:
        assert dc_tracker(fake).issue_types() == ["Bug", "Task"]
        assert fake.requests_to("/rest/api/2/project/PROJ")


@pytest.mark.parametrize("cloud", [True, False])
def test_issue_types_page_through_createmeta(cloud: bool) -> None:
    types = tuple(f"Type {i}" for i in range(7))
    with FakeJira(cloud=cloud, issue_types=types, createmeta_page=3) as fake:
        tracker = cloud_tracker(fake) if cloud else dc_tracker(fake)
        assert tracker.issue_types() == list(types)
        calls = fake.requests_to("/issue/createmeta/PROJ/issuetypes")
        # 8 types with the sub-task, 3 a page: startAt 0, 3, 6 and no request past the end
        assert [c.param("startAt") for c in calls] == ["0", "3", "6"]


# --------------------------------------------------------------------------- search


def _seed(fake: FakeJira, n: int, start: datetime) -> list[str]:
    return [
        fake.add_issue(
            f"Issue {i}",
            description=f"Body of issue {i}",
            issue_type="Bug" if i % 3 == 0 else "Story",
            status="Done" if i % 2 else "To Do",
            updated=start + timedelta(minutes=i),
        )
        for i in range(n)
    ]


def _all_pages(tracker: JiraTracker, jql: str, size: int) -> tuple[list[str], int]:
    keys: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        tickets, token = tracker.search(jql, token, size)
        pages += 1
        keys.extend(t.key for t in tickets)
        if token is None:
            return keys, pages
        assert pages < 50


@pytest.mark.parametrize("cloud", [True, False])
def test_search_pages_through_everything(cloud: bool) -> None:
    start = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    with FakeJira(cloud=cloud) as fake:
        keys = _seed(fake, 260, start)
        tracker = cloud_tracker(fake) if cloud else dc_tracker(fake)
        got, pages = _all_pages(tracker, "project = PROJ ORDER BY updated ASC", 100)
        assert got == keys
        assert pages == 3
        path = "/rest/api/2/search/jql" if cloud else "/rest/api/2/search"
        calls = [r for r in fake.requests if r.path == path]
        assert len(calls) == 3
        assert calls[0].param("fields") == (
            "summary,description,issuetype,status,updated,labels,components"
        )
        if cloud:
            assert calls[1].param("nextPageToken")
        else:
            assert [c.param("startAt") for c in calls] == ["0", "100", "200"]

        first, _ = tracker.search("project = PROJ ORDER BY updated ASC", None, 1)
        t = first[0]
        assert (t.key, t.title, t.description, t.type, t.status) == (
            "PROJ-1",
            "Issue 0",
            "Body of issue 0",
            "Bug",
            "To Do",
        )
        assert t.url == f"{fake.base_url}/browse/PROJ-1"
        assert t.updated == start and t.updated.tzinfo is not None


def test_search_server_page_cap_is_respected() -> None:
    with FakeJira(max_page=40) as fake:
        keys = _seed(fake, 250, datetime(2024, 1, 1, tzinfo=UTC))
        got, pages = _all_pages(dc_tracker(fake), "project = PROJ ORDER BY key ASC", 100)
        assert got == keys and pages == 7


def test_search_updated_since(fake_jira: FakeJira) -> None:
    start = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    keys = _seed(fake_jira, 30, start)
    jql = 'project = PROJ AND updated >= "2024/05/01 08:20" ORDER BY updated DESC'
    tickets, token = dc_tracker(fake_jira).search(jql)
    assert token is None
    assert [t.key for t in tickets] == list(reversed(keys[20:]))
    assert all(
        t.updated is not None and t.updated >= start + timedelta(minutes=20) for t in tickets
    )
    fake_jira.add_issue("Fresh", updated=datetime.now(UTC) - timedelta(minutes=5))
    fresh, _ = dc_tracker(fake_jira).search("project = PROJ AND updated >= -1h")
    assert [t.title for t in fresh] == ["Fresh"]


def test_search_v3_adf_descriptions_are_flattened(cloud_jira: FakeJira) -> None:
    cloud_jira.add_issue("Rich", description="first line\nsecond line")
    tracker = cloud_tracker(cloud_jira)
    tracker.client._options["rest_api_version"] = "3"  # a site configured for REST v3
    tickets, _ = tracker.search("project = PROJ")
    assert cloud_jira.requests[-1].path == "/rest/api/3/search/jql"
    assert tickets[0].description == "first line\nsecond line"


def test_bad_jql_is_rejected(fake_jira: FakeJira) -> None:
    with pytest.raises(TrackerRejected, match="JQL"):
        dc_tracker(fake_jira).search("project = PROJ AND (")
    with pytest.raises(TrackerRejected):
        dc_tracker(fake_jira).search("project = PROJ", page_token="bogus")


def test_fake_checks_users_and_bearer() -> None:
    users = [FakeUser("bob@example.com", "bob", "acc-bob")]
    with FakeJira(users=users, token="pat-1") as fake:
        tracker = JiraTracker(fake.base_url, "PROJ", "pat-1")
        tracker.create_issue(new_issue(reporter_email="bob@example.com"))
        req = fake.requests_to("/rest/api/2/issue", "POST")[0]
        assert req.headers["authorization"] == "Bearer pat-1"
        assert req.json["fields"]["reporter"] == {"name": "bob"}
