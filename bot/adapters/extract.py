"""Text helpers for the offline analyzer: cleaning Slack text, picking a title and a summary by
extraction, keyword labels, and hashed word n-gram features.

Pure functions over strings (numpy only for the feature rows); nothing here calls a model.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
import zlib
from collections import Counter
from collections.abc import Callable, Sequence

from bot.adapters.titles import tidy_title
from bot.domain.models import SUMMARY_MAX, TITLE_MAX, clean_title, plain_text

# Everything after this many characters is ignored: a 20,000-character paste must not cost more
# than a normal post, and the first few paragraphs carry the point of a message anyway.
MAX_WORK_CHARS = 4000

_SLACK_USER = re.compile(r"<@[A-Z0-9]+(?:\|[^<>]*)?>")
_SLACK_SPECIAL = re.compile(r"<![^<>]*>")
_SLACK_CHANNEL = re.compile(r"<#[A-Z0-9]+\|([^<>]*)>")
_SLACK_BARE_LINK = re.compile(r"<((?:https?|mailto):[^<>|]*)>")
_EMOJI = re.compile(r":[a-z0-9_+\-']{1,40}:")
_AT_NAME = re.compile(r"(?<![\w.])@[\w.\-]+")
_FENCE = re.compile(r"```.*?(?:```|$)", re.S)
_URL = re.compile(r"https?://\S+")
_MD_HEADING = re.compile(r"(?m)^\s{0,3}#{1,6}\s*")
_MD_QUOTE = re.compile(r"(?m)^\s*>+\s?")
_BULLET = re.compile(r"(?m)^\s*(?:[-*•]|\d+[.)])\s+")
# Pictographs and symbols Slack clients paste as raw characters.
_PICTO = re.compile("[\u2600-\u27bf\U0001f000-\U0001faff\ufe0f\u200d]")
_SENT_SPLIT = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n+")
_WORD = re.compile(r"[a-z0-9][a-z0-9_'\-.]*[a-z0-9]|[a-z0-9]")
_HAS_LETTER = re.compile(r"[A-Za-z]")

_GREETING = (
    r"(?:hey|hi|hello|hiya|yo|howdy|morning|good (?:morning|afternoon|evening)|greetings|ok(?:ay)?"
    r"|so|um+|hmm+|quick (?:one|thought|question|idea|note)|random thought|heads up|fyi|psa"
    r"|small thing|a thought|thought|folks|team|all|everyone|everybody|y'?all|guys|people|there"
    r"|friends)"
)
_GREETING_SENTENCE = re.compile(rf"^(?:{_GREETING}[\s,!.:;-]*)+$", re.I)
_LEAD_INS = [
    re.compile(p, re.I)
    for p in (
        rf"^(?:{_GREETING}\b[\s,!.:;-]*)+",
        r"^(?:idea|feature request|feature|request|proposal|suggestion|bug|bug report|issue|problem"
        r"|question|q|ask|feedback|note|update|announcement|reminder|fyi|psa|tl;?dr|rfc)\s*[:\-–]+\s*",
        r"^(?:so|ok(?:ay)?|well|also|and|but|btw|honestly|basically|actually)\b[\s,]+",
        r"^(?:i|we) (?:just )?(?:think|thought|feel|believe|guess|wonder(?:ed)?|was thinking|were "
        r"thinking|have been thinking|noticed|realised|realized|found|propose|suggest)"
        r"(?: (?:that|like|about|if|whether))?\b[\s,]*",
        r"^(?:it )?(?:would|might|could)(?: (?:really|also|definitely))? be "
        r"(?:really |super |very )?(?:nice|great|cool|awesome|useful|helpful|good|handy|amazing)"
        r"(?: (?:to have|if we had|if we could|if|to))?\b[\s,]*",
        r"^(?:what|how) about (?:if )?(?:we )?(?:adding |having )?",
        r"^what if (?:we|you|i|the team)?\s*(?:could |were to |just )?",
        r"^(?:maybe|perhaps) (?:we )?(?:could|should|can)\s+",
        r"^(?:we|you|they) (?:really )?(?:should|could|need to|ought to|must)\s+",
        r"^(?:can|could) we (?:please |maybe )?(?:get|have)?\s*",
        r"^(?:please|pls|plz)\s+",
        r"^(?:not sure if (?:this is|it'?s) (?:a bug|intended|expected|known)(?: or not)?"
        r"|is it just me(?: or)?)[\s,.:;-]*(?:but\s+)?",
        r"^just (?:a )?(?:heads up|fyi|wanted to (?:say|ask|flag|mention))[\s,:;-]*(?:that\s+)?",
    )
]
_STOP_WORDS = """
a about above after again against all also am an and any are aren't as at be because been
before being below between both but by can can't cannot could couldn't did didn't do does
doesn't doing don't down during each even ever every few for from further get gets getting
got had hadn't has hasn't have haven't having he her here hers herself him himself his how
i i'd i'll i'm i've if in into is isn't it it's its itself just let let's like make makes
me might more most much must mustn't my myself need needs no nor not now of off on once
only or other ought our ours ourselves out over own really same shall she should shouldn't
so some such than that that's the their theirs them themselves then there there's these
they they're this those though through to too under until up upon us use used using very
via was wasn't we we'd we'll we're we've were weren't what what's when where which while
who whom why will with won't would wouldn't yet you you'd you'll you're you've your yours
yourself hey hi hello thanks thank please pls team folks guys everyone anyone someone
something anything thing things way ways idea ideas think thought maybe perhaps probably
actually basically still already always never sometimes etc e.g i.e one two new lot lots
bit quick today tomorrow yesterday week day time want wants wanted know see seems seem
seemed look looks looking try tried trying go going gonna wanna able sure okay ok set yes yeah
nope via per else instead kind sort bug issue question feature request add added adding
many well good great nice better best
"""
_STOP = frozenset(_STOP_WORDS.split())


def slack_to_text(text: str, max_chars: int = MAX_WORK_CHARS, code: str = " ") -> str:
    """Slack mrkdwn to plain words: mentions and broadcasts dropped, links reduced to their label,
    emoji codes and pictographs removed, code blocks replaced by *code*. Line breaks are kept."""
    return _slack_to_text(text, max_chars, code)


# Triage cleans the same post for its embedding (twice: ahead of time, then again in the
# analysis), its title and its labels: a few recent results are kept (the function is pure).
@functools.lru_cache(maxsize=512)
def _slack_to_text(text: str, max_chars: int, code: str) -> str:
    text = text[: max_chars * 2]
    text = _SLACK_USER.sub(" ", text)
    text = _SLACK_SPECIAL.sub(" ", text)
    text = _SLACK_CHANNEL.sub(lambda m: "#" + m.group(1), text)
    text = _SLACK_BARE_LINK.sub(" ", text)
    text = _FENCE.sub(lambda _: code, text)
    lines = [plain_text(line) for line in text.split("\n")]
    text = "\n".join(line for line in lines if line)
    text = _EMOJI.sub(" ", text)
    text = _PICTO.sub(" ", text)
    text = _URL.sub(" ", text)
    text = _AT_NAME.sub(" ", text)
    text = _MD_HEADING.sub("", text)
    text = _MD_QUOTE.sub("", text)
    text = _BULLET.sub("", text)
    text = re.sub(r"[ \t]+", " ", text)
    return text.strip()[:max_chars]


def has_words(text: str) -> bool:
    """True when *text* (already cleaned) has at least one letter in it."""
    return bool(_HAS_LETTER.search(text))


def sentences(text: str) -> list[str]:
    """Splits cleaned text into sentences (line breaks end a sentence too)."""
    return [s.strip(" -–—•*") for s in _SENT_SPLIT.split(text) if s and s.strip(" -–—•*")]


# "What if we added X" should read "Add X": the past tense that follows a hypothetical lead-in.
_HYPOTHETICAL = re.compile(r"^(?:what|how) (?:if|about) (?:we|you|i|the team)\b", re.I)
_PAST_TO_PRESENT = {
    "added": "add", "allowed": "allow", "built": "build", "changed": "change",
    "created": "create", "dropped": "drop", "enabled": "enable", "gave": "give", "had": "have",
    "introduced": "introduce", "kept": "keep", "let": "let", "made": "make", "moved": "move",
    "offered": "offer", "put": "put", "removed": "remove", "replaced": "replace", "sent": "send",
    "showed": "show", "started": "start", "stopped": "stop", "stored": "store",
    "supported": "support", "switched": "switch", "turned": "turn", "used": "use",
    "wrote": "write", "automated": "automate", "integrated": "integrate", "exposed": "expose",
    "cached": "cache", "merged": "merge", "split": "split", "tracked": "track",
}  # fmt: skip


# "What if the dashboard had a dark theme?" should read "Dark theme for the dashboard".
_WHAT_IF_HAD = re.compile(
    r"^(?:what|how) (?:if|about) (the|our|my|this) ((?:[\w-]+ ){0,2}?[\w-]+) "
    r"(?:had|got|supported|offered|showed|included|came with) (?:an? |some |the )?(.+?)[?.!]*$",
    re.I,
)


def strip_lead_in(sentence: str) -> str:
    """Removes greetings and filler lead-ins ("hey team,", "idea:", "what if we", "I think")."""
    s = sentence.strip()
    hypothetical = False
    for _ in range(4):
        before = s
        for pattern in _LEAD_INS:
            m = _WHAT_IF_HAD.match(s)
            if m:
                det, subject, wish = m.groups()
                return f"{wish} for {det.lower()} {subject}"
            hypothetical = hypothetical or bool(_HYPOTHETICAL.match(s))
            s = pattern.sub("", s, count=1).lstrip(" ,:;-–—")
        if s == before:
            break
    if hypothetical and s:
        first, _, rest = s.partition(" ")
        present = _PAST_TO_PRESENT.get(first.lower())
        if present:
            s = f"{present} {rest}".strip()
    return s


def _is_filler(sentence: str) -> bool:
    words = _WORD.findall(sentence.lower())
    if not words:
        return True
    return bool(_GREETING_SENTENCE.match(sentence.strip())) or (
        len(words) <= 2 and all(w in _STOP for w in words)
    )


def _capitalise(s: str) -> str:
    return s[:1].upper() + s[1:] if s else s


def main_sentences(text: str, prefer_question: bool = False) -> list[str]:
    """The substantive sentences of *text* (cleaned), lead-ins stripped, the main one first.

    The main sentence is the first one that is not a greeting; with *prefer_question* the first
    sentence ending in "?" wins when there is one.
    """
    cleaned = slack_to_text(text)
    out: list[str] = []
    for raw in sentences(cleaned):
        if _is_filler(raw):
            continue
        s = strip_lead_in(raw)
        if not s or not has_words(s):
            continue
        out.append(_capitalise(s))
        if len(out) >= 8:
            break
    if prefer_question:
        for i, s in enumerate(out):
            if s.endswith("?"):
                if i:
                    out.insert(0, out.pop(i))
                break
    return out


def title_and_summary(text: str, kind: str = "idea") -> tuple[str, str]:
    """``make_title`` and ``make_summary`` of *text*, cleaning it only once."""
    main = main_sentences(text, prefer_question=kind == "question")
    return _title(main, kind), _summary(main)


def make_title(text: str, kind: str = "idea", fallback: str = "Untitled post") -> str:
    """A one-line title (≤ 120 chars, no markup) rendering the post's main sentence."""
    return _title(main_sentences(text, prefer_question=kind == "question"), kind, fallback)


