"""End to end: screenshots and files of a post and its thread reach the Jira issue, once.

The real app gets signed events; FakeSlack lists the files and serves them to the bot token;
the real `jira` client uploads them to FakeJira (multipart ``issue/{key}/attachments``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.wiring import Rig

PNG = b"\x89PNG\r\n\x1a\n" + b"screenshot-bytes" * 100
LOG = b"2026-11-30 ERROR export crashed\n" * 10


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path, attach_max_files=3, attach_max_mb=1)
    yield r
    r.close()


def _bug_post_with_files(rig: Rig) -> dict:  # type: ignore[type-arg]
    ev = rig.message("Export crashes with an error when I click CSV")
    shot = rig.slack.add_file("CIDEAS01", ev["ts"], "Screen Shot 1.png", PNG, "image/png")
    # In the thread, before filing: a log (allowed), an archive (not an allowed type), a file
    # shared only in another channel (filing does not read it) and one too large.
    reply = rig.message("here is the log", thread_ts=ev["ts"], ts=f"{float(ev['ts']) + 1:.6f}")
    rig.slack.add_file("CIDEAS01", reply["ts"], "export.log", LOG, "text/plain")
    rig.slack.add_file("CIDEAS01", reply["ts"], "dump.zip", b"PK", "application/zip")
    rig.slack.add_file("CIDEAS01", reply["ts"], "other.png", PNG, "image/png", ["CSECRET1"])
    rig.slack.add_file("CIDEAS01", reply["ts"], "big.png", b"x" * 2_000_000, "image/png")
    ev["_shot"] = shot
    return ev


def test_a_bug_post_with_a_screenshot_is_filed_with_it_attached_once(rig: Rig) -> None:
    ev = _bug_post_with_files(rig)
    rig.send_event(ev)
    rig.wait_idle()
    rig.send_event(rig.reaction("CIDEAS01", ev["ts"]))
    rig.wait_idle()
    assert len(rig.jira.issues) == 1
    key, issue = next(iter(rig.jira.issues.items()))
    atts = rig.jira.attachments(key)
    names = [a["filename"] for a in atts]
    shot_name = f"Screen_Shot_1-{ev['_shot']['id']}.png"
    assert names == [shot_name, names[1]] and names[1].startswith("export-")
    assert atts[0]["content"] == PNG and atts[1]["content"] == LOG
    assert f"!{shot_name}|thumbnail!" in issue["fields"]["description"]
    # Downloaded with the bot token; the refused files were never fetched.
    assert rig.slack.file_downloads and all(ok for _, ok in rig.slack.file_downloads)
    assert len(rig.slack.file_downloads) == 2
    upload = rig.jira.requests_to(f"/issue/{key}/attachments", "POST")[0]
    assert upload.headers.get("x-atlassian-token") == "no-check"


def test_a_retried_filing_attaches_each_file_once(rig: Rig) -> None:
    ev = _bug_post_with_files(rig)
    # Jira stores the screenshot but its answer is lost: the attempt fails and is retried.
    rig.jira.lose_answer_next("/attachments", 502, method="POST")
    rig.send_event(rig.reaction("CIDEAS01", ev["ts"]))
    rig.wait_idle()
    key = next(iter(rig.jira.issues))
    assert len(rig.jira.attachments(key)) == 1  # the screenshot, before the lost answer
    filing = rig.store.get_filing("CIDEAS01", ev["ts"])
    assert filing is not None and filing.state == "queued"
    assert rig.worker.run_once(rig.clock.advance(3600)) == 1  # the outbox retries
    assert len(rig.jira.issues) == 1  # the issue was found by its marker, not made again
    names = [a["filename"] for a in rig.jira.attachments(key)]
    assert len(names) == 2 and len(set(names)) == 2  # each file once
    filing = rig.store.get_filing("CIDEAS01", ev["ts"])
    assert filing is not None and filing.state == "filed" and filing.issue_key == key
    # A new request for the filed post changes nothing.
    rig.send_event(rig.reaction("CIDEAS01", ev["ts"], user="UCAROL"))
    rig.wait_idle()
    assert len(rig.jira.attachments(key)) == 2


def test_no_files_without_the_setting(tmp_path: Path) -> None:
    r = Rig(tmp_path, attach_max_files=0)
    try:
        ev = _bug_post_with_files(r)
        r.send_event(r.reaction("CIDEAS01", ev["ts"]))
        r.wait_idle()
        key = next(iter(r.jira.issues))
        assert r.jira.attachments(key) == [] and r.slack.file_downloads == []
        assert "thumbnail" not in r.jira.issues[key]["fields"]["description"]
    finally:
        r.close()
