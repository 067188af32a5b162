"""``digest meetings|takeaways``: run, preview (``--dry-run``) or re-run (``--force``) a digest.

Exit codes: 0 posted, already posted, or previewed; 1 the post failed or another worker holds
the claim; 2 usage errors (no channel, bad date).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.bootstrap import Bot
    from bot.config import Settings

# The same names as bot.domain.digests.DIGEST_KINDS (a test keeps them equal): importing the
# domain here would load pydantic for every `--help`.
DIGEST_CHOICES = ("meetings", "takeaways")


def parse_day(raw: str) -> date:
    """YYYY-MM-DD -> date (argparse type)."""
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {raw!r}") from None


def run_digest(
    args: argparse.Namespace,
    services: Bot,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
) -> int:
    """Runs the ``digest`` command for parsed *args* on *services*; returns the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    kind = args.which
    channel = args.channel or services.settings.digest_channel
    if not channel:
        print("error: no channel: set DIGEST_CHANNEL or pass --channel", file=err)
        return 2
    day: date | None = args.date

    result = services.digests.run(kind, channel, day, dry_run=args.dry_run, force=args.force)
    label = f"{kind} digest for {result.day.isoformat()} in {channel}"
    if result.status == "dry_run":
        assert result.rendered is not None
        if args.json:
            payload = {
                "channel": channel,
                "text": result.rendered.summary,
                "blocks": result.rendered.blocks,
            }
            print(json.dumps(payload, indent=2, ensure_ascii=False), file=out)
        else:
            print(result.rendered.text, file=out)
        print(f"(dry run: {label} not posted)", file=err)
        return 0
    if result.status == "posted":
        print(f"posted {label} (ts {result.message_ts})", file=err)
        return 0
    if result.status == "already_posted":
        print(
            f"{label} was already posted (ts {result.message_ts}); use --force to post it again",
            file=err,
        )
        return 0
    if result.status == "skipped":
        print(f"{label} not posted: {result.error}", file=err)
        return 0
    if result.status == "in_progress":
        print(f"{label} is being posted by another process right now", file=err)
        return 1
    print(f"error: {label} was not posted: {result.error}", file=err)
    return 1


def digest(args: argparse.Namespace, settings: Settings) -> int:
    """The ``digest`` command: wires the services for *settings* and runs it."""
    from bot.bootstrap import bootstrap

    return run_digest(args, bootstrap(settings))


def register(sub: Any) -> None:
    """Adds ``digest`` to the sub-command parsers *sub*."""
    s = sub.add_parser("digest", help="run, preview or re-run a daily digest")
    s.add_argument("which", choices=DIGEST_CHOICES)
    s.add_argument("--channel", help="post here instead of DIGEST_CHANNEL")
    s.add_argument("--date", type=parse_day, help="YYYY-MM-DD (default: today in DIGEST_TIMEZONE)")
    s.add_argument("--dry-run", action="store_true", help="print the message, post nothing")
    s.add_argument("--json", action="store_true", help="with --dry-run: print Block Kit JSON")
    s.add_argument("--force", action="store_true", help="post even if already posted")
    s.set_defaults(func=digest)
