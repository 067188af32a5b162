"""The domain's data: what a post is, what triage says about it, what a ticket is.

Pure Python and pydantic only; nothing here knows Slack, Jira, Pinecone or LangChain.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)

from bot.domain.issue_fields import FieldValue

Kind = Literal["idea", "bug", "question", "other"]
KINDS: tuple[Kind, ...] = ("idea", "bug", "question", "other")

TITLE_MAX = 120
SUMMARY_MAX = 600
EXCERPT_MAX = 2000  # the passage of a notes post one idea came from
LABEL_MAX = 5
# Labels the bot sets itself ("ideabot", the per-message markers) start with this. No analyzer or
# model output may produce one, or a post could plant another message's marker on its own issue.
RESERVED_LABEL_PREFIX = "ideabot"

# Slack mrkdwn constructs we never want to carry into a ticket title: <@U123>, <#C1|name>, <!here>,
# <http://x|label>, and the *_~` emphasis characters.
_SLACK_LINK = re.compile(r"<([^<>|]*)\|([^<>]*)>")
_SLACK_ANGLE = re.compile(r"<[^<>]*>")
_EMPHASIS = re.compile(r"[*_~`]+")
_SPACES = re.compile(r"\s+")
_LABEL_OK = re.compile(r"[^a-z0-9_-]+")


def slack_unescape(text: str) -> str:
    """Undo the three entities Slack escapes in message text (&amp; last: &amp;lt; stays &lt;)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def plain_text(text: str) -> str:
    """Strip Slack markup from *text* and fold whitespace to single spaces."""
    text = _SLACK_LINK.sub(lambda m: m.group(2), text)
    text = _SLACK_ANGLE.sub(" ", text)
    text = _EMPHASIS.sub("", text)
    # Entities are decoded after the markup is gone, so an escaped "&lt;!here&gt;" that a person
    # typed stays text (renderers escape it again) instead of turning into markup.
    return _SPACES.sub(" ", slack_unescape(text)).strip()


