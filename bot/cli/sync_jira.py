"""``sync-jira``: index the Jira project's issues, incrementally from the stored cursor."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from bot.cli.io import progress

if TYPE_CHECKING:
    from bot.config import Settings


def sync_jira(args: argparse.Namespace, settings: Settings) -> int:
    """Reads the project's issues into the index; a summary goes to standard error."""
    from bot.bootstrap import bootstrap

    sync = bootstrap(settings).sync
    if sync is None:
        print("error: JIRA_URL, JIRA_API_TOKEN and JIRA_PROJECT must be set", file=sys.stderr)
        return 2
    with progress(None, "syncing") as bar:
        result = sync.sync(narrow=args.jql, full=args.full, progress=bar.update)
    print(
        f"synced {result.seen} issues ({result.upserted} new or changed) in {result.pages} pages",
        file=sys.stderr,
    )
    return 0


def register(sub: Any) -> None:
    """Adds ``sync-jira`` to the sub-command parsers *sub*."""
    s = sub.add_parser("sync-jira", help="index the Jira project's issues (incremental)")
    s.add_argument("--jql", help="extra JQL to narrow the issues synced (default JIRA_SYNC_JQL)")
    s.add_argument("--full", action="store_true", help="ignore the cursor and re-read everything")
    s.set_defaults(func=sync_jira)
