"""Does a post ask, propose or report? Notes and announcements are ``other`` unless they do.

The classifier learns from tickets, and a backlog holds no meeting notes or conference
write-ups, so it reads a notes paragraph ("The panel discussed how platform teams can ...") as
the nearest ticket kind, often ``question``. These pure checks look for what each ticket kind
needs on the page: a question asks (a question mark, or "does anyone know", "how do I" ...), an
idea proposes ("we should", "could we", "it would be nice" ...), a bug reports a failure
("fails", "broken", "error" ...). A post that reads as notes or an announcement and neither asks
nor proposes is ``other`` (or a bug, if it reports a failure and the model said bug).
Measured on bench/data/slack_posts.jsonl (bench/eval_slack.py) and on the issue dev set, where
it must change (almost) nothing (bench/eval_kinds.py).
"""

from __future__ import annotations

import re

from bot.domain.models import Kind

_ASKS = re.compile(
    r"\?|^\s*(?:how|what|where|when|why|which|who|is|are|does|do|can|could|should|would|has|have)"
    r"\b"
    r"|\b(?:any ?(?:one|body) (?:know|have|tried|seen|else)|does any ?(?:one|body)|is there a way"
    r"|how (?:do|can|should|would|to)|is it possible|wondering (?:if|whether|how|why|what)"
    r"|can (?:some|any) ?(?:one|body)|could (?:some|any) ?(?:one|body)|need help|help me"
    r"|not sure (?:how|why|what|whether|if)|what(?:'s| is) the (?:best|right|correct))\b",
    re.I | re.M,
)
_PROPOSES = re.compile(
    r"\b(?:we should|should we|could we|can we|let'?s|propose|proposal|suggest(?:ion)?"
    r"|would be (?:really |very |super )?(?:nice|great|good|useful|helpful|cool|handy)"
    r"|it'?d be|feature request|please add|wish (?:we|there|it)|what if|how about|would love"
    r"|idea:|idea -|we need (?:a|an|to)|maybe we|perhaps we|we could|why don'?t we)\b",
    re.I,
)
_REPORTS = re.compile(
    r"\b(?:error|exception|broken|break(?:s|ing)?|fail(?:s|ed|ing|ure)?|crash(?:es|ed|ing)?"
    r"|doesn'?t work|does not work|not working|stopped working|bug|regression|500|404|timeout"
    r"|timed out|stack ?trace|never (?:arrives|loads|finishes)|wrong|missing|cuts? off|ignores?)\b",
    re.I,
)
# Help-seeking: the writer asks how to do something, or for help with what they are doing, which
# is what makes a GitHub-style question that describes an error a question and not a bug report.
# Deliberately narrower than ``_ASKS``: a question mark alone also shows up in bug reports
# ("Expected: true?", a stack trace, a URL's query string).
_SEEKS_HELP = re.compile(
    r"\b(?:how (?:do|can|should|would) (?:i|we|you)|how to|is it possible|is there (?:a|any) "
    r"(?:way|option|setting)|what(?:'s| is) the (?:best|right|correct|recommended|proper) way"
    r"|am i (?:doing|missing)|what am i (?:doing|missing)|(?:any|some) (?:help|advice|hints?"
    r"|pointers|suggestions|ideas)|help (?:me|needed|please|is appreciated)|please help"
    r"|need (?:some )?help|thanks in advance|(?:i'?m|i am) (?:trying|new|a beginner|not sure"
    r"|confused|stuck)|(?:can'?t|cannot|could not|couldn'?t) figure out|(?:don'?t|do not) "
    r"understand|is this (?:expected|normal|intended|by design)|what should i"
    r"|how (?:would|should) i)\b",
    re.I,
)
# A headline that opens with a verb of change ("Add CSV export", "UI: allow dark mode", "[Editor]
# Support tabs") names the change it asks for, the way feature requests are titled; a bug report's
# title names what is wrong. Verbs of maintenance that announcements open with too ("Update:",
# "Upgrade", "Fix") are left out, and so are "make sure" (an instruction) and verbs that title
# bug reports as nouns ("Export crashes on empty rows").
_TITLED_AS_CHANGE = re.compile(
    r"^\s*(?:\[[^\]\n]*\]\s*|[\w.-]+:\s*)?(?:add|allow|support|provide|enable|implement|introduce"
    r"|improve|expose|make(?! sure)|let|offer|create|extend|include|consider|rename|replace|remove"
    r"|deprecate|hide|accept|reduce|increase|feature request|proposal)\b",
    re.I,
)
_NOTES = re.compile(
    r"\b(?:announce(?:s|d|ment|ments)?|announcing|fyi|heads[- ]up|reminder|notes? (?:from|on)"
    r"|recap|summary of|takeaways?|highlights?(?: of|:)|we (?:just )?(?:released|shipped|launched"
    r"|rolled out)|is (?:now )?live|now available|welcome (?:to the|aboard|our new)"
    r"|congrat\w*|thanks (?:everyone|all|team)|the panel (?:discussed|agreed|talked|said)"
    r"|panel(?:ists?| discussion)|keynote|speaker"
    r"|talk (?:at|about|on|by)|conference|meetup|webinar|discussed|presented|deprecating"
    r"|maintenance|will be (?:down|closed|offline)|closed on|out of office|retro)\b",
    re.I,
)


def asks(text: str) -> bool:
    """True when *text* asks something."""
    return bool(_ASKS.search(text))


def proposes(text: str) -> bool:
    """True when *text* proposes or requests a change."""
    return bool(_PROPOSES.search(text))


def reports_problem(text: str) -> bool:
    """True when *text* reports a failure."""
    return bool(_REPORTS.search(text))


def seeks_help(text: str) -> bool:
    """True when *text* asks for help or how to do something (not merely has a "?")."""
    return bool(_SEEKS_HELP.search(text))


def titled_as_change(text: str) -> bool:
    """True when the first line of *text* opens with a verb of change, as a request is titled
    ("Add a CSV export", "Settings: allow a dark theme")."""
    return bool(_TITLED_AS_CHANGE.match(text.lstrip().split("\n", 1)[0]))


def reads_as_notes(text: str) -> bool:
    """True when *text* reads as notes, a write-up or an announcement."""
    return bool(_NOTES.search(text))


def settle_kind(kind: Kind, text: str) -> Kind:
    """The kind after checking what *text* does (plain text, markup removed): notes or an
    announcement that neither asks nor proposes is ``other`` (a failure reported in it still
    makes a bug). Otherwise the model's word stands: GitHub-style questions often ask without a
    question mark (``Data is lost on page refresh; tried redux-persist``), so "asks nothing"
    alone was measured to be too weak a reason to overrule it (bench/eval_kinds.py)."""
    if kind == "other" or asks(text) or proposes(text) or not reads_as_notes(text):
        return kind
    return "bug" if kind == "bug" and reports_problem(text) else "other"
