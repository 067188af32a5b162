"""Private files and directories: what the bot writes under ``BOT_DATA_DIR`` is its owner's only.

The data directory holds the SQLite database (post text, private channels included) and the
local index cache, so directories are made ``0700`` and files ``0600`` whatever the process
umask. Modes are set explicitly (``os.open`` with a mode, then ``chmod``) rather than by changing
the umask: the umask is process-wide, and the bot writes from several threads at once.

Writers use :func:`private_dir` for a directory they own, :func:`open_private` or
:func:`write_private` for a file, and :func:`private_file` to create a file some other library
then opens by name (SQLite). ``os.replace`` keeps the mode of the file it moves, so the usual
write-to-temp-then-rename stays private when the temporary file was made with these.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

DIR_MODE = 0o700
FILE_MODE = 0o600
_GROUP_OTHER = 0o077


def private_dir(path: str | os.PathLike[str], *, tighten: bool = True) -> Path:
    """*path* as a directory: missing components are created ``0700`` whatever the umask.

    With *tighten* (the default: for a directory the bot owns, such as ``BOT_DATA_DIR``), an
    existing *path* loses its group and other permissions. ``tighten=False`` leaves existing
    directories alone (a parent such as ``/tmp`` is not ours to change).
    """
    path = Path(path).expanduser()
    missing: list[Path] = []
    p = path
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=DIR_MODE)
        except FileExistsError:  # another process or thread made it first
            pass
        else:
            os.chmod(d, DIR_MODE)  # mkdir's mode is filtered by the umask
    if tighten and not missing:
        tighten_path(path)
    return path


def private_file(path: str | os.PathLike[str]) -> Path:
    """Creates *path* empty with mode ``0600`` if missing (never truncates); tightens it if not.

    For a file another library opens by name afterwards, e.g. the SQLite database: SQLite gives
    its ``-wal``, ``-shm`` and ``-journal`` files the mode of the database file.
    """
    path = Path(path).expanduser()
    os.close(_open(path, os.O_WRONLY, exact=False))
    return path


def open_private(path: str | os.PathLike[str], mode: str = "wb", **kwargs: Any) -> IO[Any]:
    """``open(path, mode)`` for writing ("w", "wb", "a", "ab", "x", "xb"), the file ``0600``.

    A file written from the start ("w", "x") is ``0600`` exactly; one appended to keeps its
    owner's bits and loses group and other. Keyword arguments go to :func:`open`; text is UTF-8
    unless ``encoding`` says otherwise.
    """
    if not mode or mode[0] not in "wax" or "+" in mode:
        raise ValueError(f"open_private is for writing a file, not mode {mode!r}")
    extra = {"w": os.O_TRUNC, "a": os.O_APPEND, "x": os.O_EXCL}[mode[0]]
    fd = _open(Path(path), os.O_WRONLY | extra, exact=mode[0] != "a")
    try:
        if "b" not in mode and "encoding" not in kwargs:
            kwargs["encoding"] = "utf-8"
        return os.fdopen(fd, mode, **kwargs)
    except BaseException:
        os.close(fd)
        raise


def write_private(path: str | os.PathLike[str], data: str | bytes) -> None:
    """``Path.write_text``/``write_bytes`` with the file ``0600`` (text is UTF-8)."""
    if isinstance(data, bytes):
        with open_private(path, "wb") as fb:
            fb.write(data)
    else:
        with open_private(path, "w", encoding="utf-8") as ft:
            ft.write(data)


def tighten_path(path: str | os.PathLike[str]) -> bool:
    """Removes group and other permissions from *path*; True when it changed anything.

    Symbolic links are left alone (their target may not be ours). A file we may not chmod
    (another owner) raises ``PermissionError``.
    """
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not st.st_mode & _GROUP_OTHER:
        return False
    os.chmod(path, stat.S_IMODE(st.st_mode) & ~_GROUP_OTHER)
    return True


def tighten_tree(root: str | os.PathLike[str]) -> tuple[int, list[str]]:
    """:func:`tighten_path` on *root* and everything under it (links not followed).

    Returns how many entries changed and the ones that could not be changed (with why), so the
    caller can log one line instead of one per file. A missing *root* is no error.
    """
    changed = 0
    failed: list[str] = []

    def one(p: str) -> None:
        nonlocal changed
        try:
            changed += tighten_path(p)
        except FileNotFoundError:  # removed meanwhile (a temporary file)
            pass
        except OSError as exc:
            failed.append(f"{p} ({exc.strerror or type(exc).__name__})")

    if not os.path.lexists(root):
        return 0, []
    one(os.fspath(root))
    if os.path.isdir(root) and not os.path.islink(root):
        for dirpath, dirnames, filenames in os.walk(root):
            for name in [*dirnames, *filenames]:
                one(os.path.join(dirpath, name))
    return changed, failed


def tighten_all(paths: Iterable[str | os.PathLike[str]]) -> tuple[int, list[str]]:
    """:func:`tighten_tree` over several roots; the counts and failures added up."""
    changed = 0
    failed: list[str] = []
    for p in paths:
        n, f = tighten_tree(p)
        changed += n
        failed += f
    return changed, failed


def _open(path: Path, flags: int, *, exact: bool) -> int:
    """A descriptor on *path* (created if missing) whose mode is private.

    A file this call creates, or any file when *exact*, is set to exactly ``0600`` (the mode
    given to ``os.open`` is filtered by the umask); an existing one otherwise only loses group
    and other permissions.
    """
    flags |= getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, FILE_MODE)
        created = True
    except FileExistsError:
        if flags & os.O_EXCL:
            raise
        fd = os.open(path, flags | os.O_CREAT, FILE_MODE)  # O_CREAT: it may be gone again
        created = False
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        want = FILE_MODE if created or exact else mode & ~_GROUP_OTHER
        if mode != want:
            os.fchmod(fd, want)
    except BaseException:
        os.close(fd)
        raise
    return fd
