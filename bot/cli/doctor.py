"""``doctor``: check the configuration and every configured outside service, one line each."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.config import Settings


def doctor(args: argparse.Namespace, settings: Settings) -> int:
    """Prints one line per part; exits 1 when a configured part fails its check.

    Nothing here prints a credential (URLs are redacted) or a traceback: a part that is down
    is one line saying so, and the next part is still checked.
    """
    from bot.bootstrap import bootstrap
    from bot.config import redact_url

    print(f"state: {redact_url(settings.sqlalchemy_url)}")
    try:
        bot = bootstrap(settings)
    except Exception as exc:  # doctor reports, never crashes
        print(f"state: FAILED ({_reason(exc)})")
        return 1
    ok = True
    a = bot.adapters
    print(f"index: {type(a.index).__name__} with {bot.catalogue.count()} tickets")
    print(f"analyzer: {a.analyzer.name}")
    _print_flags(a.flags)
    if a.tracker is not None:
        try:
            types = a.tracker.issue_types()
            print(f"jira: {settings.jira_project} issue types {', '.join(types)}")
            for problem in bot.issue_type_problems():
                ok = False
                print(f"jira: FAILED ({problem})")
        except Exception as exc:
            ok = False
            print(f"jira: FAILED ({_reason(exc)})")
    else:
        print("jira: not configured")
    if a.chat is None:
        print("slack: not configured")
    else:
        try:
            bot.channels.resolve(a.chat)
            wanted = len(bot.channels.configured)
            print(f"slack: configured; {len(bot.channels.ids)} of {wanted} idea channels found")
            if len(bot.channels.ids) < wanted:
                ok = False
        except Exception as exc:
            ok = False
            print(f"slack: FAILED ({_reason(exc)})")
    return 0 if ok else 1


def _print_flags(flags: object) -> None:
    """One line per feature flag: its value without a channel or user, and where it comes from."""
    from bot.domain.flags import DescribedFlags

    if not isinstance(flags, DescribedFlags):
        print(f"flags: {type(flags).__name__}")
        return
    print(f"flags: {flags.source}")
    for state in flags.describe():
        print(f"flag {state.key}: {'on' if state.value else 'off'} ({state.reason})")


def _reason(exc: Exception) -> str:
    from bot.config import redact_text

    first = str(exc).splitlines()[0] if str(exc) else ""
    return redact_text(f"{type(exc).__name__}: {first[:200]}" if first else type(exc).__name__)


def register(sub: Any) -> None:
    """Adds ``doctor`` to the sub-command parsers *sub*."""
    s = sub.add_parser("doctor", help="check the configuration and the outside services")
    s.set_defaults(func=doctor)
