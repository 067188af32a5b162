"""Ticket-like titles from a post's main sentence: subject first, discourse removed.

``extract.main_sentences`` strips greetings and lead-ins ("hey team,", "what if we", "I think");
this tidies what is left into what a person would type as a ticket title: context before a colon
("After yesterday's on-call: ...", "Timezone bug: ..."), hedges ("does anyone know how to",
"I was wondering whether we could get") and trailing asides (", they keep pinging us", "; most
agreed ...") go, as does a leading article. Measured with ROUGE-L against people's titles in
bench/eval_slack.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# "context: the point" -- a short head before a colon is context, unless the rest is too short.
_CONTEXT = re.compile(r"^([^:]{1,60}):\s+(\S.*)$")
_HEDGES = [
    re.compile(p, re.I)
    for p in (
        r"^(?:i|we)(?:'m| am| was| were| are| have been| had been)? (?:just )?wondering "
        r"(?:if|whether|how|why)\s+",
        r"^(?:does|do|did) (?:any ?one|any ?body|you|somebody|someone)(?: here)? know\s+",
        r"^(?:is|has|have) (?:any ?one|any ?body)(?: else)? (?:seen|noticed|had|hit)\s+",
        r"^any ?(?:one|body)(?: else)? (?:seeing|having|getting|noticing|hitting)\s+",
        r"^(?:we|you|i) (?:could|can|might|should) (?:maybe |perhaps |please )?",
        r"^(?:get|have|see|there be|there was|there were)\s+(?=\S+\s+\S+)",
    )
]
# An aside after the point: ", they keep ...", "; most agreed ...", " - thoughts?"
_ASIDE = re.compile(
    r"(?:[;:]\s+|\s+[-–—]\s+|,\s+(?=(?:they|it|so|which|because|since|as|but|nobody|everyone"
    r"|half|most|we|i|this|that|these|those|otherwise|thanks|tried|checked|even|the)\b))",
    re.I,
)
_ARTICLE = re.compile(r"^(?:the|a|an)\s+(?=\S)", re.I)
MIN_WORDS = 4


def _words(s: str) -> int:
    return len(s.split())


_HOW_TO = re.compile(r"^is there (?:a|any) way to\s+", re.I)
LONG = 10  # words: past this, a title is cut at its first comma (if 5 words remain)


def tidy_title(sentence: str, kind: str = "idea", strip: Callable[[str], str] | None = None) -> str:
    """*sentence* (the post's main sentence, lead-ins already stripped) as a ticket title;
    *strip* strips lead-ins again once context before a colon is gone."""
    s = sentence.strip()
    m = _CONTEXT.match(s)
    if m and _words(m.group(1)) <= 6 and _words(m.group(2)) >= 3:
        s = strip(m.group(2)) if strip else m.group(2)
    s = _HOW_TO.sub("How to ", s)
    for _ in range(3):
        before = s
        for pattern in _HEDGES:
            s = pattern.sub("", s, count=1)
        if s == before:
            break
    parts = _ASIDE.split(s, maxsplit=1)
    if len(parts) == 2 and _words(parts[0]) >= MIN_WORDS:
        s = parts[0]
    head, comma, _ = s.partition(", ")
    if comma and _words(s) > LONG and _words(head) >= 5:
        s = head
    s = _ARTICLE.sub("", s)
    s = s.strip(" ,;:-–—")
    if kind == "question" and not s.endswith("?") and sentence.rstrip().endswith("?"):
        s += "?"
    return s[:1].upper() + s[1:] if s else sentence
