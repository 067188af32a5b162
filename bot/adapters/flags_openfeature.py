"""Feature flags through the OpenFeature SDK, from a flagd flag file kept in Git.

``OpenFeatureFlags`` is the :class:`bot.domain.flags.Flags` port. It asks an OpenFeature client
bound to :class:`FlagdFileProvider`, an in-process provider that evaluates the flag file with
:mod:`bot.adapters.flagd`. The file is re-read when it changes, without a restart: each
evaluation may look at the file's modification time, at most once every *check_seconds*, so a
flag lookup costs a ``stat`` now and then and nothing else (no thread, which also suits Lambda).

A file that cannot be read at start-up is a :class:`FlagFileError`; one that turns bad later is a
logged warning and the last good definition stays in force.

A re-read is atomic: the new table is built aside, frozen, and swapped in with one reference
assignment. One thread re-reads; a thread asking meanwhile never waits for it (it answers from
the table in force, complete), and no thread ever sees a table half-read.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode, FlagNotFoundError, GeneralError, TypeMismatchError
from openfeature.flag_evaluation import FlagResolutionDetails, Reason
from openfeature.provider import AbstractProvider, Metadata

from bot.adapters.flagd import (
    EvaluationError,
    FlagDefinition,
    FlagFileError,
    evaluate,
    parse_flags,
)
from bot.domain.flags import FLAG_KEYS, FlagState, default_of

logger = logging.getLogger(__name__)

_domains = itertools.count(1)
_Signature = tuple[int, int, int]


class FlagFile:
    """The flag definitions in *path*, re-read when the file changes.

    Raises FlagFileError (the message names the file) when the file cannot be used at start.
    *monotonic* is injectable so tests move time instead of sleeping.
    """

    def __init__(
        self,
        path: Path,
        check_seconds: float = 5.0,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        known_keys: Sequence[str] = FLAG_KEYS,
    ) -> None:
        self.path = Path(path)
        self.check_seconds = check_seconds
        self._monotonic = monotonic
        self._known = tuple(known_keys)
        self._lock = threading.Lock()
        try:
            sig = self._signature()
            flags = self._read()
        except OSError as exc:
            raise FlagFileError(f"{self.path}: cannot read it ({exc.strerror})") from None
        except FlagFileError as exc:
            raise FlagFileError(f"{self.path}: {exc}") from None
        self._flags: Mapping[str, FlagDefinition] = MappingProxyType(flags)
        self._sig: _Signature | None = sig
        self._bad: object = None  # the signature of a bad file already warned about
        self._checked = monotonic()
        self.reloads = 0

    def _signature(self) -> _Signature:
        st = os.stat(self.path)
        # The inode changes on an atomic replace (editors, git checkout, ConfigMap updates); size
        # and nanosecond mtime catch an in-place write.
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _read(self) -> dict[str, FlagDefinition]:
        flags = parse_flags(self.path.read_text(encoding="utf-8"), boolean_keys=self._known)
        unknown = sorted(set(flags) - set(self._known))
        if unknown:
            # Not an error (one file may serve other apps), but a typo would silently do nothing.
            logger.warning(
                "flag file %s: %s not used by ideabot (its flags: %s)",
                self.path,
                ", ".join(unknown),
                ", ".join(self._known),
            )
        return flags

    def current(self) -> Mapping[str, FlagDefinition]:
        """The definitions in force, re-read first if the file changed (checked at most every
        *check_seconds*)."""
        now = self._monotonic()
        # Not blocking: while one thread re-reads, the others answer from the table in force.
        if now - self._checked >= self.check_seconds and self._lock.acquire(blocking=False):
            try:
                if now - self._checked >= self.check_seconds:
                    self._checked = now
                    self._reload()
            finally:
                self._lock.release()
        return self._flags  # one reference read: the old table or the new, whole

    def _reload(self) -> None:
        try:
            sig = self._signature()
        except OSError as exc:
            self._warn("missing", f"cannot read it ({exc.strerror})")
            return
        if sig == self._sig:
            return
        try:
            flags = self._read()
        except (OSError, UnicodeDecodeError, FlagFileError) as exc:
            self._warn(sig, str(exc))
            return
        # Built aside and frozen, then swapped in with one assignment: readers see it whole.
        self._flags = MappingProxyType(flags)
        self._sig, self._bad = sig, None
        self.reloads += 1
        logger.info("flag file %s re-read: %d flags", self.path, len(flags))

    def _warn(self, sig: object, reason: str) -> None:
        if sig == self._bad:
            return  # said once per version of the file, not on every check
        self._bad = sig
        logger.warning("flag file %s: %s; keeping the last good flags", self.path, reason)


class FlagdFileProvider(AbstractProvider):
    """An OpenFeature provider over a :class:`FlagFile` (the flagd format, in process).

    The evaluation context's ``targeting_key`` is the user; its attribute ``channel`` the
    channel. A flag missing from the file is FLAG_NOT_FOUND, so the caller's default applies.
    """

    def __init__(self, source: FlagFile) -> None:
        super().__init__()
        self.source = source

    def get_metadata(self) -> Metadata:
        return Metadata(name="ideabot-flagd-file")

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        return self._resolve(flag_key, default_value, evaluation_context, (bool,))

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return self._resolve(flag_key, default_value, evaluation_context, (str,))

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        return self._resolve(flag_key, default_value, evaluation_context, (int,))

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        return self._resolve(flag_key, default_value, evaluation_context, (int, float))

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Any,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Any]:
        return self._resolve(flag_key, default_value, evaluation_context, (dict, list))

    def _resolve(
        self,
        key: str,
        default: Any,
        ctx: EvaluationContext | None,
        types: tuple[type, ...],
    ) -> FlagResolutionDetails[Any]:
        flag = self.source.current().get(key)
        if flag is None:
            raise FlagNotFoundError(f"flag {key!r} is not in {self.source.path}")
        attrs = dict(ctx.attributes) if ctx is not None else {}
        user = (ctx.targeting_key if ctx is not None else None) or attrs.get("user")
        channel = attrs.get("channel")
        try:
            res = evaluate(
                flag,
                str(channel) if channel is not None else None,
                str(user) if user is not None else None,
            )
        except EvaluationError as exc:
            raise GeneralError(str(exc)) from None
        if res.value is None:
            return FlagResolutionDetails(default, reason=Reason(res.reason))
        # bool is an int in Python: an integer flag must not answer True.
        if not isinstance(res.value, types) or (bool not in types and isinstance(res.value, bool)):
            raise TypeMismatchError(f"flag {key!r} is a {type(res.value).__name__}")
        return FlagResolutionDetails(res.value, variant=res.variant, reason=Reason(res.reason))


class OpenFeatureFlags:
    """The Flags port over OpenFeature and a flag file; every flag defaults to on.

    Raises FlagFileError when *path* cannot be used. Each instance binds its own OpenFeature
    domain, so two bots in one process (tests, replicas) never share flags.
    """

    def __init__(
        self,
        path: Path,
        check_seconds: float = 5.0,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.file = FlagFile(path, check_seconds, monotonic=monotonic)
        self.provider = FlagdFileProvider(self.file)
        self.domain = f"ideabot-flags-{next(_domains)}"
        api.set_provider_and_wait(self.provider, domain=self.domain)
        self.client = api.get_client(domain=self.domain)
        self.source = f"flag file {self.file.path} (re-read on change, every {check_seconds:g} s)"
        self._reported: set[tuple[str, str]] = set()

    def enabled(self, key: str, channel: str | None = None, user: str | None = None) -> bool:
        """The flag's value for *channel* and *user*; on when the file does not define it."""
        attrs = {k: v for k, v in (("channel", channel), ("user", user)) if v}
        details = self.client.get_boolean_details(
            key, default_of(key), EvaluationContext(targeting_key=user or None, attributes=attrs)
        )
        if details.error_code not in (None, ErrorCode.FLAG_NOT_FOUND):
            self._report(key, details.error_message or str(details.error_code))
        return bool(details.value)

    def _report(self, key: str, message: str) -> None:
        # Once per distinct problem: a bad rule must not flood the log on every message.
        if (key, message) not in self._reported:
            self._reported.add((key, message))
            logger.warning("flag %s: %s; using the default (on)", key, message)

    def describe(self) -> list[FlagState]:
        """Every known flag's value with no channel or user, and where it comes from."""
        out = []
        flags = self.file.current()
        for key in FLAG_KEYS:
            details = self.client.get_boolean_details(key, default_of(key))
            flag = flags.get(key)
            if flag is None:
                why = "not in the file: default"
            elif details.error_code is not None:
                why = f"error: {details.error_message}; default"
            elif details.reason == Reason.DISABLED:
                why = "state DISABLED in the file: default"
            elif flag.targeting is not None:
                why = "targeted by channel/user; shown without either"
            else:
                why = "static"
            out.append(FlagState(key, bool(details.value), why))
        return out

    def close(self) -> None:
        """Unbinds the provider from its OpenFeature domain."""
        from openfeature.provider.no_op_provider import NoOpProvider

        api.set_provider(NoOpProvider(), domain=self.domain)
