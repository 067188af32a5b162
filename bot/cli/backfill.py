"""``backfill``: triage a Slack workspace export, one JSON line per post; file what was wanted.

    python -m bot backfill --slack-export export.zip [--channels ideas,#product] \\
        [--since 2025-01-01] [--output report.jsonl] [--file-min-votes 3 [--yes]]

Filing goes through the live bot's exactly-once claims (same database, same key per message), so
re-running files nothing new, and neither does a later reaction on a filed post.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from typing import TYPE_CHECKING, Any

from bot.cli.io import open_out, write_jsonl

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.service.backfill import BackfillLine


def _since(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {value!r}") from None


def _channels(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [c for v in values for c in v.split(",") if c.strip()]


def report_line(line: BackfillLine) -> dict[str, Any]:
    """The report's JSON line for one post (a stable contract, see the README)."""
    t = line.triage
    return {
        "channel": line.post.channel,
        "channel_name": line.post.channel_name,
        "ts": line.post.ts,
        "user": line.post.user,
        "kind": t.kind,
        "title": t.title,
        "votes": line.post.votes,
        "replies": len(line.post.replies),
        "similar": [
            {"key": m.key, "title": m.title, "score": round(m.score, 4), "url": m.url}
            for m in t.similar
        ],
        "likely_duplicate": t.likely_duplicate,
        "permalink": line.permalink,
        "action": line.action,
        "key": line.key,
    }


class _Progress:
    """A one-line progress note on standard error, only when it is a terminal."""

    def __init__(self) -> None:
        self.on = sys.stderr.isatty()
        self.posts = 0
        self.filed = 0
        self.where = ""
        self._last = 0.0

    def day(self, channel: str, day: date) -> None:
        self.where = f"#{channel} {day.isoformat()}"
        self.show()

    def post(self, filed: bool) -> None:
        self.posts += 1
        self.filed += int(filed)
        self.show()

    def show(self, final: bool = False) -> None:
        now = time.monotonic()
        if not self.on or (not final and now - self._last < 0.2):
            return
        self._last = now
        end = "\n" if final else ""
        note = f"backfill: {self.posts} posts, {self.filed} filed · {self.where}"
        sys.stderr.write(f"\r{note}\x1b[K{end}")
        sys.stderr.flush()


def backfill(args: argparse.Namespace, settings: Settings) -> int:
    """Reads the export, triages each post, writes the report; files with --file-min-votes."""
    from bot.adapters.slack_export import SlackExport
    from bot.bootstrap import bootstrap
    from bot.domain.backfill import ExportError

    if args.yes and args.file_min_votes is None:
        print("error: --yes files ideas only with --file-min-votes N", file=sys.stderr)
        return 2
    try:
        export = SlackExport(args.slack_export, window_days=args.thread_window_days)
        channels = export.select(_channels(args.channels))
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with export:
        bot = bootstrap(settings)
        if args.file_min_votes is not None and args.yes and not bot.filer.configured:
            print("error: filing needs JIRA_URL, JIRA_API_TOKEN and JIRA_PROJECT", file=sys.stderr)
            return 2
        from bot.service.backfill import Backfill

        run = Backfill(
            triager=bot.triager,
            filer=_quiet(bot.filer),
            store=bot.adapters.store,
            limits=bot.file_message.thread_limits if bot.file_message else _limits(settings),
        )
        base = args.workspace_url or _workspace_url(bot)
        progress = _Progress()
        counts: dict[str, int] = {}
        with open_out(args.output) as out:
            lines = run.run(
                export.posts(channels, since=args.since, on_day=progress.day),
                export.people,
                lambda channel, ts: _permalink(base, channel, ts),
                min_votes=args.file_min_votes,
                apply=args.yes,
            )
            for line in lines:
                write_jsonl(out, report_line(line))
                counts[line.action] = counts.get(line.action, 0) + 1
                progress.post(line.action == "filed")
        progress.show(final=True)
    stats = export.stats
    summary = ", ".join(f"{n} {a}" for a, n in sorted(counts.items())) or "no posts"
    dry = args.file_min_votes is not None and not args.yes
    print(
        f"backfill: {stats.posts} posts in {stats.channels} channels over {stats.days} days "
        f"({summary}){'; dry run: add --yes to file' if dry else ''}",
        file=sys.stderr,
    )
    if stats.bad_files:
        print(
            f"error: {len(stats.bad_files)} day files could not be read: "
            + ", ".join(stats.bad_files[:5]),
            file=sys.stderr,
        )
        return 1
    return 0


def _quiet(filer: Any) -> Any:
    """The filer, telling its outcomes to the log: posting in years-old threads would surprise."""
    import dataclasses

    from bot.bootstrap import LogNotifier

    return dataclasses.replace(filer, notifier=LogNotifier())


def _limits(settings: Settings) -> Any:
    from bot.domain.threads import ThreadLimits

    return ThreadLimits(replies=settings.thread_context_replies)


def _workspace_url(bot: Any) -> str | None:
    """The workspace's URL from Slack (``auth.test``) when a bot token is set, for permalinks."""
    client = bot.adapters.slack_client
    if client is None:
        return None
    try:
        return str(client.auth_test()["url"])
    except Exception as exc:  # a report without permalinks is still a report
        print(f"warning: could not ask Slack for the workspace URL: {exc}", file=sys.stderr)
        return None


def _permalink(base: str | None, channel: str, ts: str) -> str | None:
    # Slack's permalink shape: /archives/<channel>/p<ts without its dot>.
    if not base or not base.startswith(("https://", "http://")):
        return None
    return f"{base.rstrip('/')}/archives/{channel}/p{ts.replace('.', '')}"


def register(sub: Any) -> None:
    """Adds ``backfill`` to the sub-command parsers *sub*."""
    s = sub.add_parser(
        "backfill",
        help="triage a Slack workspace export (one JSON line per post); file the most wanted",
    )
    s.add_argument("--slack-export", required=True, metavar="ZIP", help="the export's zip file")
    s.add_argument(
        "--channels",
        action="append",
        metavar="NAMES",
        help="channels to read (names or ids, comma-separated; default: all in the export)",
    )
    s.add_argument("--since", type=_since, metavar="YYYY-MM-DD", help="skip posts before this day")
    s.add_argument("--output", "-o", help="write the report here (default: standard output)")
    s.add_argument(
        "--file-min-votes",
        type=int,
        metavar="N",
        help="file ideas with at least N votes (people who reacted or replied); a dry run "
        "unless --yes",
    )
    s.add_argument("--yes", action="store_true", help="really file (with --file-min-votes)")
    s.add_argument(
        "--workspace-url",
        metavar="URL",
        help="https://<workspace>.slack.com for permalinks (default: asked from Slack)",
    )
    s.add_argument(
        "--thread-window-days",
        type=int,
        default=30,
        metavar="DAYS",
        help="how long after a post its thread's replies are still attached (default 30)",
    )
    s.set_defaults(func=backfill)
