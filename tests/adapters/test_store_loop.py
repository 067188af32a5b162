"""Store contract for votes (``Votes``, the ``vote`` flag of engagement records) and for the
announced state of filed issues (``IssueWatch``), on memory, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from bot.adapters.store_sql import SqlStore
from bot.domain.issue_changes import IssueState
from tests.adapters import test_store as contract
from tests.adapters.test_store import T0, AnyStore, Backend, _post, _race

# The contract's fixtures: memory, SQLite and PostgreSQL.
backend = contract.backend
store = contract.store


def _vote(store: AnyStore, ts: str, user: str, *, emoji: str = "+1") -> None:
    store.add_engagement("C1", ts, "reaction", user, emoji, vote=True)


def test_votes_count_each_person_once_across_reactions_and_replies(store: AnyStore) -> None:
    store.save_post(_post())
    store.add_engagement("C1", "1.0", "reaction", "U2", "tada")  # a reaction, not a vote
    assert store.get_post("C1", "1.0").votes == 0  # type: ignore[union-attr]
    change = store.add_engagement("C1", "1.0", "reaction", "U2", "+1", vote=True)
    assert change is not None and change.changed and change.after.votes == 1
    store.add_engagement("C1", "1.0", "reply", "U2", "5.0", vote=True)  # same person
    store.add_engagement("C1", "1.0", "reply", "U3", "6.0", vote=True)
    again = store.add_engagement("C1", "1.0", "reply", "U3", "6.0", vote=True)  # redelivered
    assert again is not None and not again.changed
    post = store.get_post("C1", "1.0")
    assert post is not None and (post.reactions, post.replies, post.votes) == (1, 2, 2)
    store.remove_engagement("C1", "1.0", "reaction", "U2", "+1")  # U2 still replied
    assert store.get_post("C1", "1.0").votes == 2  # type: ignore[union-attr]
    gone = store.remove_engagement("C1", "1.0", "reply", "U2", "5.0")
    assert gone is not None and gone.after.votes == 1
    store.delete_post("C1", "1.0", T0)
    assert store.get_post("C1", "1.0").votes == 0  # type: ignore[union-attr]


def test_a_record_told_again_as_a_vote_becomes_one(store: AnyStore) -> None:
    store.save_post(_post())
    store.add_engagement("C1", "1.0", "reaction", "U2", "+1")  # recorded before votes existed
    change = store.add_engagement("C1", "1.0", "reaction", "U2", "+1", vote=True)
    assert change is not None and change.after.votes == 1
    store.save_post(_post())  # a re-save with 0 does not erase the count
    assert store.get_post("C1", "1.0").votes == 1  # type: ignore[union-attr]


def test_concurrent_votes_are_all_counted(backend: Backend) -> None:
    backend.store.save_post(_post())
    handles = backend.handles(2)
    try:
        assert all(
            _race(
                8,
                lambda i: (
                    handles[i % 2].add_engagement(
                        "C1", "1.0", "reaction", f"U{i + 2}", "+1", vote=True
                    )
                    is not None
                ),
            )
        )
    finally:
        for h in handles[1:]:
            h.close()
    assert backend.store.get_post("C1", "1.0").votes == 8  # type: ignore[union-attr]


def test_top_voted_orders_filters_and_leaves_out_resolved_issues(store: AnyStore) -> None:
    for i, (votes, kind) in enumerate(
        [(2, "idea"), (5, "idea"), (0, "idea"), (3, "bug"), (2, "idea")]
    ):
        ts = f"{i + 1}.0"
        store.save_post(_post(ts, created=T0 + timedelta(minutes=i), kind=kind))
        for v in range(votes):
            _vote(store, ts, f"U{v + 10}")
    store.save_post(_post("9.0", channel="C2", created=T0))
    store.add_engagement("C2", "9.0", "reaction", "U5", "+1", vote=True)
    store.save_post(_post("8.0", created=T0 - timedelta(days=1)))  # before the window
    _vote(store, "8.0", "U5")

    top = store.top_voted(T0, limit=10, channels=["C1"])
    assert [(p.ts, p.votes) for p in top] == [("2.0", 5), ("4.0", 3), ("1.0", 2), ("5.0", 2)]
    assert [p.ts for p in store.top_voted(T0, limit=2, channels=["C1"])] == ["2.0", "4.0"]
    assert [p.ts for p in store.top_voted(T0, kinds=["idea"], channels=["C1"])] == [
        "2.0",
        "1.0",
        "5.0",
    ]
    assert [p.ts for p in store.top_voted(T0, until=T0 + timedelta(minutes=1))] == ["1.0", "9.0"]

    # Filed, then resolved in Jira: no longer open. Reopened: back.
    assert store.claim_filing("C1", "2.0", "w")
    store.update_filing("C1", "2.0", state="filed", issue_key="IDEA-2")
    claim = store.claim_issue("IDEA-2", T0 + timedelta(minutes=1), T0)
    assert claim is not None
    done = IssueState("IDEA-2", "Done", "done", None, "Fixed")
    assert store.finish_issue("IDEA-2", claim.token, done, T0) == "done"
    assert "2.0" not in [p.ts for p in store.top_voted(T0, channels=["C1"])]
    claim = store.claim_issue("IDEA-2", T0 + timedelta(minutes=1), T0)
    assert claim is not None and claim.announced == done
    store.finish_issue("IDEA-2", claim.token, IssueState("IDEA-2", "To Do", "new"), T0)
    assert store.top_voted(T0, channels=["C1"])[0].ts == "2.0"
    store.delete_post("C1", "2.0", T0)
    assert "2.0" not in [p.ts for p in store.top_voted(T0, channels=["C1"])]


def test_filed_posts_names_the_post_of_each_filed_issue(store: AnyStore) -> None:
    assert store.claim_filing("C1", "1.0", "w")
    store.update_filing("C1", "1.0", state="filed", issue_key="IDEA-1")
    assert store.claim_filing("C1", "2.0", "w")
    store.update_filing("C1", "2.0", state="commented", issue_key="IDEA-9")  # not filed by us
    found = store.filed_posts(["IDEA-1", "IDEA-9", "OTHER-1"])
    assert list(found) == ["IDEA-1"]
    assert (found["IDEA-1"].channel, found["IDEA-1"].ts) == ("C1", "1.0")
    assert found["IDEA-1"].filed_at is not None


def test_issue_claims_are_fenced_and_a_change_seen_meanwhile_is_handed_on(
    store: AnyStore,
) -> None:
    now = datetime.now(UTC)
    first = store.claim_issue("IDEA-1", now + timedelta(seconds=30), now)
    assert first is not None and first.announced is None
    assert store.claim_issue("IDEA-1", now + timedelta(seconds=30), now) is None  # held: dirty
    state = IssueState("IDEA-1", "In Progress", "indeterminate", "Dana", None)
    assert store.finish_issue("IDEA-1", first.token, state, now) == "again"
    assert store.announced_state("IDEA-1") == state
    # An expired claim is taken over; the old holder's finish then changes nothing.
    second = store.claim_issue("IDEA-1", now + timedelta(seconds=30), now)
    assert second is not None and second.token > first.token
    later = now + timedelta(minutes=1)
    third = store.claim_issue("IDEA-1", later + timedelta(seconds=30), later)
    assert third is not None and third.token > second.token
    assert store.finish_issue("IDEA-1", second.token, IssueState("IDEA-1", "Done"), now) == "lost"
    assert store.announced_state("IDEA-1") == state
    assert store.finish_issue("IDEA-1", third.token, None, later) == "done"  # release only
    assert store.announced_state("IDEA-1") == state


def test_racing_issue_claims_have_one_winner(backend: Backend) -> None:
    now = datetime.now(UTC)
    handles = backend.handles(2)
    try:
        won = _race(
            8,
            lambda i: (
                handles[i % 2].claim_issue("IDEA-7", now + timedelta(seconds=30), now) is not None
            ),
        )
    finally:
        for h in handles[1:]:
            h.close()
    assert sum(won) == 1


def test_an_older_database_gains_the_vote_columns(store_url: str) -> None:
    s = SqlStore(store_url)
    try:
        with s.engine.begin() as conn:
            conn.execute(text("DROP TABLE post_people"))
            conn.execute(text("DROP TABLE issue_states"))
            conn.execute(text("ALTER TABLE posts DROP COLUMN votes"))
            conn.execute(text("DROP INDEX ix_filings_issue_key"))
    finally:
        s.close()
    s = SqlStore(store_url)
    try:
        s.save_post(_post())
        _vote(s, "1.0", "U2")
        assert s.get_post("C1", "1.0").votes == 1  # type: ignore[union-attr]
        assert s.filed_posts(["X-1"]) == {}
    finally:
        s.close()


@pytest.mark.parametrize("emoji", ["+1", "thumbsup", "+1::skin-tone-4"])
def test_vote_emoji_names(emoji: str) -> None:
    from bot.domain.votes import is_vote_emoji

    assert is_vote_emoji(emoji)
    assert not is_vote_emoji("tada")
    assert is_vote_emoji("fire", ["fire"]) and not is_vote_emoji(emoji, ["fire"])
