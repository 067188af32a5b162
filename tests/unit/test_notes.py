"""Notes with many ideas: ticket titles, offline detection on the labelled write-ups, the LLM
extractor and its fallbacks, the notes finder inside triage, and the reply's Block Kit limits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.idea_titles import ticket_title
from bot.adapters.ideas_llm import LlmIdeaExtractor
from bot.adapters.ideas_offline import OfflineIdeaExtractor
from bot.domain.metrics import NOTES_POSTS
from bot.domain.models import Analysis, Idea, Match, Post, Triage
from bot.domain.notes import NotesPolicy, idea_ts, message_ts, split_idea_ts
from bot.service.notes import NotesFinder
from bot.service.triage import Triager
from bot.slack import blocks
from bot.slack.notes_blocks import build_notes_reply
from tests.fakes.chat_model import ScriptedChatModel
from tests.fakes.flags import SwitchedFlags
from tests.fakes.wiring import KeywordAnalyzer, WordIndex

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "bench" / "data" / "notes.jsonl"


def rows() -> list[dict[str, Any]]:
    with DATA.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# --------------------------------------------------------------------------- titles


@pytest.mark.parametrize(
    ("sentence", "title"),
    [
        (
            "The panel discussed how we should provide incident roles instead of admin rights "
            "on our AWS accounts.",
            "Provide incident roles instead of admin rights on AWS accounts",
        ),
        (
            "The panel discussed how Platform teams can improve developer experience.",
            "Improve developer experience",
        ),
        (
            "Let's move the standup to 9:45 because half the team is in Lisbon.",
            "Move the standup to 9:45",
        ),
        ("How about adding a FAQ page to the wiki?", "Add a FAQ page to the wiki"),
        (
            "Worth trying feature flags for the checkout rewrite.",
            "Try feature flags for the checkout rewrite",
        ),
        ("Dana to draft the on-call runbook by Friday", "Draft the on-call runbook"),
        (
            "Someone suggested that we rotate the staging API keys every month.",
            "Rotate the staging API keys every month",
        ),
    ],
)
def test_titles_read_like_tickets(sentence: str, title: str) -> None:
    assert ticket_title(sentence) == title


def test_titles_never_start_with_who_said_it() -> None:
    for row in rows():
        for idea in OfflineIdeaExtractor().extract(Post(id=row["id"], text=row["text"])):
            first = idea.title.split()[0].lower()
            assert first not in {"the", "someone", "we", "i", "panel", "jonas", "it"}, idea.title
            assert len(idea.title) <= 120 and not idea.title.endswith(".")


# --------------------------------------------------------------------------- offline detection


def test_labelled_notes_are_found_and_announcements_are_not() -> None:
    """Behaviour on bench/data/notes.jsonl (the figures are bench/eval_notes.py's to report)."""
    extractor = OfflineIdeaExtractor(KeywordAnalyzer())
    policy = NotesPolicy()
    found = right = labelled = 0
    for row in rows():
        ideas = extractor.extract(Post(id=row["id"], text=row["text"]), policy.max_ideas)
        notes = policy.long_enough(row["text"]) and len(ideas) >= policy.min_ideas
        gold = row["ideas"] if len(row["ideas"]) >= 2 else []
        assert notes == bool(gold), row["id"]  # notes read as notes, the rest as before
        assert len(ideas) <= policy.max_ideas
        if not notes:
            continue
        found += len(ideas)
        labelled += len(gold)
        for g in gold:
            want = set(g["evidence"].lower().split())
            right += any(
                len(want & set(i.excerpt.lower().split())) >= 0.6 * len(want) for i in ideas
            )
    assert right / found > 0.7 and right / labelled > 0.6


def test_news_and_questions_are_not_ideas() -> None:
    text = (
        "Standup notes\n- Priya: finished the CSV export, PR is up for review.\n"
        "- Tom: still on the Android crash.\n- Does anyone know who owns the billing service?\n"
        "- We shipped the new onboarding emails yesterday.\n"
    )
    assert OfflineIdeaExtractor().extract(Post(id="s", text=text)) == []


# --------------------------------------------------------------------------- filing ids


def test_idea_filing_ids_name_the_message_and_the_idea() -> None:
    assert idea_ts("1700000000.000100", 3) == "1700000000.000100~3"
    assert split_idea_ts("1700000000.000100~3") == ("1700000000.000100", 3)
    assert split_idea_ts("1700000000.000100") == ("1700000000.000100", None)
    assert (
        message_ts(idea_ts("1.2", 0)) == "1.2" and len(idea_ts("1" * 12 + "." + "1" * 9, 4)) <= 40
    )


# --------------------------------------------------------------------------- LLM extractor


class _Offline:
    name = "offline"

    def __init__(self) -> None:
        self.calls = 0

    def extract(self, post: Post, limit: int = 5) -> list[Idea]:
        self.calls += 1
        return [Idea(title="Offline idea one"), Idea(title="Offline idea two")]


def _llm(*responses: Any, **kw: Any) -> tuple[LlmIdeaExtractor, _Offline, ScriptedChatModel]:
    model = ScriptedChatModel(responses=list(responses), **kw)
    offline = _Offline()
    return (
        LlmIdeaExtractor(model, fallback=offline, timeout=kw.get("timeout_", 5.0)),
        offline,
        model,
    )


POST = Post(id="C1:1.0", text="Retro notes. We should add alerts. Let's cap meetings.")


def test_llm_ideas_are_validated_cleaned_and_capped() -> None:
    many = {
        "ideas": [
            {
                "title": f"<!channel> Idea number {n}",
                "summary": "s <@U1>",
                "kind": "Bug",
                "quote": "q",
            }
            for n in range(8)
        ]
    }
    extractor, offline, model = _llm(many)
    ideas = extractor.extract(POST, limit=5)
    assert len(ideas) == 5 and offline.calls == 0
    assert all("<!channel>" not in i.title and "<@U1>" not in i.summary for i in ideas)
    assert ideas[0].kind == "bug" and ideas[0].title == "Idea number 0"
    assert "<post>" in model.prompt_text()


def test_llm_text_answer_without_tools_is_read() -> None:
    answer = json.dumps({"ideas": [{"title": "Add alerts"}, {"title": "Cap meetings"}]})
    extractor, offline, _ = _llm(f"```json\n{answer}\n```", tools=False)
    assert [i.title for i in extractor.extract(POST)] == ["Add alerts", "Cap meetings"]
    assert offline.calls == 0


@pytest.mark.parametrize(
    "response",
    ["no json here", {"ideas": [{"title": ""}]}, {"ideas": "x"}, RuntimeError("provider down")],
)
def test_llm_failures_fall_back_to_offline(response: Any) -> None:
    extractor, offline, _ = _llm(response, tools=not isinstance(response, str))
    assert [i.title for i in extractor.extract(POST)] == ["Offline idea one", "Offline idea two"]
    assert offline.calls == 1


def test_llm_timeout_falls_back_to_offline() -> None:
    model = ScriptedChatModel(responses=[{"ideas": []}], delay=5.0)
    offline = _Offline()
    try:
        extractor = LlmIdeaExtractor(model, fallback=offline, timeout=0.05)
        assert len(extractor.extract(POST)) == 2 and offline.calls == 1
    finally:
        model.release()


# --------------------------------------------------------------------------- inside triage


class _Metrics:
    def __init__(self) -> None:
        self.counted: list[tuple[str, dict[str, str]]] = []

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        self.counted.append((name, labels))

    def observe(self, name: str, value: float, **labels: str) -> None: ...

    def set_gauge(self, name: str, value: float, **labels: str) -> None: ...

    def set_since(self, name: str, moment: Any, **labels: str) -> None: ...


def _triager(flags: SwitchedFlags | None = None, metrics: Any = None) -> Triager:
    index = WordIndex()
    finder = NotesFinder(
        OfflineIdeaExtractor(KeywordAnalyzer()),
        index,
        flags=flags or SwitchedFlags(),
        metrics=metrics or _Metrics(),
        min_score=0.1,
    )
    from bot.domain.models import Ticket

    index.upsert([Ticket(key="OPS-1", title="Uptime alert for staging", description="")])
    return Triager(KeywordAnalyzer(), index, notes=finder, flags=flags)


def _retro() -> str:
    return next(r["text"] for r in rows() if r["id"] == "retro-sprint-42")


def test_a_notes_post_carries_its_ideas_with_their_similar_tickets() -> None:
    metrics = _Metrics()
    triage = _triager(metrics=metrics).triage(Post(id="C1:1", text=_retro(), channel="C1"))
    assert 2 <= len(triage.ideas) <= 5 and triage.kind != "other"
    uptime = next(i for i in triage.ideas if "uptime" in i.title.lower())
    assert uptime.similar and uptime.similar[0].key == "OPS-1"
    assert (NOTES_POSTS, {"outcome": "notes"}) in metrics.counted
    assert Triage.from_stored(triage.model_dump_json()) == triage


def test_short_posts_and_flag_off_leave_the_verdict_alone() -> None:
    short = Post(id="C1:2", text="Let's add dark mode. We could ship a high-contrast theme.")
    assert _triager().triage(short).ideas == ()
    off = SwitchedFlags(off={("notes-ideas", "C1")})
    assert _triager(flags=off).triage(Post(id="C1:3", text=_retro(), channel="C1")).ideas == ()
    many = _triager().triage_many([Post(id="C2:1", text=_retro(), channel="C2"), short])
    assert many[0].ideas and not many[1].ideas


def test_a_failing_extractor_answers_as_one_post() -> None:
    class Broken:
        name = "broken"

        def extract(self, post: Post, limit: int = 5) -> list[Idea]:
            raise RuntimeError("boom")

    metrics = _Metrics()
    triager = Triager(KeywordAnalyzer(), None, notes=NotesFinder(Broken(), metrics=metrics))
    assert triager.triage(Post(id="x", text=_retro())).ideas == ()
    assert (NOTES_POSTS, {"outcome": "failed"}) in metrics.counted


# --------------------------------------------------------------------------- the reply


def test_notes_reply_respects_block_kit_limits() -> None:
    long = "x" * 5000
    ideas = tuple(
        Idea(
            title=f"Idea {n} <!channel> " + long,
            summary=long,
            similar=tuple(Match(key=f"K-{k}", title=long, score=0.9) for k in range(10)),
        )
        for n in range(5)
    )
    triage = Triage(kind="idea", confidence=0.9, title="t", summary="s", analyzer="a", ideas=ideas)
    text, blks = blocks.build_triage_reply(triage, "C1", "1.2", "ticket", votes=3)
    assert text and len(text) <= blocks.TEXT_MAX and "<!channel>" not in json.dumps(blks)
    assert len(blks) <= blocks.MAX_BLOCKS
    for b in blks:
        for t in [b.get("text", {}).get("text", "")] + [e["text"] for e in b.get("elements", [])]:
            assert len(t) <= blocks.SECTION_MAX
        if "accessory" in b:
            assert len(b["accessory"]["text"]["text"]) <= blocks.BUTTON_LABEL_MAX
            assert len(b["accessory"]["value"]) <= blocks.VALUE_MAX
    buttons = [b["accessory"] for b in blks if "accessory" in b]
    assert [json.loads(b["value"])["i"] for b in buttons] == ["0", "1", "2", "3", "4"]


def test_single_post_reply_is_unchanged_by_notes() -> None:
    triage = Triage(kind="idea", confidence=0.9, title="Dark mode", summary="s", analyzer="a")
    _, blks = build_notes_reply(
        triage.model_copy(update={"ideas": (Idea(title="A b"), Idea(title="C d"))}), "C", "1.2", "t"
    )
    assert len([b for b in blks if "accessory" in b]) == 2
    _, plain = blocks.build_triage_reply(triage, "C", "1.2", "ticket")
    assert plain[-1]["elements"][0]["action_id"] == blocks.ACTION_FILE


def test_analysis_is_unaffected_by_ideas_field() -> None:
    a = Analysis(kind="idea", confidence=0.5, title="t", summary="", analyzer="x")
    assert "ideas" not in a.model_dump()
    assert "ideas" not in Triage(**a.model_dump()).to_json("p")


def test_digest_names_filed_ideas_and_counts_their_post_handled() -> None:
    from datetime import UTC, date, datetime

    from bot.domain.digests import build_takeaway_digest
    from bot.domain.ports import Filing, StoredPost

    ideas = (Idea(title="Add an uptime alert"), Idea(title="Cap meetings on Thursday"))
    verdict = Triage(
        kind="idea", confidence=0.9, title="Retro", summary="", analyzer="a", ideas=ideas
    )
    at = datetime(2026, 4, 15, 12, tzinfo=UTC)
    post = StoredPost(
        channel="C1",
        ts="1776254400.000100",
        user="U1",
        text="retro notes",
        created=at,
        kind="idea",
        title="Retro",
        triage_json=verdict.model_dump_json(),
    )
    filed = Filing(
        channel="C1",
        ts=idea_ts(post.ts, 1),
        state="filed",
        owner="w",
        issue_key="IDEA-9",
        issue_url="https://jira.example/browse/IDEA-9",
        updated=at,
    )
    d = build_takeaway_digest(date(2026, 4, 15), "UTC", "C1", [post], [filed])
    assert [(f.key, f.title) for f in d.filed] == [("IDEA-9", "Cap meetings on Thursday")]
    assert d.waiting == () or all(i.ts != post.ts for i in d.waiting)


def test_bootstrap_with_an_llm_reads_notes_with_the_ideas_prompt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.bootstrap import bootstrap
    from bot.config import load_settings
    from tests.fakes.embedder import HashEmbedder

    monkeypatch.chdir(tmp_path)
    triage_answer = {"kind": "other", "confidence": 0.8, "title": "Retro notes", "summary": "s"}
    ideas_answer = {
        "ideas": [
            {
                "title": "Add an uptime alert for staging",
                "summary": "Alert on staging.",
                "quote": "q",
            },
            {"title": "Block Thursday afternoons", "summary": "No meetings.", "kind": "idea"},
        ]
    }
    llm = ScriptedChatModel(responses=[triage_answer, ideas_answer])
    settings = load_settings(bot_data_dir=tmp_path / "data", llm_model="openai:gpt-4o-mini")
    bot = bootstrap(settings, embedder=HashEmbedder(), llm=llm)
    verdict = bot.triager.triage(Post(id="C1:1", text=_retro(), channel="C1"))
    assert [i.title for i in verdict.ideas] == [
        "Add an uptime alert for staging",
        "Block Thursday afternoons",
    ]
    assert verdict.kind == "idea"  # the post proposes things, whatever it read as whole
    assert "ideas" in llm.prompt_text(1).lower() and "<post>" in llm.prompt_text(1)
