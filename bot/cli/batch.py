"""The batch commands: ``triage``, ``index``, ``similar`` and ``demo``.

Output keys and exit codes are the README's contract ("The batch command line").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.cli.io import (
    InputError,
    open_out,
    progress,
    read_jsonl,
    read_queries,
    write_jsonl,
)

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.domain.models import Ticket

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"


def parse_ticket(obj: dict[str, Any], n: int) -> Ticket:
    """One `index` input line -> Ticket; raises ValueError naming line *n*."""
    from bot.domain.models import Ticket

    key, title = obj.get("key"), obj.get("title")
    if not isinstance(key, str) or not key.strip():
        raise ValueError(f'line {n}: "key" must be a non-empty string')
    if not isinstance(title, str):
        raise ValueError(f'line {n}: "title" must be a string')
    desc = obj.get("description") or ""
    return Ticket(
        key=key.strip(),
        title=title,
        description=str(desc),
        type=obj.get("type") or None,
        url=obj.get("url") or None,
        status=obj.get("status") or None,
    )


def triage(args: argparse.Namespace, settings: Settings) -> int:
    """Classifies and summarises each post; one output line per input line, in order."""
    from bot.bootstrap import bootstrap
    from bot.domain.models import Post

    services = bootstrap(settings)
    rows = read_queries(args.input)
    chunks = [rows[start : start + args.batch] for start in range(0, len(rows), args.batch)]
    batches = (
        [Post(id=r.id or "", text=r.text) for r in chunk if r.text is not None] for chunk in chunks
    )
    # The next chunk's embeddings are computed while this one is searched and written.
    with open_out(args.output) as out:
        for chunk, triaged in zip(chunks, services.triager.triage_stream(batches), strict=True):
            verdicts = iter(triaged)
            for r in chunk:
                if r.text is None:
                    write_jsonl(out, {"id": r.id, "error": r.error})
                else:
                    write_jsonl(out, next(verdicts).to_json(r.id or ""))
    return 0


def index(args: argparse.Namespace, settings: Settings) -> int:
    """Upserts the tickets into the index; a summary goes to standard error."""
    from bot.bootstrap import bootstrap

    services = bootstrap(settings)
    tickets = []
    errors = 0
    for n, obj, err in read_jsonl(args.input):
        if err or obj is None:
            print(f"skipped: {err}", file=sys.stderr)
            errors += 1
            continue
        try:
            tickets.append(parse_ticket(obj, n))
        except ValueError as exc:
            print(f"skipped: {exc}", file=sys.stderr)
            errors += 1
    if not tickets:
        raise InputError("no valid ticket lines" if errors else "no input lines")
    # Later lines win when a key repeats, as an upsert would.
    unique = list({t.key: t for t in tickets}.values())
    written = 0
    with progress(len(unique), "indexing") as bar:
        for start in range(0, len(unique), args.batch):
            chunk = unique[start : start + args.batch]
            written += services.catalogue.add(chunk)
            bar.update(len(chunk))
    print(
        f"indexed {len(unique)} tickets ({written} new or changed, {errors} lines skipped); "
        f"index holds {services.catalogue.count()}",
        file=sys.stderr,
    )
    return 0


def similar(args: argparse.Namespace, settings: Settings) -> int:
    """The indexed tickets closest to each query, best first."""
    from bot.bootstrap import bootstrap

    services = bootstrap(settings)
    rows = read_queries(args.input)
    texts = [r.text for r in rows if r.text is not None]
    found = iter(services.catalogue.similar(texts, top_k=args.top_k)) if texts else iter(())
    with open_out(args.output) as out:
        for r in rows:
            if r.text is None:
                write_jsonl(out, {"id": r.id, "error": r.error})
                continue
            matches = [{"key": m.key, "score": round(m.score, 4)} for m in next(found)]
            write_jsonl(out, {"id": r.id, "matches": matches})
    return 0


def demo_settings(args: argparse.Namespace) -> Settings:
    """The demo's settings: its own data dir, and no LLM, Pinecone, Jira or `.env`."""
    import tempfile

    from bot.config import load_settings

    data_dir = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="ideabot-"))
    # The demo never touches the real state or a paid service, whatever the environment says.
    return load_settings(
        bot_data_dir=data_dir,
        database_url=None,
        llm_model=None,
        pinecone_api_key=None,
        jira_url=None,
        jira_email=None,
        jira_api_token=None,
        jira_project=None,
        _env_file=None,
    )


def demo(args: argparse.Namespace, settings: Settings) -> int:
    """Triages the bundled sample posts against the bundled sample tickets; prints a table."""
    from bot.bootstrap import bootstrap
    from bot.domain.models import Post

    services = bootstrap(settings)
    tickets = [
        parse_ticket(o, n)
        for n, o, _ in read_jsonl(str(EXAMPLES_DIR / "demo_tickets.jsonl"))
        if o is not None
    ]
    services.catalogue.add(tickets)
    posts = [
        Post(id=o["id"], text=o["text"])
        for _, o, _ in read_jsonl(str(EXAMPLES_DIR / "demo_posts.jsonl"))
        if o is not None
    ]
    verdicts = services.triager.triage_many(posts)
    print(f"ideabot demo: {len(posts)} Slack-style posts against {len(tickets)} existing tickets")
    print(f"(offline analyzer, local index in {settings.bot_data_dir})\n")
    header = f"{'post':<5} {'kind':<9} {'conf':>4}  {'title':<58} similar tickets"
    print(header)
    print("-" * len(header) + "-" * 20)
    for post, v in zip(posts, verdicts, strict=True):
        title = v.title if len(v.title) <= 58 else v.title[:57] + "…"
        sims = ", ".join(f"{m.key} {m.score:.2f}" for m in v.similar) or "-"
        if v.likely_duplicate:
            sims += "  (likely duplicate)"
        print(f"{post.id:<5} {v.kind:<9} {v.confidence:>4.2f}  {title:<58} {sims}")
    return 0


def register(sub: Any) -> None:
    """Adds ``demo``, ``triage``, ``index`` and ``similar`` to the sub-command parsers *sub*."""
    s = sub.add_parser("demo", help="triage bundled sample posts against bundled sample tickets")
    s.add_argument("--data-dir", help="keep the demo's state here (default: a temporary folder)")
    s.set_defaults(func=demo, load_settings=demo_settings)

    s = sub.add_parser("triage", help="classify and summarise posts from a JSONL file")
    s.add_argument("--input", required=True, help='JSONL of {"id", "text"}; - for stdin')
    s.add_argument("--output", help="write JSONL here instead of stdout")
    s.add_argument("--batch", type=int, default=64, help=argparse.SUPPRESS)
    s.set_defaults(func=triage)

    s = sub.add_parser("index", help="upsert tickets from a JSONL file into the index")
    s.add_argument("--input", required=True, help='JSONL of {"key", "title", "description", ...}')
    s.add_argument("--batch", type=int, default=256, help=argparse.SUPPRESS)
    s.set_defaults(func=index)

    s = sub.add_parser("similar", help="find the indexed tickets closest to each query")
    s.add_argument("--input", required=True, help='JSONL of {"id", "text"}; - for stdin')
    s.add_argument("--top-k", type=int, default=10)
    s.add_argument("--output", help="write JSONL here instead of stdout")
    s.set_defaults(func=similar)
