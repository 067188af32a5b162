"""Finding the ideas in a notes post without an LLM: sentence-level proposal detection.

Each sentence of the post (each bullet, each line) is scored by what makes it a proposal:
a modal aimed at the team ("we could", "teams should", "it would be good to", "worth trying",
"let's", "how about", "I suggest"), an instruction in a list or under an "Action items" heading
("Add alerting on queue depth", "Dana to draft the runbook"), or, more weakly, a bare "should"
or "consider". Headings steer it: what is listed under "Next steps" counts more, what is under
"What went well" or "Attendees" less. The kind classifier (the offline analyzer) then reads the
candidates: it names each idea's kind (idea or bug) and vetoes weak candidates it reads as chit-
chat. Titles are rewritten to read like ticket titles (``idea_titles.ticket_title``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from bot.adapters.extract import has_words, sentences, slack_to_text, strip_lead_in
from bot.adapters.idea_titles import ACTION_VERBS, gerund_to_base, ticket_title
from bot.domain.models import Analysis, Idea, Post, clean_title
from bot.domain.notes import MAX_IDEAS
from bot.domain.ports import Analyzer, BatchAnalyzer

logger = logging.getLogger(__name__)

MAX_CHARS = 8000  # notes longer than this are read on their first part
MIN_SCORE = 2.0  # what a sentence needs to be offered as an idea
SUMMARY_CHARS = 280

_BULLET = re.compile(r"^\s*(?:[-*•◦▪‣–]|\d{1,2}[.)]|\[[ xX]?\]|☐|☑|✅)\s+")
_HEADING_MD = re.compile(r"^\s*(?:#{1,6}\s+|\*[^*]{2,60}\*\s*:?\s*$)")
_HEADING = re.compile(r"^\s*([^.!?:]{2,60}):\s*(.*)$")
_STRONG = [
    re.compile(p, re.I)
    for p in (
        r"\b(?:we|you|they|teams?|everyone|everybody|people|folks|the team|squads?|devs|"
        r"developers|engineers|i|customers|users|admins|clients)\s+"
        r"(?:really |probably |definitely |maybe |perhaps |also |"
        r"just |still |all )*(?:should|could|might|must|need to|ought to|have to|may want to|"
        r"want to|plan to|agreed to|decided to|'d better)\b",
        r"\b(?:it'?d|(?:it )?(?:would|might|could))(?: really| also| definitely)? be (?:good|"
        r"great|nice|useful|helpful|worth|better|wise|smart|valuable|cool|sensible)\b",
        r"\b(?:worth (?:trying|exploring|considering|looking into|a try|a look|investigating|"
        r"piloting|testing)|it'?s (?:probably )?worth)\b",
        r"\blet'?s\b",
        r"\b(?:i|we)'?d (?:love|like) (?:for us |us )?to\b",
        r"(?:^|[.;:,]\s*)(?:how|what) about\b",
        r"\bwhat if we\b",
        r"\bwhy (?:don'?t|not) we\b",
        r"\b(?:i|we) (?:would )?(?:propose|suggest|recommend)\b",
        r"\b(?:suggested|proposed|recommended)(?: that)? (?:we|teams?|you|everyone)\b",
        r"\b(?:could|should|can) we\b",
        # "Config changes should go through review" (not "slides should be online next week")
        r"^[\w\s()'/-]{3,60}? (?:should|must|needs? to) (?!be\b|have been\b)\w+",
        r"\b(?:maybe|perhaps) we\b",
        r"\b(?:one|another|an|the) (?:idea|suggestion|proposal)\b",
        r"\b(?:action item|next step|todo|to-do|follow[- ]up)s?\b\s*[:\-]",
    )
]
_WEAK = [
    re.compile(p, re.I)
    for p in (
        r"\bshould\b",
        r"\bconsider(?:ing)?\b",
        r"\bneeds? to\b",
        r"\bwould (?:help|make|save|reduce|improve|speed)\b",
        r"\b(?:recommend(?:ed|s)?|suggest(?:ed|s|ion)?|propos(?:ed|al))\b",
        r"\b(?:we'?re|we are) (?:exploring|considering|thinking about)\b",
        r"\b(?:asked|asking|ask) for\b",
    )
]
# Reports of what happened: a sentence with only these is news, not a proposal.
_REPORT = re.compile(
    r"\b(?:we (?:shipped|released|launched|fixed|finished|closed|merged|hired|moved|migrated|"
    r"had|did|were|was|discussed|talked)|went well|thanks to|kudos|shout-?out|congrats)\b",
    re.I,
)
_POINTS_BACK = re.compile(
    r"\b(?:try|do|adopt|copy|use|steal|consider|pilot) (?:that|this|it|them|something similar)\b",
    re.I,
)
_QUESTION_ONLY = re.compile(
    r"^(?:does|do|did|is|are|was|were|who|when|where|why|has|have|anyone|any)\b", re.I
)
# "Dana to draft the runbook", "Dana will draft ...", "to draft ..." (its mention stripped).
_ASSIGNED = re.compile(r"^(?:@?[A-Z][\w.-]*(?: [A-Z][\w.-]*)? (?:to|will)|[Tt]o) (\w+)")
_ACTION_SECTIONS = re.compile(
    r"action|feedback|asks?\b|request|next step|to ?do|follow[- ]?up|proposal|idea|suggestion|"
    r"takeaway|improve|"
    r"try next|experiment|recommend|decision|what we.?ll (?:try|change|do)|do differently|"
    r"change|wish|request|opportunit",
    re.I,
)
_QUIET_SECTIONS = re.compile(
    r"attendee|present|agenda|went well|wins?\b|kudos|shout|highlight|update|status|"
    r"yesterday|today|done|shipped|release notes|announcement|reminder|schedule|logistics",
    re.I,
)


@dataclass
class _Candidate:
    position: int
    sentence: str
    score: float
    context: str = ""
    previous: str = ""  # the sentence before, when this one only points at it ("try that")


# Lists whose every item is a proposal, even a bare noun phrase ("Dark mode for reports").
_LIST_SECTIONS = re.compile(
    r"\bideas?\b|next steps?|action items?|\basks?\b|requests?|to ?dos?\b|proposals?|"
    r"suggestions?|what we.?ll (?:try|change|do)|try next|wish ?list",
    re.I,
)


def _section_weight(heading: str) -> float:
    if _LIST_SECTIONS.search(heading):
        return 1.5
    if _ACTION_SECTIONS.search(heading):
        return 1.0
    if _QUIET_SECTIONS.search(heading):
        return -1.0
    return 0.0


_SOFTENER = re.compile(r"^(?:maybe|perhaps|also|and|then|please|pls|possibly)[,\s]+", re.I)


def _imperative(sentence: str) -> bool:
    first = _SOFTENER.sub("", sentence).split(" ", 1)[0].lower().strip(",:;")
    return first in ACTION_VERBS


def _gerund(sentence: str) -> bool:
    # "Pairing new hires with a buddy would help" proposes; "Pairing worked well" reports: weak.
    first = sentence.split(" ", 1)[0].lower().strip(",:;")
    return first.endswith("ing") and gerund_to_base(first) in ACTION_VERBS


def _assigned(sentence: str) -> bool:
    m = _ASSIGNED.match(sentence)
    return m is not None and m.group(1).lower() in ACTION_VERBS


def score_sentence(sentence: str, bullet: bool, section: float) -> float:
    """How much *sentence* reads as a proposal: 2 or more is offered as an idea."""
    s = sentence.strip()
    if len(s.split()) < 3 or not has_words(s):
        return 0.0
    score = 0.0
    strong = any(p.search(s) for p in _STRONG) or _assigned(s)
    # Anything listed under "Ideas", "Next steps", "Asks" proposes, even as a bare noun phrase.
    listed = bullet and section >= 1.5 and len(s.split()) >= 3
    if strong or listed or (_imperative(s) and (bullet or section > 0)):
        score = 2.0
    elif _imperative(s) or _gerund(s) or any(p.search(s) for p in _WEAK):
        score = 1.0
    if score == 0.0:
        return 0.0
    if _REPORT.search(s) and score < 2.0:
        score -= 1.0
    if s.endswith("?") and _QUESTION_ONLY.match(s) and not any(p.search(s) for p in _STRONG):
        score -= 1.0
    return score + (section if score > 0 else 0.0) * 0.5 + (0.25 if bullet else 0.0)


def _lines(text: str) -> list[tuple[str, bool, float]]:
    """(cleaned line, was a bullet, section weight) for each line with words in it."""
    out: list[tuple[str, bool, float]] = []
    section = 0.0
    for raw in text[:MAX_CHARS].split("\n"):
        if not raw.strip():
            continue
        bullet = bool(_BULLET.match(raw))
        if _HEADING_MD.match(raw) and not bullet:
            section = _section_weight(raw)
            continue
        body = raw
        bare = slack_to_text(raw)
        if (
            not bullet
            and 0 < len(bare.split()) <= 4
            and not re.search(r"[.!?,]$", bare)
            and score_sentence(bare, False, 0.0) < 1.0  # "We should add tags" is no heading
        ):
            section = _section_weight(bare)  # a short line of its own: ":bulb: Ideas"
            continue
        head = _HEADING.match(_BULLET.sub("", raw))
        if head and len(head.group(1).split()) <= 6:
            weight = _section_weight(head.group(1))
            if not head.group(2).strip():
                if not bullet:
                    section = weight  # a heading line: "Action items:"
                continue
            body = head.group(2)  # "Next steps: Dana to draft the runbook"
            line_section = weight or section
        else:
            line_section = section
        cleaned = slack_to_text(_BULLET.sub("", body))
        if cleaned and has_words(cleaned):
            out.append((cleaned, bullet, line_section))
    return out


def _summary(sentence: str, context: str) -> str:
    s = strip_lead_in(sentence) or sentence
    s = s[:1].upper() + s[1:]
    if s and s[-1] not in ".?!…":
        s += "."
    if context and len(s) + len(context) + 1 <= SUMMARY_CHARS:
        s = f"{s} {context}"
    return clean_title(s, SUMMARY_CHARS)


def _overlap(a: str, b: str) -> float:
    wa, wb = set(a.lower().split()), set(b.lower().split())
    return len(wa & wb) / max(1, len(wa | wb))


class OfflineIdeaExtractor:
    """An ``IdeaExtractor`` with no LLM; *classifier* (the offline analyzer) names each idea's
    kind and vetoes weak candidates it reads as chit-chat (optional)."""

    name = "offline"

    def __init__(self, classifier: Analyzer | None = None) -> None:
        self.classifier = classifier

    def candidates(self, text: str) -> list[_Candidate]:
        """Every sentence that reads at all like a proposal (score above 0), in order."""
        found: list[_Candidate] = []
        position = 0
        for line, bullet, section in _lines(text):
            parts = sentences(line)
            for i, sentence in enumerate(parts):
                position += 1
                score = score_sentence(sentence, bullet, section)
                if score <= 0:
                    continue
                following = parts[i + 1] if i + 1 < len(parts) else ""
                context = following if score_sentence(following, bullet, section) < 1 else ""
                previous = parts[i - 1] if i > 0 and _POINTS_BACK.search(sentence) else ""
                found.append(_Candidate(position, sentence, score, context, previous))
        return found

    def _kinds(self, post: Post, found: Sequence[_Candidate]) -> list[Analysis | None]:
        if self.classifier is None or not found:
            return [None] * len(found)
        posts = [
            Post(id=f"{post.id}#{c.position}", text=c.sentence, channel=post.channel) for c in found
        ]
        try:
            if isinstance(self.classifier, BatchAnalyzer):
                return list(self.classifier.analyze_many(posts))
            return [self.classifier.analyze(p) for p in posts]
        except Exception:  # the cues alone still find the ideas
            logger.warning("idea extraction: the kind classifier failed", exc_info=True)
            return [None] * len(found)

    def extract(self, post: Post, limit: int = MAX_IDEAS) -> list[Idea]:
        """The proposals in *post*, best first by score, at most *limit*, in reading order."""
        found = [c for c in self.candidates(post.text) if c.score >= MIN_SCORE - 1.0]
        kinds = self._kinds(post, found)
        scored: list[tuple[_Candidate, str]] = []
        for c, a in zip(found, kinds, strict=True):
            kind = "idea"
            if a is not None:
                if a.kind == "other" and a.confidence >= 0.6:
                    c.score -= 1.0
                elif a.kind in ("idea", "bug"):
                    c.score += 0.5
                kind = "bug" if a.kind == "bug" else "idea"
            if c.score >= MIN_SCORE:
                scored.append((c, kind))
        picked: list[tuple[_Candidate, str, str]] = []
        for c, kind in sorted(scored, key=lambda ck: (-ck[0].score, ck[0].position)):
            if c.previous:
                # "I'd love for us to try that": the idea is what the sentence before describes.
                c.sentence, c.context = c.previous, c.sentence
            title = ticket_title(c.sentence)
            if not has_words(title) or len(title.split()) < 2:
                continue
            if any(_overlap(title, t) >= 0.6 for _, _, t in picked):
                continue
            picked.append((c, kind, title))
            if len(picked) >= limit:
                break
        picked.sort(key=lambda p: p[0].position)
        return [
            Idea(
                kind="bug" if kind == "bug" else "idea",
                title=title,
                summary=_summary(c.sentence, c.context),
                excerpt=f"{c.sentence} {c.context}".strip(),
            )
            for c, kind, title in picked
        ]
