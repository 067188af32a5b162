"""Ticket titles from a proposal sentence: the action first, the discourse around it removed.

"The panel discussed how we should provide incident roles instead of admin rights on our AWS
accounts." reads "Provide incident roles instead of admin rights on AWS accounts": who said it,
the modal ("we should", "it would be good to", "let's") and the reason ("so that ...") go; the
verb and its object stay. Pure string functions; nothing here calls a model.
"""

from __future__ import annotations

import re

from bot.adapters.extract import strip_lead_in
from bot.domain.models import clean_title

TITLE_WORDS = 14  # past this, the title is cut at a clause boundary
_SUBJECT = (
    r"(?:we|you|they|i|everyone|everybody|people|folks|someone|somebody|one"
    r"|(?:the |our |all |every |platform |product |dev |ops )?(?:teams?|squads?|devs|developers"
    r"|engineers|org|company))"
)
_MODAL = (
    r"(?:really |probably |definitely |maybe |perhaps |also |just |still |all )*"
    r"(?:should|could|can|might|may want to|must|need to|needs to|ought to|have to|has to"
    r"|want to|plan to|will|'d better|are going to|agreed to|decided to)"
    r"(?: (?:really|probably|definitely|maybe|also|just|seriously|at least|all))*"
)
_WORTH = re.compile(
    r"\bworth (trying|exploring|considering|looking into|investigating|piloting|testing) (.+)", re.I
)
_WORTH_AFTER = re.compile(
    r"^(.+?) (?:is|are|would be|might be|could be|seems|sounds) (?:\w+ )?worth "
    r"(trying|exploring|considering|looking into|investigating|a try|a look|piloting)",
    re.I,
)
# "Using pre-commit hooks would save review time": the gerund phrase is the action.
_GERUND_SUBJECT = re.compile(
    r"^([A-Za-z]+ing\b.+?) (?:would|could|might|will|should|may|can) (?:really |also )?\w+", re.I
)
# Patterns whose last group is the action; tried in order, first match wins.
_ACTION_AFTER = [
    re.compile(p, re.I)
    for p in (
        r"\b(?:suggested|proposed|recommended|mentioned|pointed out|argued|said|agreed|noted)"
        r"(?: that)? (?:we|teams?|you|everyone|people) (?:should |could |might |can |need to |"
        r"ought to |must )?(.+)",
        rf"\b{_SUBJECT} {_MODAL} (?:try (?:to |and ))?(.+)",
        r"\b(?:it'?d|(?:it )?(?:would|might|could)) (?:really |also |definitely )?be (?:good|"
        r"great|nice|"
        r"useful|helpful|worth|better|wise|smart|valuable|cool|sensible) (?:to |if we |if )?(.+)",
        r"\bit(?:'s| is) (?:probably |definitely )?(?:worth|time) (?:to )?(.+)",
        r"\b(?:worth (?:trying|exploring|considering|looking into|a try|investigating)|"
        r"we'?re (?:considering|exploring|thinking about)) (.+)",
        r"\blet'?s (?:also |maybe |try (?:to |and )?|start |consider )?(.+)",
        r"\bwhy (?:don'?t|not) we (?:just )?(.+)",
        r"\b(?:how|what) about (?:we )?(.+)",
        r"\bwhat if we (.+)",
        r"\b(?:i|we) (?:would )?(?:propose|suggest|recommend)(?:ed)? (?:that )?(?:we )?(.+)",
        r"\b(?:suggestion|proposal|idea|recommendation|takeaway|action item|todo|next step)s?"
        r"(?: was| is)?(?: to)?[:\s]\s*(.+)",
        r"^\s*@?[A-Z][\w.-]*(?: [A-Z][\w.-]*)? (?:to|will) (.+)",  # "Dana to draft the runbook"
    )
]
# Everything from here on explains or qualifies: it belongs in the summary, not the title.
_REASON = re.compile(
    r"(?:, (?:they|it|we|this|that|these|those) (?:are|is|was|were|have|has|had|'re|'s|came|"
    r"comes|keeps|kept|happened)\b|, (?:today|currently|right now|at the moment)\b|,\s*with\b|"
    r" before \w+ing\b| that (?:posts|runs|shows|sends|lets|makes|says)\b|"
    r",? so (?:that\b|\w+(?: \w+)? (?:can|could|will|would|don'?t|doesn'?t|won'?t|stop"
    r"|get)\b)|,? because\b|,? since\b|"
    r",? as (?:it|this|that|we)\b|, which\b|,? to (?:avoid|make sure|ensure|reduce the risk)\b|"
    r"\s[–—-]\s|;|\(|,? e\.g\.|,? like we\b|,? like \w+ (?:do|does|did)\b|,? the way\b|"
    r", (?:and|but) (?:we|it|that|this)\b)",
    re.I,
)
_TRAILING = re.compile(
    r"[\s,]+(?:by (?:mon|tues|wednes|thurs|fri|satur|sun)day|by (?:the )?end of \w+|"
    r"by \d{1,2} \w+|by \w+ \d{1,2}|as well|too|also|again|etc\.?|and so on|going forward"
    r"|in the future|at some point"
    r"|next (?:quarter|sprint|week|month)|soon|asap|instead)\W*$",
    re.I,
)
_POSSESSIVE = re.compile(r"\bour\s+", re.I)
_TRAILING_Q = re.compile(r"\s*(?:\?|!|\.|:|,)+\s*$")
_GERUND = re.compile(r"^([A-Za-z]+)ing\b")
_BE_PASSIVE = re.compile(r"^(?:be|get) (\w+ed|\w+en)\b(.*)$", re.I)
# Gerunds whose base form is not the stem ("using" -> "use", "running" -> "run").
_GERUND_BASE = {
    "adding": "add", "using": "use", "making": "make", "having": "have", "creating": "create",
    "moving": "move",
    "writing": "write", "removing": "remove", "replacing": "replace", "running": "run",
    "setting": "set", "getting": "get", "putting": "put", "shipping": "ship",
    "stopping": "stop", "dropping": "drop", "planning": "plan", "scheduling": "schedule",
    "automating": "automate", "introducing": "introduce", "providing": "provide",
    "sharing": "share", "changing": "change", "deprecating": "deprecate", "rotating": "rotate",
    "retiring": "retire", "storing": "store", "enabling": "enable", "centralising": "centralise",
    "centralizing": "centralize", "standardising": "standardise", "standardizing": "standardize",
    "consolidating": "consolidate", "migrating": "migrate", "updating": "update",
    "reducing": "reduce", "merging": "merge", "defining": "define", "giving": "give",
    "taking": "take", "hiring": "hire", "pairing": "pair", "prototyping": "prototype",
    "piloting": "pilot", "exploring": "explore", "improving": "improve",
    "saving": "save", "serving": "serve", "solving": "solve", "securing": "secure",
    "requiring": "require", "closing": "close", "releasing": "release", "raising": "raise",
    "organising": "organise", "organizing": "organize", "prioritising": "prioritise",
    "prioritizing": "prioritize", "optimising": "optimise", "optimizing": "optimize",
    "generating": "generate", "refreshing": "refresh", "caching": "cache", "lowering": "lower",
    "encouraging": "encourage", "measuring": "measure", "capping": "cap", "sizing": "size",
    "adopting": "adopt", "tagging": "tag", "timeboxing": "timebox",
    "mapping": "map", "cutting": "cut", "splitting": "split", "investigating": "investigate",
    "evaluating": "evaluate", "capturing": "capture", "archiving": "archive",
    "publishing": "publish", "documenting": "document", "trying": "try",
}  # fmt: skip
# Verbs a sentence may open with as an instruction (an action item in a list).
ACTION_VERBS = frozenset(
    """
    add adopt align allow archive ask audit automate build cap capture centralise centralize
    change check clarify clean consider consolidate create generate cut define delete deprecate
    document draft
    drop enable enforce evaluate expose extend fix follow get give hold improve introduce
    investigate keep label limit look make map measure merge migrate monitor move offer pair
    pilot plan prepare prototype provide publish put raise reduce refactor remove rename
    replace require reserve restrict retire review revisit rotate run schedule send set share
    ship show simplify split standardise standardize start stop store switch tag test timebox
    track trial try turn update upgrade use validate write
    """.split()
)


