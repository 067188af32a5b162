"""Labels as topics: keyphrases of a post, never stop-words or verbs.

Frequency words made poor labels (``interesting, point, made``; ``discussed, panel``): a label
names a topic, so candidates are nouns and noun phrases as far as a dictionary-free check can
tell: content words that are not common verbs (any form), not past participles, not adverbs;
two adjacent such words form a phrase (``flaky-tests``, ``dark-mode``). Scored tf x idf, doubled
when they occur in the title; a word inside a chosen phrase is not repeated.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Callable

from bot.adapters.extract import content_words, slack_to_text

_VERBS = frozenset(
    """accept agree allow appear arrive ask attach become begin believe break bring build buy call
    change check choose close come consider continue cover create cut deal decide deprecate
    describe discuss do download drop end enjoy explain fail fall feel find finish fix follow
    forget get give go happen hear help hit hold hope ignore include keep know land last lead
    learn leave let like link live look lose love make mean meet mention miss move need notice
    offer open pay pick ping plan play point post prefer present provide pull push put raise
    reach read realise realize receive remember remove report request require run say see seem
    send set share shift show sit start stay stop suggest take talk tell test thank think try
    turn understand update upgrade use wait want watch wonder work write improve join rotate
    mute agree""".split()
)
_IRREGULAR = frozenset(
    """began begun broke broken brought built bought came chose chosen did done fell felt found
    gave given got gotten went gone heard held hit kept knew known led left lost made meant met
    paid put ran read said saw seen sent set shown sat spoke spoken stood took taken told thought
    understood wore won wrote written""".split()
)
_OTHER = frozenset(
    """interesting whose whether really very quite great good nice cool awesome able unable
    again also every everything nothing anyone everyone someone somebody thing stuff lot point
    today tonight morning yesterday tomorrow week month year quarter straight half right
    next heads since top people short long permanent generic two three four five first last
    new old same different""".split()
)
_SPLIT = re.compile(r"[^a-z0-9\-']+")


def _base_forms(word: str) -> set[str]:
    forms = {word}
    for suffix, repl in (("ing", ""), ("ing", "e"), ("ed", ""), ("ed", "e"), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            forms.add(word[: -len(suffix)] + repl)
    if len(word) > 5 and word[-3] == word[-4] and word.endswith(("ing", "ed")):
        forms.add(word[:-4] if word.endswith("ing") else word[:-3])  # stopped -> stop
    return forms


# Pure, and asked again for the same words post after post.
@functools.lru_cache(maxsize=8192)
def is_topic_word(word: str) -> bool:
    """False for stop-words' kin: verbs in any form, past participles, adverbs, fillers."""
    if word in _OTHER or word in _IRREGULAR or len(word) < 3:
        return False
    if word.endswith("ly") and len(word) > 5:
        return False
    if word.endswith("ed") and len(word) > 4:
        return False
    return not (_base_forms(word) & _VERBS)


def keyphrase_labels(
    text: str, idf: Callable[[str], float] | None = None, limit: int = 3, focus: str = ""
) -> list[str]:
    """Up to *limit* topic labels of *text*: lower-case, phrases joined by "-"."""
    clean = slack_to_text(text).lower()
    allowed = {w for w in content_words(clean) if is_topic_word(w.strip(".-_'"))}
    runs: list[list[str]] = [[]]
    for tok in _SPLIT.split(clean):
        tok = tok.strip(".-_'")
        if tok in allowed:
            runs[-1].append(tok)
        elif runs[-1]:
            runs.append([])
    unigrams: Counter[str] = Counter()
    phrases: Counter[str] = Counter()
    first: dict[str, int] = {}
    pos = 0
    for run in runs:
        for i, w in enumerate(run):
            unigrams[w] += 1
            first.setdefault(w, pos)
            pos += 1
            if i:
                p = f"{run[i - 1]}-{w}"
                phrases[p] += 1
                first.setdefault(p, pos)
    if not unigrams:
        return []
    focused = set(content_words(focus.lower()))

    def weight(w: str) -> float:
        return (idf(w) if idf else 1.0) * (2.0 if w in focused else 1.0)

    scored: dict[str, float] = {w: (1.0 + 0.5 * (c - 1)) * weight(w) for w, c in unigrams.items()}
    for p, c in phrases.items():
        a, b = p.split("-", 1)
        # a phrase must recur, or sit in the title, to beat its own words
        if c > 1 or (a in focused and b in focused):
            scored[p] = (1.0 + 0.5 * (c - 1)) * (weight(a) + weight(b)) * 0.75
    out: list[str] = []
    used: set[str] = set()
    for label in sorted(scored, key=lambda w: (-scored[w], first[w])):
        parts = set(label.split("-"))
        if parts & used:
            continue
        out.append(label[:30].strip("-"))
        used |= parts
        if len(out) >= limit:
            break
    return out