def make_summary(text: str, kind: str = "idea", max_sentences: int = 3) -> str:
    """One to three sentences of the post, plain text, at most 600 characters."""
    return _summary(main_sentences(text, prefer_question=kind == "question"), max_sentences)


def _title(main: list[str], kind: str, fallback: str = "Untitled post") -> str:
    if not main:
        return fallback
    title = tidy_title(main[0], kind, strip_lead_in)
    if kind != "question":
        title = title.rstrip(" ?!.:;,")
    title = clean_title(title, TITLE_MAX)
    return title if has_words(title) else fallback


def _summary(main: list[str], max_sentences: int = 3) -> str:
    if not main:
        return ""
    parts: list[str] = []
    size = 0
    for s in main[:max_sentences]:
        s = clean_title(s, 300)
        if s and s[-1] not in ".?!…":
            s += "."
        if parts and size + len(s) + 1 > SUMMARY_MAX:
            break
        parts.append(s)
        size += len(s) + 1
    return " ".join(parts)[:SUMMARY_MAX]


def words(text: str) -> list[str]:
    """Lower-case word tokens of *text* (no markup handling; clean first)."""
    return _WORD.findall(text.lower())


def content_words(text: str) -> list[str]:
    """Word tokens minus stop words, numbers and one-letter tokens."""
    return [
        w
        for w in words(text)
        if 2 < len(w) <= 30 and w not in _STOP and not w.replace(".", "").isdigit() and "'" not in w
    ]


