"""Command line: ``python -m bot`` / ``ideabot``.

Heavy libraries (onnxruntime, LangChain, Bolt) are imported inside the commands that need them,
so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.bootstrap import Bot
    from bot.config import Settings

logger = logging.getLogger("bot")

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"


# --------------------------------------------------------------------------- helpers


class InputError(Exception):
    """The input file could not be read at all."""


def _open_in(path: str) -> IO[str]:
    if path == "-":
        return sys.stdin
    try:
        return open(path, encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None


def _open_out(path: str | None) -> IO[str]:
    if not path or path == "-":
        return sys.stdout
    return open(path, "w", encoding="utf-8")


def read_jsonl(path: str) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """Yields (line number, object or None, error or None) for each non-blank line."""
    with _open_in(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                yield n, None, f"line {n}: invalid JSON ({exc.msg})"
                continue
            if not isinstance(obj, dict):
                yield n, None, f"line {n}: expected a JSON object"
                continue
            yield n, obj, None


def _write(out: IO[str], obj: dict[str, Any]) -> None:
    out.write(json.dumps(obj, ensure_ascii=False) + "\n")


def _progress(total: int | None, desc: str) -> Any:
    from tqdm import tqdm

    # A progress bar only on a terminal: scripts reading stderr get no carriage-return noise.
    return tqdm(total=total, desc=desc, unit="ticket", disable=not sys.stderr.isatty())


def _settings() -> Settings:
    from bot.config import load_settings

    return load_settings()


def _services(settings: Settings | None = None, **overrides: Any) -> Bot:
    from bot.bootstrap import bootstrap

    return bootstrap(settings or _settings(), **overrides)


# --------------------------------------------------------------------------- commands


@dataclass(frozen=True)
class QueryRow:
    """One input line of `triage` or `similar`: a text to work on, or why there is none."""

    id: str | None
    text: str | None
    error: str | None = None


def read_queries(path: str) -> list[QueryRow]:
    """Reads `{"id", "text"}` lines; raises InputError when nothing could be read."""
    rows: list[QueryRow] = []
    for n, obj, err in read_jsonl(path):
        if err or obj is None:
            rows.append(QueryRow(None, None, err))
            continue
        pid = obj.get("id")
        pid = str(n) if pid is None else str(pid)
        text = obj.get("text")
        if not isinstance(text, str):
            rows.append(QueryRow(pid, None, f'line {n}: "text" must be a string'))
            continue
        rows.append(QueryRow(pid, text))
    if not rows:
        raise InputError("no input lines")
    return rows


def cmd_triage(args: argparse.Namespace) -> int:
    from bot.domain.models import Post

    services = _services()
    rows = read_queries(args.input)
    with _open_out(args.output) as out:
        for start in range(0, len(rows), args.batch):
            chunk = rows[start : start + args.batch]
            posts = [Post(id=r.id or "", text=r.text) for r in chunk if r.text is not None]
            verdicts = iter(services.triager.triage_many(posts)) if posts else iter(())
            for r in chunk:
                if r.text is None:
                    _write(out, {"id": r.id, "error": r.error})
                else:
                    _write(out, next(verdicts).to_json(r.id or ""))
    return 0


def _parse_ticket(obj: dict[str, Any], n: int) -> Any:
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


def cmd_index(args: argparse.Namespace) -> int:
    services = _services()
    tickets = []
    errors = 0
    for n, obj, err in read_jsonl(args.input):
        if err or obj is None:
            print(f"skipped: {err}", file=sys.stderr)
            errors += 1
            continue
        try:
            tickets.append(_parse_ticket(obj, n))
        except ValueError as exc:
            print(f"skipped: {exc}", file=sys.stderr)
            errors += 1
    if not tickets:
        raise InputError("no valid ticket lines" if errors else "no input lines")
    # Later lines win when a key repeats, as an upsert would.
    unique = list({t.key: t for t in tickets}.values())
    written = 0
    with _progress(len(unique), "indexing") as bar:
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


def cmd_similar(args: argparse.Namespace) -> int:
    services = _services()
    rows = read_queries(args.input)
    texts = [r.text for r in rows if r.text is not None]
    found = iter(services.catalogue.similar(texts, top_k=args.top_k)) if texts else iter(())
    with _open_out(args.output) as out:
        for r in rows:
            if r.text is None:
                _write(out, {"id": r.id, "error": r.error})
                continue
            found_for = next(found)
            _write(
                out,
                {
                    "id": r.id,
                    "matches": [{"key": m.key, "score": round(m.score, 4)} for m in found_for],
                },
            )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import tempfile

    from bot.config import load_settings
    from bot.domain.models import Post

    data_dir = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="ideabot-"))
    # The demo never touches the real state: its own data dir, and no LLM, Pinecone or Jira.
    settings = load_settings(
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
    services = _services(settings)
    tickets = [
        _parse_ticket(o, n)
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
    print(f"(offline analyzer, local index in {data_dir})\n")
    header = f"{'post':<5} {'kind':<9} {'conf':>4}  {'title':<58} similar tickets"
    print(header)
    print("-" * len(header) + "-" * 20)
    for post, v in zip(posts, verdicts, strict=True):
        title = v.title if len(v.title) <= 58 else v.title[:57] + "…"
        sims = ", ".join(f"{m.key} {m.score:.2f}" for m in v.duplicates) or "-"
        if v.likely_duplicate:
            sims += "  (likely duplicate)"
        print(f"{post.id:<5} {v.kind:<9} {v.confidence:>4.2f}  {title:<58} {sims}")
    return 0


def cmd_sync_jira(args: argparse.Namespace) -> int:
    services = _services()
    sync = services.sync
    if sync is None:
        print("error: JIRA_URL, JIRA_API_TOKEN and JIRA_PROJECT must be set", file=sys.stderr)
        return 2
    with _progress(None, "syncing") as bar:
        result = sync.sync(narrow=args.jql, full=args.full, progress=bar.update)
    print(
        f"synced {result.seen} issues ({result.upserted} new or changed) in {result.pages} pages",
        file=sys.stderr,
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from bot.config import ConfigError

    settings = _settings()
    if settings.slack_bot_token is None:
        raise ConfigError("SLACK_BOT_TOKEN: required to serve (the bot token, xoxb-...)")
    import re

    from slack_bolt.error import BoltError
    from slack_sdk.errors import SlackApiError

    from bot.slack.server import serve

    try:
        serve(_services(settings), http=args.http, port=args.port, host=args.host)
    except SlackApiError as exc:
        # Bolt checks the token with auth.test at start-up; say which setting is wrong.
        error = exc.response.get("error", "unknown_error") if exc.response else "unknown_error"
        print(f"error: Slack refused SLACK_BOT_TOKEN at start-up ({error})", file=sys.stderr)
        return 1
    except BoltError as exc:
        m = re.search(r"'error': '([a-z_]+)'", str(exc))
        error = m.group(1) if m else type(exc).__name__
        print(f"error: Slack refused SLACK_BOT_TOKEN at start-up ({error})", file=sys.stderr)
        return 1
    except OSError as exc:
        reason = getattr(exc, "reason", None) or exc
        print(f"error: cannot reach Slack at start-up: {reason}", file=sys.stderr)
        return 1
    return 0


def cmd_digest(args: argparse.Namespace) -> int:
    from bot.cli_digest import run_digest_command

    return run_digest_command(args, _services())


def cmd_doctor(args: argparse.Namespace) -> int:
    """Checks the configuration and every configured outside service, one line each."""
    settings = _settings()
    services = _services(settings)
    ok = True
    print(f"state: {settings.sqlalchemy_url.split('@')[-1]}")
    a = services.adapters
    print(f"index: {type(a.index).__name__} with {services.catalogue.count()} tickets")
    print(f"analyzer: {a.analyzer.name}")
    if a.tracker is not None:
        try:
            types = a.tracker.issue_types()
            print(f"jira: {settings.jira_project} issue types {', '.join(types)}")
        except Exception as exc:  # doctor reports every failure, never crashes
            ok = False
            print(f"jira: FAILED ({type(exc).__name__}: {exc})")
    else:
        print("jira: not configured")
    print(f"slack: {'configured' if a.slack_client is not None else 'not configured'}")
    return 0 if ok else 1


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ideabot",
        description="Turns Slack idea posts into de-duplicated Jira tickets, with daily digests.",
    )
    p.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING or ERROR")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("demo", help="triage bundled sample posts against bundled sample tickets")
    s.add_argument("--data-dir", help="keep the demo's state here (default: a temporary folder)")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("triage", help="classify and summarise posts from a JSONL file")
    s.add_argument("--input", required=True, help='JSONL of {"id", "text"}; - for stdin')
    s.add_argument("--output", help="write JSONL here instead of stdout")
    s.add_argument("--batch", type=int, default=64, help=argparse.SUPPRESS)
    s.set_defaults(func=cmd_triage)

    s = sub.add_parser("index", help="upsert tickets from a JSONL file into the index")
    s.add_argument("--input", required=True, help='JSONL of {"key", "title", "description", ...}')
    s.add_argument("--batch", type=int, default=256, help=argparse.SUPPRESS)
    s.set_defaults(func=cmd_index)

    s = sub.add_parser("similar", help="find the indexed tickets closest to each query")
    s.add_argument("--input", required=True, help='JSONL of {"id", "text"}; - for stdin')
    s.add_argument("--top-k", type=int, default=10)
    s.add_argument("--output", help="write JSONL here instead of stdout")
    s.set_defaults(func=cmd_similar)

    s = sub.add_parser("sync-jira", help="index the Jira project's issues (incremental)")
    s.add_argument("--jql", help="extra JQL to narrow the issues synced")
    s.add_argument("--full", action="store_true", help="ignore the cursor and re-read everything")
    s.set_defaults(func=cmd_sync_jira)

    s = sub.add_parser("serve", help="run the Slack bot (Socket Mode, or --http)")
    s.add_argument("--http", action="store_true", help="serve Slack's HTTP endpoint instead")
    s.add_argument("--port", type=int, default=3000)
    s.add_argument("--host", default="0.0.0.0")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("digest", help="run, preview or re-run a daily digest")
    s.add_argument("which", choices=["meetings", "takeaways"])
    s.add_argument("--channel", help="post here instead of DIGEST_CHANNEL")
    s.add_argument("--date", help="YYYY-MM-DD (default: today in DIGEST_TIMEZONE)")
    s.add_argument("--dry-run", action="store_true", help="print the message, post nothing")
    s.add_argument("--json", action="store_true", help="with --dry-run: print Block Kit JSON")
    s.add_argument("--force", action="store_true", help="post even if already posted")
    s.set_defaults(func=cmd_digest)

    s = sub.add_parser("doctor", help="check the configuration and the outside services")
    s.set_defaults(func=cmd_doctor)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from bot.config import ConfigError

    level = args.log_level
    if level is None:
        import os

        level = os.environ.get("LOG_LEVEL", "INFO")
    logging.basicConfig(
        level=getattr(logging, str(level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