_HAVE = re.compile(r"^(?:have|get|see) (?=(?:a|an|some|the|more|better)\b)", re.I)
_WISH = re.compile(
    r"^(the|our|a|an|every) ([\w-]+(?: [\w-]+){0,2}?) ([a-z]+ed|had|got|showed|sent|made|"
    r"gave|kept|told|let) (.+)$",
    re.I,
)


_IRREGULAR = {
    "had": "have", "got": "get", "showed": "show", "sent": "send", "made": "make",
    "gave": "give", "kept": "keep", "told": "tell", "let": "let", "used": "use",
    "created": "create", "shared": "share", "removed": "remove", "moved": "move",
    "updated": "update", "automated": "automate", "stored": "store", "replaced": "replace",
    "included": "include", "enabled": "enable", "changed": "change", "retired": "retire",
}  # fmt: skip


def _present(verb: str) -> str:
    low = verb.lower()
    if low in _IRREGULAR:
        return _IRREGULAR[low]
    return low[:-2] if low.endswith("ed") else low


def gerund_to_base(word: str) -> str:
    """``adding`` -> ``add``, ``using`` -> ``use``; other words unchanged."""
    low = word.lower()
    if low in _GERUND_BASE:
        base = _GERUND_BASE[low]
    elif low.endswith("ing") and len(low) > 5:
        stem = low[:-3]
        doubled = len(stem) > 2 and stem[-1] == stem[-2] and stem[-1] in "bgmnpt"
        base = stem[:-1] if doubled else stem
    else:
        return word
    return base.capitalize() if word[:1].isupper() else base


