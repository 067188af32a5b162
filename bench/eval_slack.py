"""The offline analyzer on the project's own Slack-style posts: kinds, titles and labels.

    .venv/bin/python bench/eval_slack.py [--data bench/data/slack_posts.jsonl]

bench/data/slack_posts.jsonl is written for this project (not taken from any data set): team
posts of every kind (ideas, bugs, questions, and notes/announcements that should be ``other``),
each with the title and labels a person would give it. The analyzer runs cold (no backlog).
Reports macro-F1 over the four kinds, ROUGE-L F1 of the titles against the people's titles
(beside the post's first sentence cut to 120 characters, the simplest baseline), and label
precision/recall (a label counts when it equals a reference label, hyphens and case aside, or
one is a word of the other).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.adapters.analyzer_offline import OfflineAnalyzer  # noqa: E402
from bot.adapters.embedder_onnx import OnnxEmbedder  # noqa: E402
from bot.adapters.extract import sentences, slack_to_text, title_and_summary  # noqa: E402
from bot.domain.models import Post  # noqa: E402

_WORD = re.compile(r"[a-z0-9]+")
KINDS4 = ("bug", "idea", "question", "other")


def tokens(text: str) -> list[str]:
    """Lower-case word tokens."""
    return _WORD.findall(text.lower())


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 (longest common subsequence of word tokens)."""
    a, b = tokens(candidate), tokens(reference)
    if not a or not b:
        return 0.0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    lcs = prev[-1]
    if not lcs:
        return 0.0
    p, r = lcs / len(a), lcs / len(b)
    return 2 * p * r / (p + r)


def label_match(got: str, ref: str) -> bool:
    """Equal up to case and hyphens, or one is a word of the other."""
    g, r = tokens(got), tokens(ref)
    return bool(g and r) and (g == r or (len(g) == 1 and g[0] in r) or (len(r) == 1 and r[0] in g))


def macro_f1(gold: list[str], pred: list[str], classes: tuple[str, ...]) -> float:
    """Macro-F1 over *classes*."""
    f1s = []
    for c in classes:
        tp = sum(g == c and p == c for g, p in zip(gold, pred, strict=True))
        fp = sum(g != c and p == c for g, p in zip(gold, pred, strict=True))
        fn = sum(g == c and p != c for g, p in zip(gold, pred, strict=True))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(f1s) / len(f1s)


def issue_titles(path: Path) -> None:
    """ROUGE-L of titles extracted from issue bodies (no model: the title depends on the kind
    only through "prefer a question", given here from the issue's label)."""
    kinds = {"bug": "bug", "feature": "idea", "question": "question"}
    rows = [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]
    ours = first = 0.0
    for r in rows:
        body = r.get("body") or ""
        ours += rouge_l(title_and_summary(body, kinds.get(r["label"], "idea"))[0], r["title"])
        first += rouge_l((sentences(slack_to_text(body)) or [""])[0][:120], r["title"])
    print(
        f"{len(rows)} issues: titles from the body vs the authors' titles, ROUGE-L F1 "
        f"{ours / len(rows):.3f} (first sentence: {first / len(rows):.3f})"
    )


def main(argv: list[str] | None = None) -> None:
    """Runs the analyzer on the posts and prints the report."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=ROOT / "bench" / "data" / "slack_posts.jsonl")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument(
        "--issues",
        type=Path,
        help="also: titles made from the bodies of these issues (issue-kinds/dev.jsonl) against "
        "the titles their authors wrote",
    )
    args = ap.parse_args(argv)
    if args.issues:
        issue_titles(args.issues)
    rows = [json.loads(line) for line in args.data.open(encoding="utf-8") if line.strip()]
    analyzer = OfflineAnalyzer(OnnxEmbedder())
    out = analyzer.analyze_many([Post(id=str(i), text=r["text"]) for i, r in enumerate(rows)])
    gold = [r["kind"] for r in rows]
    pred = [a.kind for a in out]
    first = [(sentences(slack_to_text(r["text"])) or [""])[0][:120] for r in rows]
    r_ours = [rouge_l(a.title, r["title"]) for a, r in zip(out, rows, strict=True)]
    r_first = [rouge_l(f, r["title"]) for f, r in zip(first, rows, strict=True)]
    hits = got = want = found = 0
    for a, r in zip(out, rows, strict=True):
        got += len(a.labels)
        want += len(r["labels"])
        hits += sum(any(label_match(x, y) for y in r["labels"]) for x in a.labels)
        found += sum(any(label_match(x, y) for x in a.labels) for y in r["labels"])
    n = len(rows)
    acc = sum(g == p for g, p in zip(gold, pred, strict=True)) / n
    notes = [i for i, g in enumerate(gold) if g == "other"]
    print(f"{n} Slack-style posts ({len(notes)} notes/announcements), offline analyzer, cold")
    print(f"  kinds: accuracy {acc:.3f}, macro-F1 (bug/idea/question/other) "
          f"{macro_f1(gold, pred, KINDS4):.3f}; notes/announcements called other: "
          f"{sum(pred[i] == 'other' for i in notes)}/{len(notes)}")  # fmt: skip
    print(f"  titles: ROUGE-L F1 {sum(r_ours) / n:.3f} (first sentence: {sum(r_first) / n:.3f})")
    p = hits / got if got else 0.0
    r = found / want if want else 0.0
    print(f"  labels: precision {p:.3f}, recall {r:.3f} ({got} given, {want} expected)")
    if args.verbose:
        for a, row in zip(out, rows, strict=True):
            print(f"  [{row['kind']:>8} -> {a.kind:<8}] {a.title!r} | {row['title']!r}")
            print(f"      labels {list(a.labels)} | {row['labels']}")


if __name__ == "__main__":
    main()
