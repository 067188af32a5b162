"""Measures the ideas found in notes posts against hand-labelled write-ups. Prints only.

    .venv/bin/python bench/eval_notes.py                       # offline, with the kind classifier
    .venv/bin/python bench/eval_notes.py --classifier none     # the cues alone
    .venv/bin/python bench/eval_notes.py --show                # every idea found, per post

The data (written for this project, not taken from anywhere) holds meeting notes, retros,
conference write-ups, stand-ups, announcements and single-idea posts; each lists its ideas as
``{"evidence": a phrase of the text, "title": what a person would title the ticket}``:

* bench/data/notes.jsonl: the set the offline rules were written against (their own figures);
* bench/data/notes_heldout.jsonl: written before it was first measured (P 0.90, R 0.64 then),
  later used for a second round of rules, so no longer held out;
* bench/data/notes_heldout2.jsonl: written after the rules, measured once, never tuned on.

The bot's behaviour is what is scored: a post shows a list of ideas only when it is long enough
(NOTES_MIN_CHARS) and at least two are found; a post with fewer than two labelled ideas should
show none. A found idea is right when its excerpt holds at least 60 % of the words of a labelled
idea's evidence (each labelled idea matches at most one found idea).

Printed: precision and recall of the ideas, how many posts were read as notes correctly, and
ROUGE-L of the titles of matched ideas against the labelled titles, beside the titles the
single-post analyzer would write for the same sentence (its first sentence, lead-in stripped).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.adapters.extract import make_title  # noqa: E402
from bot.adapters.ideas_offline import OfflineIdeaExtractor  # noqa: E402
from bot.domain.models import Idea, Post  # noqa: E402
from bot.domain.notes import NotesPolicy  # noqa: E402

DATA = ROOT / "bench" / "data" / "notes.jsonl"
MATCH = 0.6


def words(text: str) -> list[str]:
    out = []
    for w in text.lower().replace("’", "'").split():
        w = w.strip(".,;:!?\"'()[]*_<>")
        if w:
            out.append(w)
    return out


def covers(excerpt: str, evidence: str) -> bool:
    """True when *excerpt* holds at least MATCH of the words of *evidence*."""
    have = set(words(excerpt))
    need = words(evidence)
    return bool(need) and sum(w in have for w in need) / len(need) >= MATCH


def rouge_l(a: str, b: str) -> float:
    x, y = words(a), words(b)
    if not x or not y:
        return 0.0
    prev = [0] * (len(y) + 1)
    for i in range(1, len(x) + 1):
        cur = [0] * (len(y) + 1)
        for j in range(1, len(y) + 1):
            cur[j] = prev[j - 1] + 1 if x[i - 1] == y[j - 1] else max(prev[j], cur[j - 1])
        prev = cur
    lcs = prev[-1]
    if lcs == 0:
        return 0.0
    p, r = lcs / len(x), lcs / len(y)
    return 2 * p * r / (p + r)


def load(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def shown(extractor: OfflineIdeaExtractor, policy: NotesPolicy, row: dict[str, Any]) -> list[Idea]:
    """The ideas the bot's reply would list for *row* (none: it is answered as one post)."""
    if not policy.long_enough(row["text"]):
        return []
    ideas = extractor.extract(Post(id=row["id"], text=row["text"]), policy.max_ideas)
    return ideas if len(ideas) >= policy.min_ideas else []


def evaluate(
    rows: list[dict[str, Any]], extractor: OfflineIdeaExtractor, policy: NotesPolicy, show: bool
) -> dict[str, float]:
    found = right = labelled = notes_ok = 0
    ours: list[float] = []
    baseline: list[float] = []
    for row in rows:
        gold = row["ideas"] if len(row["ideas"]) >= policy.min_ideas else []
        ideas = shown(extractor, policy, row)
        found += len(ideas)
        labelled += len(gold)
        notes_ok += bool(ideas) == bool(gold)
        free = list(gold)
        for idea in ideas:
            hit = next((g for g in free if covers(idea.excerpt, g["evidence"])), None)
            mark = "  "
            if hit is not None:
                free.remove(hit)
                right += 1
                mark = "ok"
                ours.append(rouge_l(idea.title, hit["title"]))
                baseline.append(rouge_l(make_title(idea.excerpt), hit["title"]))
            if show:
                print(f"  {mark} [{row['id']}] {idea.kind:4} {idea.title}")
        if show:
            for g in free:
                print(f"  -- [{row['id']}] missed: {g['title']}")
    return {
        "posts": len(rows),
        "notes_ok": notes_ok,
        "found": found,
        "right": right,
        "labelled": labelled,
        "precision": right / found if found else 0.0,
        "recall": right / labelled if labelled else 0.0,
        "rouge_ours": sum(ours) / len(ours) if ours else 0.0,
        "rouge_first_sentence": sum(baseline) / len(baseline) if baseline else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--classifier", choices=("offline", "none"), default="offline")
    ap.add_argument("--min-chars", type=int, default=NotesPolicy().min_chars)
    ap.add_argument("--show", action="store_true", help="print every idea found and missed")
    args = ap.parse_args(argv)
    classifier = None
    if args.classifier == "offline":
        from bot.adapters.analyzer_offline import OfflineAnalyzer
        from bot.adapters.embedder_onnx import OnnxEmbedder

        classifier = OfflineAnalyzer(OnnxEmbedder())
    rows = load(args.data)
    policy = NotesPolicy(min_chars=args.min_chars)
    started = time.perf_counter()
    r = evaluate(rows, OfflineIdeaExtractor(classifier), policy, args.show)
    took = time.perf_counter() - started
    f1 = (
        2 * r["precision"] * r["recall"] / (r["precision"] + r["recall"])
        if r["precision"] + r["recall"]
        else 0.0
    )
    print(f"notes eval: {args.data.name}, {r['posts']} posts, classifier={args.classifier}")
    print(f"  posts read correctly as notes / not notes: {r['notes_ok']}/{r['posts']}")
    print(
        f"  ideas: found {r['found']}, right {r['right']}, labelled {r['labelled']} -> "
        f"precision {r['precision']:.3f}, recall {r['recall']:.3f}, F1 {f1:.3f}"
    )
    print(
        f"  titles of matched ideas, ROUGE-L vs labelled titles: {r['rouge_ours']:.3f} "
        f"(the single-post title of the same sentence: {r['rouge_first_sentence']:.3f})"
    )
    print(f"  {took:.2f}s for all posts (model load included)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
