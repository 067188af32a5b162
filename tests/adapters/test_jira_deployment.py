"""Cloud or Data Center: JiraTracker asks serverInfo (once, on first need), not the hostname.

Everything goes through the real `jira` client against the local FakeJira, which answers like
Cloud (search/jql, user search by query, accountId) or like Data Center (search, username, name).
"""

from __future__ import annotations

import pytest

from bot.adapters.jira_tracker import JiraTracker, is_cloud_url
from bot.domain.models import IssueText, NewIssue
from bot.domain.ports import TrackerRejected
from tests.fakes.jira_server import FakeJira

CLOUD_ID = "1a2b3c4d-0000-4000-8000-5e6f7a8b9c0d"


def _issue(**kw: object) -> NewIssue:
    base: dict[str, object] = {
        "project": "PROJ",
        "summary": "Dark mode",
        "body": IssueText(original="please"),
        "issue_type": "Story",
    }
    base.update(kw)
    return NewIssue(**base)  # type: ignore[arg-type]


def _server_info_calls(fake: FakeJira) -> int:
    return len(fake.requests_to("/serverInfo"))


def test_gateway_url_is_cloud_by_server_info() -> None:
    # Scoped API tokens and OAuth reach Cloud only through https://api.atlassian.com/ex/jira/<id>:
    # not *.atlassian.net, yet Cloud, with Cloud's search and user look-up.
    with FakeJira(cloud=True) as fake:
        gateway = f"{fake.base_url}/ex/jira/{CLOUD_ID}"
        fake.add_issue("Existing", labels=["m-1"])
        tracker = JiraTracker(gateway, "PROJ", fake.token, email=fake.email, timeout=5.0)
        assert fake.requests == []  # nothing asked before it is needed

        found = tracker.find_by_marker("PROJ", "m-1")
        assert found is not None and found.key == "PROJ-1"
        assert fake.requests_to(f"/ex/jira/{CLOUD_ID}/rest/api/2/search/jql")
        assert all(r.path.endswith("/search/jql") for r in fake.requests_to("/search"))

        created = tracker.create_issue(_issue(reporter_email="alice@example.com"))
        assert fake.requests_to("/user/search")[0].param("query") == "alice@example.com"
        reporter = fake.issues[created.key]["fields"]["reporter"]
        assert reporter["accountId"] == "5b10a2844c20165700ede21g"
        # people browse the site (serverInfo's baseUrl), not the gateway
        assert created.url == f"{fake.base_url}/browse/{created.key}"
        assert tracker.cloud and "cloud" in repr(tracker)
        assert _server_info_calls(fake) == 1  # asked once, then cached


@pytest.mark.parametrize("deployment_type", ["Server", "DataCenter"])
def test_self_managed_is_data_center_by_server_info(deployment_type: str) -> None:
    with FakeJira(deployment_type=deployment_type) as fake:
        tracker = JiraTracker(fake.base_url, "PROJ", fake.token, timeout=5.0)
        tracker.create_issue(_issue(reporter_email="alice@example.com"))
        assert fake.requests_to("/user/search")[0].param("username") == "alice@example.com"
        tracker.updated_since("PROJ", None)
        assert fake.requests_to("/rest/api/2/search", "GET")[0].path == "/rest/api/2/search"
        assert not tracker.cloud
        assert _server_info_calls(fake) == 1


def test_issue_types_and_plain_creation_need_no_server_info() -> None:
    with FakeJira(cloud=True) as fake:
        tracker = JiraTracker(fake.base_url, "PROJ", fake.token, email=fake.email, timeout=5.0)
        assert "auto" in repr(tracker)
        assert tracker.issue_types() == ["Bug", "Story", "Task", "Epic"]
        tracker.create_issue(_issue())
        assert _server_info_calls(fake) == 0


@pytest.mark.parametrize(
    ("deployment", "cloud_fake", "search_path"),
    [
        ("cloud", True, "/rest/api/2/search/jql"),
        ("datacenter", False, "/rest/api/2/search"),
    ],
)
def test_setting_overrides_detection(deployment: str, cloud_fake: bool, search_path: str) -> None:
    with FakeJira(
        cloud=cloud_fake, deployment_type="Cloud" if not cloud_fake else "Server"
    ) as fake:
        # serverInfo says the opposite: the operator's JIRA_DEPLOYMENT wins and it is never asked
        tracker = JiraTracker(
            fake.base_url,
            "PROJ",
            fake.token,
            email=fake.email,
            deployment=deployment,  # type: ignore[arg-type]
        )
        tracker.updated_since("PROJ", None)
        assert fake.requests[-1].path == search_path
        assert _server_info_calls(fake) == 0


def test_unknown_deployment_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="deployment"):
        JiraTracker("https://j.example", "P", "t", deployment="onprem")  # type: ignore[arg-type]


def test_hostname_is_the_fallback_when_server_info_fails() -> None:
    assert is_cloud_url(f"https://api.atlassian.com/ex/jira/{CLOUD_ID}")
    assert not is_cloud_url("https://api.atlassian.com.evil.example/ex/jira/x")
    with FakeJira() as fake:
        tracker = JiraTracker(fake.base_url, "PROJ", fake.token, timeout=5.0)
        # a passing failure: this call falls back to the hostname (Data Center), the next asks again
        fake.fail_next("/serverInfo", 503)
        tracker.updated_since("PROJ", None)
        tracker.updated_since("PROJ", None)
        assert [r.status for r in fake.requests_to("/serverInfo")] == [503, 200]
        assert len(fake.requests_to("/rest/api/2/search")) == 2

    with FakeJira() as fake:
        tracker = JiraTracker(fake.base_url, "PROJ", fake.token, timeout=5.0)
        # a lasting refusal (a proxy, a token without the scope): the hostname answer is kept
        fake.fail_next("/serverInfo", 404, times=5)
        tracker.updated_since("PROJ", None)
        tracker.updated_since("PROJ", None)
        assert _server_info_calls(fake) == 1
        assert not tracker.cloud


def test_wrong_flavour_fails_loudly_on_the_fake() -> None:
    # The fake answers like the real thing, which is what makes the tests above mean something.
    with FakeJira(cloud=True) as fake:
        tracker = JiraTracker(
            fake.base_url, "PROJ", fake.token, email=fake.email, deployment="datacenter"
        )
        with pytest.raises(TrackerRejected, match="410"):
            tracker.updated_since("PROJ", None)