def keyword_labels(
    text: str,
    idf: Callable[[str], float] | None = None,
    limit: int = 3,
    focus: str = "",
) -> list[str]:
    """The most distinctive content words of *text*, lower-case: tf x idf (when *idf* is given),
    doubled for words that also occur in *focus* (the title), so labels name the post's topic.

    Ties are broken by first appearance so the result is deterministic.
    """
    toks = content_words(slack_to_text(text))
    if not toks:
        return []
    tf = Counter(toks)
    first: dict[str, int] = {}
    for i, w in enumerate(toks):
        first.setdefault(w, i)
    focused = set(content_words(focus))

    def score(w: str) -> tuple[float, int]:
        weight = (idf(w) if idf else 1.0) * (2.0 if w in focused else 1.0)
        return (-(1.0 + 0.5 * (tf[w] - 1)) * weight, first[w])

    return [w.strip(".-_") for w in sorted(tf, key=score)][:limit]


# --------------------------------------------------------------------------- hashed features


def bucket(token: str, dim: int) -> int:
    """The feature column of *token* in a hashed space of *dim* columns."""
    return zlib.crc32(token.encode("utf-8")) % dim


_FEATURE_TOKEN = re.compile(r"[a-z0-9][a-z0-9_'\-.]*[a-z0-9]|[a-z0-9]|[?!]")


def ngrams(text: str, lead: int = 0) -> list[str]:
    """Word unigrams and bigrams of *text* (lower-case; "?" and "!" count as words), used as
    classifier features. With *lead*, the first *lead* words also count once more, marked, since
    the opening of a post says most about what kind of post it is."""
    toks = _FEATURE_TOKEN.findall(text.lower())
    grams = toks + [f"{a} {b}" for a, b in itertools.pairwise(toks)]
    if lead:
        head = toks[:lead]
        grams += ["^" + t for t in head]
        grams += [f"^{a} {b}" for a, b in itertools.pairwise(head)]
    return grams


def hashed_counts(texts: Sequence[str], dim: int, lead: int = 0) -> list[dict[int, float]]:
    """Per text, sublinear term frequencies (1 + log tf) of hashed uni/bigrams."""
    rows: list[dict[int, float]] = []
    for text in texts:
        c = Counter(bucket(g, dim) for g in ngrams(text, lead))
        rows.append({k: 1.0 + math.log(v) for k, v in c.items()})
    return rows
