"""The command line: ``python -m bot`` / ``ideabot``. One module per command group.

Each command module has a ``register(sub)`` that adds its sub-commands; each command is a
function ``(args, settings) -> exit code``. :func:`main` parses the arguments, loads the settings
once (a command may bring its own loader, as ``demo`` does), configures logging from them and runs
the command. Heavy libraries (onnxruntime, LangChain, Bolt, even pydantic) are imported inside the
commands, so ``--help`` stays fast and needs no valid settings.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from bot.cli import backfill, batch, digest, doctor, serve, sync_jira
from bot.cli.io import InputError

# The same names as bot.config.LOG_LEVELS (a test keeps them equal); importing the settings
# module here would load pydantic for every `--help`.
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def build_parser() -> argparse.ArgumentParser:
    """The ``ideabot`` argument parser with every sub-command."""
    p = argparse.ArgumentParser(
        prog="ideabot",
        description="Turns Slack idea posts into de-duplicated Jira tickets, with daily digests.",
    )
    p.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default=None,
        metavar="LEVEL",
        help="DEBUG, INFO, WARNING or ERROR (default: the LOG_LEVEL setting)",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (batch, sync_jira, backfill, serve, digest, doctor):
        module.register(sub)
    return p


def configure_logging(level: str, fmt: str = "text") -> None:
    """Log records at *level* and above go to standard error, one line each: ``text`` for people,
    ``json`` for machines (see ``bot.observability.logs``); both redact secrets."""
    from bot.observability.logs import configure

    configure(level, "json" if fmt == "json" else "text", sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    from bot.config import ConfigError, load_settings, redact_text

    try:
        loader = getattr(args, "load_settings", None)
        settings = loader(args) if loader is not None else load_settings()
        configure_logging(args.log_level or settings.log_level, settings.log_format)
        return int(args.func(args, settings))
    except ConfigError as exc:
        print(f"configuration error: {redact_text(str(exc))}", file=sys.stderr)
        return 2
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception:
        # Through the (redacting) log rather than Python's own hook, which would print the
        # exception's text as it is; the exit code is the same 1.
        logging.getLogger("bot").critical("ideabot %s failed", args.command, exc_info=True)
        return 1
