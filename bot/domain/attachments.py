"""Files that reach the ticket: which of a post's files are attached, and the ports that fetch
them from the chat and attach them in the tracker.

The files are those shared with the post and in its thread's replies when filing is asked for,
in the post's own channel (a file the chat says was shared elsewhere only is left out: filing
reads no other channel). Types are allow-listed, sizes and counts capped. Attaching is
idempotent: an upload is named after the chat's file id (``ChatFile.attachment_name``), and a
retried filing skips the names the issue already has.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bot.domain.models import ChatFile

DEFAULT_TYPES = (
    "image/*",
    "video/mp4",
    "video/quicktime",
    "application/pdf",
    "text/plain",
    "text/csv",
    "application/json",
)


class FileTooLarge(Exception):
    """The download passed the size cap (it is stopped, not finished)."""


@dataclass(frozen=True)
class AttachmentPolicy:
    """How many files (*max_files*, 0 = none), how large each (*max_bytes*), of which types
    (shell patterns of MIME types), and how long one download may take (*deadline*, seconds)."""

    max_files: int = 5
    max_bytes: int = 10 * 1024 * 1024
    types: tuple[str, ...] = DEFAULT_TYPES
    # One download's total time. With the uploads (each inside the tracker's deadline) the
    # attachments of one attempt stay within the outbox lease; a worker that overran it stops
    # before its next upload (the fence), and the next holder skips what is attached already.
    deadline: float = 15.0

    @property
    def enabled(self) -> bool:
        return self.max_files > 0

    def allows(self, f: ChatFile, channel: str) -> bool:
        """True when *f*, seen in *channel*, may be attached."""
        if not f.url or not f.id:
            return False
        if f.channels and channel not in f.channels:
            return False  # shared from a channel filing would not read
        if f.size > self.max_bytes:
            return False
        mime = f.mimetype.lower()
        return any(fnmatch.fnmatchcase(mime, t.lower()) for t in self.types)

    def pick(self, files: Iterable[ChatFile], channel: str) -> tuple[ChatFile, ...]:
        """The files to attach, in order, each once, at most *max_files*."""
        out: dict[str, ChatFile] = {}
        for f in files:
            if len(out) >= self.max_files:
                break
            if f.id not in out and self.allows(f, channel):
                out[f.id] = f
        return tuple(out.values())


@runtime_checkable
class FileSource(Protocol):
    """The chat's files (Slack: ``conversations.replies`` and the bot token's downloads)."""

    def files_for(self, channel: str, ts: str, thread_ts: str | None = None) -> list[ChatFile]:
        """The files of message *ts*, and of the replies in its thread when it starts one."""
        ...

    def download(self, f: ChatFile, max_bytes: int, deadline: float) -> bytes:
        """The file's bytes, within *deadline* seconds in all; raises FileTooLarge past
        *max_bytes*, and another exception when it cannot be had."""
        ...


@runtime_checkable
class IssueAttachments(Protocol):
    """Attachments on a tracker issue (Jira)."""

    def attachment_names(self, key: str) -> set[str]:
        """The file names attached to issue *key*."""
        ...

    def add_attachment(self, key: str, name: str, data: bytes) -> None:
        """Attaches *data* to issue *key* as *name*."""
        ...


def image_names(files: Sequence[ChatFile]) -> tuple[str, ...]:
    """The attachment names of the images among *files* (shown in the description)."""
    return tuple(f.attachment_name for f in files if f.is_image)