def clean_title(text: str, limit: int = TITLE_MAX) -> str:
    """One line, no Slack markup, at most *limit* characters (cut at a word, with an ellipsis)."""
    line = plain_text(text)
    if len(line) <= limit:
        return line
    cut = line[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(" ,.;:-") + "…"


def clean_label(label: str) -> str:
    """Jira labels may not contain spaces; keep them lower-case and short."""
    return _LABEL_OK.sub("-", label.strip().lower()).strip("-")[:40]


def clean_labels(labels: tuple[str, ...]) -> tuple[str, ...]:
    """Cleaned, de-duplicated labels, none in the bot's own namespace, at most LABEL_MAX."""
    out: list[str] = []
    for label in labels:
        c = clean_label(label)
        if c and c not in out and not c.startswith(RESERVED_LABEL_PREFIX):
            out.append(c)
    return tuple(out[:LABEL_MAX])


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Post(Frozen):
    """A message somebody posted, in Slack or in a batch file."""

    id: str
    text: str
    channel: str = ""
    user: str = ""
    ts: str = ""
    thread_ts: str | None = None
    permalink: str | None = None
    user_name: str | None = None
    user_email: str | None = None


class Match(Frozen):
    """An existing ticket that resembles a post; *score* is in [0, 1], higher is closer."""

    key: str
    title: str = ""
    score: float
    url: str | None = None
    type: str | None = None
    status: str | None = None
    # What the fused score was made of (cosines "body", "title", "head_body", "head_title" and
    # "lexical", "lexical_abs"); the likely-duplicate rule reads them. Omitted from JSON when None.
    signals: dict[str, float] | None = None
    # The ticket's labels and components (the team's vocabulary; triage labels posts with them).
    labels: tuple[str, ...] = ()

    @model_serializer(mode="wrap")
    def _drop_empty_signals(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("signals") is None:
            data.pop("signals", None)
        if not data.get("labels"):
            data.pop("labels", None)
        return data


class _TicketText(Frozen):
    """The title, summary and labels of an analysis or of one idea, cleaned the same way (the
    fields are declared by each subclass, in its own order)."""

    @field_validator("title", check_fields=False)
    @classmethod
    def _title(cls, v: str) -> str:
        v = clean_title(v)
        if not v:
            raise ValueError("empty title")
        return v

    @field_validator("summary", check_fields=False)
    @classmethod
    def _summary(cls, v: str) -> str:
        return plain_text(v)[:SUMMARY_MAX]

    @field_validator("labels", check_fields=False)
    @classmethod
    def _labels(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return clean_labels(v)


class Analysis(_TicketText):
    """What an analyzer says of one post, before duplicates are looked up."""

    kind: Kind
    confidence: float = Field(ge=0.0, le=1.0)
    title: str
    summary: str
    labels: tuple[str, ...] = ()
    analyzer: str


class Idea(_TicketText):
    """One actionable idea found in a notes post (meeting notes, a retro, a write-up).

    *excerpt* is the passage of the post it came from (what the ticket quotes); *similar* are
    the similar tickets found for the idea itself. Filed on its own (``bot.domain.notes``).
    """

    kind: Kind = "idea"
    title: str
    summary: str = ""
    excerpt: str = ""
    labels: tuple[str, ...] = ()
    similar: tuple[Match, ...] = ()

    @field_validator("excerpt")
    @classmethod
    def _excerpt(cls, v: str) -> str:
        return v.strip()[:EXCERPT_MAX]


class Triage(Analysis):
    """The full verdict on one post: analysis plus the similar tickets found.

    ``ideas`` is set for a notes post holding several ideas: each is offered and filed on its
    own instead of the post as a whole (empty for every other post).

    ``similar`` are the similar tickets, best first (stored verdicts written before the rename
    say ``duplicates``; both are read). ``likely_duplicate`` is only set when the evidence goes
    beyond one cosine score (see ``domain.duplicates.is_likely_duplicate``).
    """

    similar: tuple[Match, ...] = Field(
        default=(), validation_alias=AliasChoices("similar", "duplicates")
    )
    likely_duplicate: bool = False
    ideas: tuple[Idea, ...] = ()

    @staticmethod
    def from_stored(raw: str | None) -> Triage | None:
        """A verdict stored as JSON, or None when there is none or it cannot be read."""
        if not raw:
            return None
        try:
            return Triage.model_validate_json(raw)
        except ValueError:
            return None

    def to_json(self, post_id: str) -> dict[str, Any]:
        """The batch CLI's output line (a stable contract)."""
        return {
            "id": post_id,
            "kind": self.kind,
            "confidence": round(self.confidence, 4),
            "title": self.title,
            "summary": self.summary,
            "labels": list(self.labels),
            "duplicates": [
                {"key": m.key, "title": m.title, "score": round(m.score, 4), "url": m.url}
                for m in self.similar
            ],
            "likely_duplicate": self.likely_duplicate,
            "analyzer": self.analyzer,
            # Only for notes posts with several ideas, so other lines keep their shape.
            **(
                {
                    "ideas": [
                        {
                            "kind": i.kind,
                            "title": i.title,
                            "summary": i.summary,
                            "duplicates": [
                                {"key": m.key, "title": m.title, "score": round(m.score, 4)}
                                for m in i.similar
                            ],
                        }
                        for i in self.ideas
                    ]
                }
                if self.ideas
                else {}
            ),
        }


class Ticket(Frozen):
    """An issue in the tracker (Jira), as the index and the analyzer see it.

    *labels* and *components* are the team's own, as the tracker has them (triage learns from
    them); they are not part of the text a ticket is matched by.
    """

    key: str
    title: str
    description: str = ""
    type: str | None = None
    url: str | None = None
    status: str | None = None
    updated: datetime | None = None
    labels: tuple[str, ...] = ()
    components: tuple[str, ...] = ()
    # The Jira project it belongs to; unset on rows written before several projects were
    # indexed, where the key's prefix says it (``project_key``).
    project: str | None = None

    @property
    def project_key(self) -> str:
        """The ticket's project: as recorded, else the key's prefix (``MOB-12`` -> ``MOB``)."""
        return self.project or self.key.rsplit("-", 1)[0].upper()

    def text(self) -> str:
        """The text a ticket is embedded and matched by: title and description."""
        return f"{self.title}\n{self.description}".strip()

    def content_hash(self) -> str:
        """Identifies the embedded text: equal hashes mean the vectors need not be recomputed."""
        return hashlib.sha256(f"{self.title}\x00{self.description}".encode()).hexdigest()[:32]


class LabelledText(Frozen):
    """A text with the kind it is known to be, for training the offline classifier."""

    text: str
    kind: Kind


class ThreadReply(Frozen):
    """One reply under a post, as filing carries it: who (a display name) and what (plain)."""

    ts: str
    author: str
    text: str


class ThreadContext(Frozen):
    """The replies under a post, in order and bounded (``bot.domain.threads``); *more* replies
    were left out."""

    replies: tuple[ThreadReply, ...] = ()
    more: int = 0


class IssueText(Frozen):
    """The parts of an issue description or comment, as plain text.

    The tracker adapter renders them in its own markup (Jira wiki markup, ADF) and escapes what
    came from a person or a model there; the domain never writes markup.
    """

    summary: str = ""
    original: str = ""  # the post as the person wrote it (Slack entities already decoded)
    permalink: str | None = None
    author: str | None = None
    trace_id: str | None = None  # the flow that filed it, for finding its logs
    # One-line notes below the author ("Assignee asked for: …" when they have no account).
    notes: tuple[str, ...] = ()
    images: tuple[str, ...] = ()  # attachment names shown in the description (screenshots)
    thread: ThreadContext | None = None  # the replies under the post when it was filed


class NewIssue(Frozen):
    """What we ask the tracker to create."""

    project: str
    summary: str
    body: IssueText
    issue_type: str
    labels: tuple[str, ...] = ()
    marker: str | None = None  # the exactly-once marker the tracker can find the issue by again
    reporter_email: str | None = None
    link_url: str | None = None
    link_title: str | None = None
    # Fields of the create screen (custom fields, priority, components), by field id.
    fields: dict[str, FieldValue] = Field(default_factory=dict)
    # Assigned when the e-mail maps to an account; else the description names *assignee_name*.
    assignee_email: str | None = None
    assignee_name: str | None = None
    components: tuple[str, ...] = ()


class NewComment(Frozen):
    """What we ask the tracker to add to an existing issue."""

    key: str
    body: IssueText
    link_url: str | None = None
    marker: str | None = None  # the exactly-once marker the tracker can find the comment by


class CreatedIssue(Frozen):
    key: str
    url: str


class MessageRef(Frozen):
    """One Slack message: channel id and ts (its id within the channel)."""

    channel: str
    ts: str

    @property
    def key(self) -> str:
        return f"{self.channel}:{self.ts}"


class ChatFile(Frozen):
    """A file shared in the chat (a screenshot in a post or its thread), as the chat lists it.

    *url* is where the bot downloads it with its own token; *channels* are where the chat says
    it was shared (empty when it does not say).
    """

    id: str
    name: str
    mimetype: str = "application/octet-stream"
    size: int = 0
    url: str = ""
    channels: tuple[str, ...] = ()

    @property
    def attachment_name(self) -> str:
        """The name it is attached to an issue under: the file's id in it, so a retried
        filing recognises its own upload and two "image.png" do not collide."""
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", self.name).strip("._") or "file"
        stem, dot, ext = safe[-100:].rpartition(".")
        ident = re.sub(r"[^A-Za-z0-9]", "", self.id)[:20]
        return f"{stem}-{ident}.{ext}" if dot and stem else f"{safe[-100:]}-{ident}"

    @property
    def is_image(self) -> bool:
        return self.mimetype.lower().startswith("image/")


class ChatMessage(Frozen):
    """A message read back from the chat (text as the chat stores it)."""

    ts: str
    text: str = ""
    user: str | None = None
    thread_ts: str | None = None
    by_bot: bool = False  # posted by a bot (ours or another): not part of a discussion


class Person(Frozen):
    """Who a chat user is, as far as the chat will say."""

    name: str | None = None
    email: str | None = None
    # Not a member of this workspace (a Slack Connect guest from another organisation, or a
    # guest account); None when the chat would not say (treated as external where it matters).
    external: bool | None = None
