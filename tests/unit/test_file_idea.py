"""Filing one idea of a notes post on in-memory fakes: the rules before the exactly-once engine,
and each idea under its own filing id."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.domain.models import Idea, Person, Triage
from bot.domain.ports import StoredPost
from bot.service.file_idea import IdeaRequest
from bot.service.file_message import FileRequest, FilingAccess
from tests.fakes.flags import SwitchedFlags
from tests.fakes.memory_store import MemoryStore
from tests.unit.test_file_message import REF, make

IDEAS = (
    Idea(title="Add an uptime alert for staging", summary="Alert on staging.", excerpt="Add …"),
    Idea(title="Block Thursday afternoons", summary="No meetings.", excerpt="Let's block …"),
)


def _notes_post(store: MemoryStore) -> None:
    verdict = Triage(
        kind="idea", confidence=0.9, title="Retro", summary="", analyzer="a", ideas=IDEAS
    )
    store.save_post(
        StoredPost(
            channel=REF.channel,
            ts=REF.ts,
            user="UALICE",
            text="the retro notes",
            created=datetime.now(UTC),
            triage_json=verdict.model_dump_json(),
        )
    )


def _outcomes(notes: object, what: str) -> list[dict[str, object]]:
    return [d for w, d in notes.said if w == what]  # type: ignore[attr-defined]


def test_each_idea_files_once_under_its_own_id() -> None:
    store = MemoryStore()
    _notes_post(store)
    use, chat, _, tracker = make(store)
    chat.people["UALICE"] = Person(name="Alice", email="alice@example.com")
    first = use.file_idea(IdeaRequest(ref=REF, index=0, requester="UBOB"))
    again = use.file_idea(IdeaRequest(ref=REF, index=0, requester="UCAROL"))
    second = use.file_idea(IdeaRequest(ref=REF, index=1, requester="UBOB"))
    assert (first.status, again.status, second.status) == ("filed", "already", "filed")
    assert [i.summary for i in tracker.created] == [IDEAS[0].title, IDEAS[1].title]
    assert tracker.created[0].body.original == IDEAS[0].excerpt
    assert tracker.created[0].reporter_email == "alice@example.com"
    assert store.get_filing(REF.channel, f"{REF.ts}~1") is not None
    assert store.get_filing(REF.channel, REF.ts) is None  # the post itself stays unfiled


@pytest.mark.parametrize(
    ("setup", "status"),
    [
        ({"access": FilingAccess(users=("UADMIN",))}, "denied"),
        ({"flags": SwitchedFlags(off={("filing", None)})}, "unavailable"),
    ],
)
def test_the_rules_of_filing_apply_to_ideas(setup: dict[str, object], status: str) -> None:
    store = MemoryStore()
    _notes_post(store)
    use, _, notes, tracker = make(store, access=setup.get("access"))  # type: ignore[arg-type]
    if "flags" in setup:
        use.flags = setup["flags"]  # type: ignore[assignment]
    result = use.file_idea(IdeaRequest(ref=REF, index=0, requester="UBOB"))
    assert result.status == status and tracker.created == []
    assert _outcomes(notes, "to_requester")


def test_a_missing_idea_or_post_files_nothing() -> None:
    store = MemoryStore()
    use, _, _, tracker = make(store)
    assert use.file_idea(IdeaRequest(ref=REF, index=0, requester="UBOB")).status == "unavailable"
    _notes_post(store)
    assert use.file_idea(IdeaRequest(ref=REF, index=5, requester="UBOB")).status == "unavailable"
    assert tracker.created == []


def test_whole_post_requests_ask_to_pick_except_idea_command() -> None:
    store = MemoryStore()
    _notes_post(store)
    use, _, _, tracker = make(store)
    picked = use(FileRequest(ref=REF, requester="UBOB"))
    assert picked.status == "unavailable" and "2 ideas" in (picked.message or "")
    assert tracker.created == []
    whole = use(FileRequest(ref=REF, requester="UBOB", whole=True))
    assert whole.status == "filed" and len(tracker.created) == 1
