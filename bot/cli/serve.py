"""``serve``: run the Slack bot over Socket Mode, or Slack's HTTP endpoint with ``--http``."""

from __future__ import annotations

import argparse
import re
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.config import Settings


def serve(args: argparse.Namespace, settings: Settings) -> int:
    """Serves until stopped; exits 1 with one line if Slack refuses the token or is unreachable."""
    from bot.config import ConfigError

    if settings.slack_bot_token is None:
        raise ConfigError("SLACK_BOT_TOKEN: required to serve (the bot token, xoxb-...)")
    from slack_bolt.error import BoltError
    from slack_sdk.errors import SlackApiError

    from bot.bootstrap import bootstrap
    from bot.slack.server import serve as run_server

    try:
        run_server(bootstrap(settings), http=args.http, port=args.port, host=args.host)
    except SlackApiError as exc:
        # Bolt checks the token with auth.test at start-up; say which setting is wrong.
        error = exc.response.get("error", "unknown_error") if exc.response else "unknown_error"
        print(f"error: Slack refused SLACK_BOT_TOKEN at start-up ({error})", file=sys.stderr)
        return 1
    except BoltError as exc:
        # Bolt wraps the auth.test failure in its own error; the Slack error code is in the text.
        m = re.search(r"'error': '([a-z_]+)'", str(exc))
        error = m.group(1) if m else type(exc).__name__
        print(f"error: Slack refused SLACK_BOT_TOKEN at start-up ({error})", file=sys.stderr)
        return 1
    except OSError as exc:
        reason = getattr(exc, "reason", None) or exc
        print(f"error: cannot reach Slack at start-up: {reason}", file=sys.stderr)
        return 1
    return 0


def register(sub: Any) -> None:
    """Adds ``serve`` to the sub-command parsers *sub*."""
    s = sub.add_parser("serve", help="run the Slack bot (Socket Mode, or --http)")
    s.add_argument("--http", action="store_true", help="serve Slack's HTTP endpoint instead")
    s.add_argument("--port", type=int, default=3000)
    s.add_argument("--host", default="0.0.0.0")
    s.set_defaults(func=serve)
