"""Attaching a filing's files to its issue, once each (a step of ``bot.service.filing``)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from bot.domain.attachments import AttachmentPolicy, FileSource, IssueAttachments
from bot.domain.filing import FilingJob
from bot.domain.ports import TrackerRejected

logger = logging.getLogger(__name__)


class AttachLeaseLost(Exception):
    """The filing's lease was lost before an upload: the next holder attaches the rest."""


def attach_files(
    job: FilingJob,
    key: str,
    files: FileSource,
    attachments: IssueAttachments,
    policy: AttachmentPolicy,
    still_ours: Callable[[], bool],
) -> int:
    """Attaches *job*'s files to issue *key*; returns how many were uploaded now.

    Each once: a name the issue already has (an earlier attempt's upload, whose answer may have
    been lost) is skipped. A retryable tracker failure is raised, so the filing's attempt is
    retried and finds the issue by its marker; a file that cannot be fetched (gone, too large,
    no ``files:read``) or that the tracker refuses is left out with a log line: the issue exists
    and the filing goes on.
    """
    have = attachments.attachment_names(key)
    uploaded = 0
    for f in job.files[: policy.max_files]:
        name = f.attachment_name
        if name in have:
            continue
        try:
            data = files.download(f, policy.max_bytes, policy.deadline)
        except Exception as exc:
            logger.warning("filing %s: could not fetch file %s: %s", job.key, f.id, exc)
            continue
        if not still_ours():
            raise AttachLeaseLost
        try:
            attachments.add_attachment(key, name, data)
        except TrackerRejected as exc:
            logger.warning("filing %s: Jira refused attachment %s: %s", job.key, f.id, exc)
            continue
        have.add(name)
        uploaded += 1
    if uploaded:
        logger.info("filing %s: attached %d file(s) to %s", job.key, uploaded, key)
    return uploaded
