"""Log lines for people (``LOG_FORMAT=text``, the default) or for machines (``LOG_FORMAT=json``).

A JSON line carries ``time`` (UTC, ISO 8601, milliseconds), ``level``, ``logger``, ``message``,
the context fields of ``bot.observability.context`` that are set (``event_id``, ``trace_id``,
``channel``, ``ts``, ``outbox_item``, ``jira_key``), ``event`` with the envelope of an audit
record (``bot.domain.audit``), and ``exception`` with the traceback when there is one. A text
line is the classic ``time LEVEL logger: message`` with the context appended as
``[trace_id=... channel=...]`` when there is any.

Both formatters redact what they write (message and traceback alike): URL credentials and secret
query parameters (``bot.config.redact_text``) and token shapes that must never reach a log (Slack
``xox?-``/``xapp-`` tokens, Pinecone ``pcsk_`` keys, ``Bearer``/``Basic`` credentials). This is
the last line of defence; code still must not log secrets or message bodies at INFO.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from bot.config import redact_text
from bot.observability.context import FIELDS, current_context

LogFormat = Literal["text", "json"]


class ContextFilter(logging.Filter):
    """Copies the log context onto each record as it is made (in the logging thread), so a
    formatter running later or elsewhere still sees it. Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "log_context"):
            record.log_context = current_context()
        return True


def _context_of(record: logging.LogRecord) -> dict[str, str]:
    ctx: dict[str, str] = dict(getattr(record, "log_context", None) or current_context())
    # logger.info(..., extra={"jira_key": key}) wins over the ambient context.
    for name in FIELDS:
        value = record.__dict__.get(name)
        if value is not None:
            ctx[name] = str(value)
    return {name: ctx[name] for name in FIELDS if name in ctx}  # a stable field order


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # a bad format string must not lose the record
        return f"{record.msg!r} (unformattable arguments)"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, context fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact_text(_message(record)),
        }
        out.update(_context_of(record))
        event = record.__dict__.get("event")
        if isinstance(event, dict):  # an audit record's envelope (bot.domain.audit)
            out["event"] = event
        if record.exc_info:
            out["exception"] = redact_text(self.formatException(record.exc_info))
        elif record.exc_text:
            out["exception"] = redact_text(record.exc_text)
        if record.stack_info:
            out["stack"] = redact_text(self.formatStack(record.stack_info))
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message [field=value ...]``, redacted."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.message = _message(record)
        record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        ctx = _context_of(record)
        if ctx:
            line += " [" + " ".join(f"{k}={ctx[k]}" for k in FIELDS if k in ctx) + "]"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return redact_text(line)


def make_handler(fmt: LogFormat, stream: TextIO) -> logging.Handler:
    """A stream handler with the formatter for *fmt* and the context filter."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    return handler


def configure(level: str, fmt: LogFormat, stream: TextIO) -> None:
    """Logs records at *level* and above to *stream* in *fmt*. Like ``logging.basicConfig``, does
    nothing to a root logger that already has handlers (a host application's, pytest's)."""
    logging.basicConfig(level=getattr(logging, level), handlers=[make_handler(fmt, stream)])
