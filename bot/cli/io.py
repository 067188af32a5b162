"""Input and output of the batch commands: JSON lines in, JSON lines out, a progress bar.

Only the standard library is imported at module level (``--help`` must stay fast); tqdm is
imported when a bar is first needed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any


class InputError(Exception):
    """The input file could not be read at all; the command line prints it and exits 1."""


def open_in(path: str) -> IO[str]:
    """*path* opened for reading (``-`` is standard input); raises ``InputError``."""
    if path == "-":
        return sys.stdin
    try:
        return open(path, encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None


def open_out(path: str | None) -> IO[str]:
    """*path* opened for writing; standard output when it is unset or ``-``."""
    if not path or path == "-":
        return sys.stdout
    return open(path, "w", encoding="utf-8")


def read_jsonl(path: str) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """Yields (line number, object or None, error or None) for each non-blank line."""
    with open_in(path) as f:
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


def write_jsonl(out: IO[str], obj: dict[str, Any]) -> None:
    """Writes *obj* as one JSON line (non-ASCII kept as is)."""
    out.write(json.dumps(obj, ensure_ascii=False) + "\n")


def progress(total: int | None, desc: str) -> Any:
    """A tqdm progress bar on standard error, drawn only when that is a terminal."""
    from tqdm import tqdm

    # Scripts reading stderr get no carriage-return noise.
    return tqdm(total=total, desc=desc, unit="ticket", disable=not sys.stderr.isatty())


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
