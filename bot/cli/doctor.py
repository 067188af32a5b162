"""``doctor``: check the configuration and every configured outside service, one line each."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.config import Settings


def doctor(args: argparse.Namespace, settings: Settings) -> int:
    """Prints one line per part; exits 1 when a configured service fails its check."""
    from bot.bootstrap import bootstrap

    services = bootstrap(settings)
    ok = True
    print(f"state: {settings.sqlalchemy_url.split('@')[-1]}")
    print(f"index: {type(services.index).__name__} with {services.index.count()} tickets")
    print(f"analyzer: {services.analyzer.name}")
    if services.tracker is not None:
        try:
            types = services.tracker.issue_types()
            print(f"jira: {settings.jira_project} issue types {', '.join(types)}")
        except Exception as exc:  # doctor reports every failure, never crashes
            ok = False
            print(f"jira: FAILED ({type(exc).__name__}: {exc})")
    else:
        print("jira: not configured")
    print(f"slack: {'configured' if services.slack_client is not None else 'not configured'}")
    return 0 if ok else 1


def register(sub: Any) -> None:
    """Adds ``doctor`` to the sub-command parsers *sub*."""
    s = sub.add_parser("doctor", help="check the configuration and the outside services")
    s.set_defaults(func=doctor)
