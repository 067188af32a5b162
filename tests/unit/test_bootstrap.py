"""The composition root wires the LLM analyzer, with the offline one as its fallback."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.bootstrap import bootstrap
from bot.config import load_settings
from bot.domain.models import Post, Ticket
from tests.fakes.chat_model import ScriptedChatModel
from tests.fakes.embedder import HashEmbedder

TICKETS = [
    Ticket(key="APP-7", title="Export to CSV times out", description="large workspaces"),
    Ticket(key="APP-8", title="Dark mode for the dashboard", description="a dark theme"),
]


def _services(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, llm: ScriptedChatModel):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    settings = load_settings(bot_data_dir=tmp_path / "data", llm_model="openai:gpt-4o-mini")
    services = bootstrap(settings, embedder=HashEmbedder(), llm=llm)
    services.catalogue.add(TICKETS)
    return services


def test_llm_verdict_with_its_duplicate_judgement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    llm = ScriptedChatModel(
        responses=[
            {
                "kind": "bug",
                "confidence": 0.9,
                "title": "CSV export times out for big workspaces",
                "summary": "The CSV export fails with a timeout on large workspaces.",
                "labels": ["export"],
                "duplicate_of": "APP-7",
            }
        ]
    )
    services = _services(tmp_path, monkeypatch, llm)
    verdict = services.triager.triage(Post(id="1", text="export to CSV times out again"))
    assert verdict.analyzer.startswith("llm:") and verdict.kind == "bug"
    assert verdict.similar[0].key == "APP-7" and verdict.likely_duplicate
    assert len(llm.calls) == 1
    # the candidates shown to the model are the similar tickets found
    assert "APP-7" in "".join(str(m.content) for m in llm.calls[0])


def test_llm_failure_falls_back_to_the_offline_analyzer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    llm = ScriptedChatModel(responses=[RuntimeError("provider down")])
    services = _services(tmp_path, monkeypatch, llm)
    verdict = services.triager.triage(Post(id="1", text="thanks all, have a nice weekend"))
    assert verdict.analyzer == "offline (llm fallback: error)"
    assert verdict.kind in {"idea", "bug", "question", "other"}


def test_channel_names_reach_the_takeaway_digest_resolved(tmp_path: Path) -> None:
    """IDEA_CHANNELS=#ideas: the start-up step resolves the name once, and the takeaway digest
    (not only the listeners) reads the posts of the resolved channel."""
    from datetime import UTC, date, datetime

    from bot.domain.ports import StoredPost
    from tests.fakes.chat import RecordingChat

    settings = load_settings(
        bot_data_dir=tmp_path / "data",
        idea_channels="#ideas",
        digest_timezone="UTC",
        _env_file=None,
    )
    chat = RecordingChat(names={"ideas": "CIDEAS01"})
    bot = bootstrap(settings, embedder=HashEmbedder(), llm=None, tracker=None, chat=chat)
    for channel, ts in (("CIDEAS01", "1776240000.000100"), ("COTHER01", "1776240000.000200")):
        bot.adapters.store.save_post(
            StoredPost(
                channel=channel,
                ts=ts,
                user="UALICE",
                text="Add dark mode",
                created=datetime(2026, 4, 15, 10, tzinfo=UTC),
                kind="idea",
                title="Dark mode",
            )
        )
    assert bot.digests.build_takeaways(date(2026, 4, 15), "CIDEAS01").total == 0
    bot.startup()
    assert bot.channels.ids == {"CIDEAS01"}
    digest = bot.digests.build_takeaways(date(2026, 4, 15), "CIDEAS01")
    assert digest.total == 1


def test_serve_warm_up_trains_the_kind_model_off_the_request_path(tmp_path: Path) -> None:
    from bot.adapters.analyzer_offline import OfflineAnalyzer

    settings = load_settings(bot_data_dir=tmp_path / "data", _env_file=None)
    bot = bootstrap(settings, embedder=HashEmbedder(), llm=None, tracker=None, chat=None)
    offline = bot.triager.analyzer
    assert isinstance(offline, OfflineAnalyzer)
    assert offline.train_in is None  # batch commands train inline, for their first post
    bot.startup()
    bot.warm_up()  # what serve does after start-up
    assert offline.train_in is not None  # serving: a background thread trains from now on