_PARENTHESES = re.compile(r"\s*\([^()]{0,80}\)")
_ARTICLE = re.compile(r"^(?:the|a|an|to) (?=\w)", re.I)


def action_of(sentence: str) -> str:
    """The action a proposal sentence asks for, without who proposed it or the modal;
    the sentence itself (lead-ins stripped) when no proposal shape is found."""
    s = _PARENTHESES.sub("", sentence).strip()
    worth = _WORTH.search(s) or _WORTH_AFTER.search(s)
    if worth is not None:
        verb, obj = worth.groups() if worth.re is _WORTH else worth.groups()[::-1]
        verb = {"a try": "trying", "a look": "looking into"}.get(verb.lower(), verb)
        if obj[:1].isupper() and obj[1:2].islower():
            obj = obj[:1].lower() + obj[1:]  # "Feature flags" inside the title, not an acronym
        return f"{gerund_to_base(verb.split()[0])} {' '.join(verb.split()[1:])} {obj}".replace(
            "  ", " "
        ).strip()
    gerund = _GERUND_SUBJECT.match(strip_lead_in(s))
    if gerund is not None:
        s = gerund.group(1)
    else:
        for pattern in _ACTION_AFTER:
            m = pattern.search(s)
            if m and len(m.group(m.lastindex or 1).split()) >= 2:
                s = m.group(m.lastindex or 1)
                break
        else:
            s = strip_lead_in(s)
    s = s.strip(" ,:;-–—")
    wish = _WISH.match(s) if re.search(r"\bif\b", sentence, re.I) else None
    if wish is not None and wish.group(3).lower() not in {"need", "feed", "speed", "seed"}:
        # "(it would be great if) the deploy bot posted X" -> "Make the deploy bot post X"
        det, thing, verb, rest = wish.groups()
        return f"Make {det.lower()} {thing} {_present(verb)} {rest}"
    s = _ARTICLE.sub("", s)  # "the danger zone should ...", "to look into ..." (assigned)
    s = _HAVE.sub("", s)  # "(it would be great to) have a self-serve import" -> "self-serve ..."
    m = _BE_PASSIVE.match(s)
    if m is None:
        first, _, rest = s.partition(" ")
        s = f"{gerund_to_base(first)} {rest}".strip()
    return s


def ticket_title(sentence: str, max_words: int = TITLE_WORDS) -> str:
    """A ticket title for one proposal sentence: subject first, filler and reasons removed,
    capitalised, no trailing punctuation, at most 120 characters."""
    s = action_of(sentence)
    cut = _REASON.search(s)
    if cut and len(s[: cut.start()].split()) >= 3:
        s = s[: cut.start()]
    for _ in range(2):
        s = _TRAILING.sub("", s)
    s = _POSSESSIVE.sub("", s)
    s = _TRAILING_Q.sub("", s).strip(" ,:;-–—\"'")
    words = s.split()
    if len(words) > max_words:
        # A long action: keep its head up to the last natural break inside the limit.
        head = " ".join(words[:max_words])
        for sep in (", ", " and ", " with ", " for ", " by "):
            at = head.rfind(sep)
            if at >= len(head) // 2:
                head = head[:at]
                break
        s = head
    s = s[:1].upper() + s[1:]
    return clean_title(s)
