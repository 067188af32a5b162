"""Property tests: whatever shape a Slack payload takes, no listener raises and no answer is 5xx.

Payloads are Slack's documented shapes (the corpus in tests/fixtures/slack/) with parts removed
or replaced by arbitrary JSON, plus arbitrary JSON outright, sent through the real listeners
(``register_listeners``) on the real use cases (in-memory fakes); see ``tests/slack/conftest``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from slack_bolt import BoltRequest

from bot.slack.listeners.actions import parse_button
from bot.slack.listeners.messages import parse_message
from bot.slack.listeners.payload import slack_id, slack_ts
from bot.slack.listeners.reactions import parse_reaction
from bot.slack.listeners.shortcuts import parse_shortcut
from tests.fakes.slack_signing import interactive_body
from tests.slack.conftest import ListenerRig

CORPUS = sorted((Path(__file__).parent.parent / "fixtures" / "slack").glob("*.json"))
SEEDS = [json.loads(p.read_text(encoding="utf-8")) for p in CORPUS]

# Values that look like what Slack sends, and values that do not.
_slackish = st.sampled_from(
    [
        "CIDEAS01",
        "UALICE",
        "UBOT",
        "BBOT",
        "T1",
        "1700000100.000100",
        "1700000105.000100",
        "message",
        "message_changed",
        "message_deleted",
        "thread_broadcast",
        "tombstone",
        "ticket",
        "ideabot_file",
        "ideabot_comment",
        "ideabot_file_message",
        "/idea",
        "help",
        "",
        " ",
        "nan",
        "inf",
        "-1",
        "1e400",
        "<!channel>",
        "x" * 300,
        '{"c":"CIDEAS01","ts":"1700000100.000100"}',
        '{"c":"CIDEAS01"}',
        "[1]",
    ]
)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | _slackish
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=8) | _slackish, inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def _mutate(value: Any, path: tuple[Any, ...], new: Any, delete: bool) -> Any:
    """A copy of *value* with the part at *path* replaced by *new* (or removed)."""
    if not path:
        return new
    copy: Any = dict(value) if isinstance(value, dict) else list(value)
    head, rest = path[0], path[1:]
    if rest:
        copy[head] = _mutate(copy[head], rest, new, delete)
    elif delete and isinstance(copy, dict):
        del copy[head]
    else:
        copy[head] = new
    return copy


@st.composite
def payloads(draw: st.DrawFn) -> tuple[str, Any]:
    """(kind, body): a corpus request with up to four parts changed, or an arbitrary JSON
    object. (A body that is JSON but no object fails in Bolt's request parsing, before any
    listener or the signature check: see test_slack_corpus.py.)"""
    if draw(st.integers(0, 9)) == 0:
        kind = draw(st.sampled_from(["raw", "interactive", "command"]))
        return kind, draw(st.dictionaries(st.text(max_size=8) | _slackish, _json, max_size=5))
    seed = draw(st.sampled_from(SEEDS))
    body: Any = seed["body"]
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(body)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        body = _mutate(body, path, draw(_json), delete=draw(st.booleans()))
    return seed["kind"], body


def _request(kind: str, body: Any) -> BoltRequest:
    if kind == "raw":
        return ListenerRig.request(json.dumps(body), "application/json")
    if kind == "interactive":
        form = interactive_body(body)
    else:
        fields = body if isinstance(body, dict) else {"text": body}
        form = urlencode(
            {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
        )
    return ListenerRig.request(form, "application/x-www-form-urlencoded")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads())
def test_no_payload_makes_a_listener_raise_or_the_answer_a_5xx(request: tuple[str, Any]) -> None:
    kind, body = request
    try:
        req = _request(kind, body)
    except Exception:
        # Bolt parses the payload into its context when the HTTP adapter builds the request,
        # before the signature check and any middleware: an envelope whose "authorizations"
        # or "channel" has another type fails there. That is the HTTP server's to answer
        # (answered 400, see tests/e2e/test_slack_corpus.py), not a listener's.
        reject()
    rig = ListenerRig()
    rig.event(SEEDS_POST, "EvSeed")  # a stored post, so mutated events reach deep into use cases
    status, _ = rig.dispatch(req)
    assert status < 500
    assert rig.errors == []


SEEDS_POST = {
    "type": "message",
    "channel": "CIDEAS01",
    "user": "UALICE",
    "text": "Add dark mode",
    "ts": "1700000100.000100",
    "channel_type": "channel",
}


@settings(max_examples=500, deadline=None)
@given(body=_json, event=_json, bot=st.none() | _slackish)
def test_parsers_never_raise_and_only_pass_on_slack_shaped_ids(
    body: Any, event: Any, bot: str | None
) -> None:
    for parsed in (parse_message(body, event, bot), parse_reaction(body, event, bot)):
        if parsed is None:
            continue
        ref = getattr(parsed, "ref", parsed)
        assert slack_id(ref.channel) and slack_ts(ref.ts)
    shortcut = parse_shortcut(event)
    if shortcut is not None:
        assert slack_id(shortcut.requester) and slack_ts(shortcut.ref.ts)
    action = event if isinstance(event, dict) else {}
    parse_button(body if isinstance(body, dict) else {}, action)
