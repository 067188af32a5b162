"""Prompts as files: one ``prompts/<name>.prompt.yaml`` per LLM task, validated when loaded.

A prompt file holds ``name``, ``version``, ``description``, ``model_parameters``,
``input_variables``, ``messages`` (role + content with ``{placeholders}``) and ``testData``.
The loader checks that the declared variables are exactly the placeholders the messages use, so a
typo fails at start-up (``load_all``) instead of at the first LLM call. No prompt text lives in
Python: the code only fills variables.

Untrusted text (Slack posts, ticket titles) goes inside XML-like delimiter tags written in the
template (``<post>…</post>``). :meth:`Prompt.inputs` neutralises those tags inside the values, so a
post cannot close its own block and speak as the instructions.
"""

from __future__ import annotations

import logging
import os
import re
import string
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

if TYPE_CHECKING:
    from langchain_core.prompts import ChatPromptTemplate

logger = logging.getLogger(__name__)

SUFFIXES = (".prompt.yaml", ".prompt.yml")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_TAG = re.compile(r"</?\s*([A-Za-z_][A-Za-z0-9_-]*)\s*>")


class PromptError(ValueError):
    """A prompt file is missing or malformed; the message starts with the file's path."""


class Message(BaseModel):
    """One message of a prompt template."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str = Field(min_length=1)


class TestCase(BaseModel):
    """A sample input for the prompt and what a good answer looks like."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    __test__ = False  # not a pytest class despite the name

    inputs: dict[str, str]
    expected: dict[str, Any] = Field(default_factory=dict)
    note: str = ""


class Prompt(BaseModel):
    """A loaded, validated prompt. ``id`` (``name@version``) is logged with every LLM call."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    name: str
    version: str
    description: str = ""
    model_parameters: dict[str, Any] = Field(default_factory=dict)
    input_variables: tuple[str, ...]
    messages: tuple[Message, ...] = Field(min_length=1)
    test_data: tuple[TestCase, ...] = Field(default=(), alias="testData")
    path: Path | None = Field(default=None, exclude=True)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"name must be lower-case letters, digits, '-' or '_', got {v!r}")
        return v

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, v: Any) -> str:
        # YAML reads `version: 1.0` as a float; keep what the author wrote.
        if isinstance(v, int | float) and not isinstance(v, bool):
            v = str(v)
        if not isinstance(v, str) or not v.strip():
            raise ValueError("version must be a non-empty string such as '1' or '2024-06-01'")
        return v.strip()

    @property
    def id(self) -> str:
        """``name@version``, the identity to log and to put in traces."""
        return f"{self.name}@{self.version}"

    @property
    def delimiters(self) -> frozenset[str]:
        """The tag names the templates use to fence data (``post`` for ``<post>…</post>``)."""
        return frozenset(
            m.group(1).lower() for msg in self.messages for m in _TAG.finditer(msg.content)
        )

    def inputs(self, **values: str) -> dict[str, str]:
        """Variables for the template: exactly the declared ones, with delimiter tags defused.

        Raises ``PromptError`` when a variable is missing or unknown.
        """
        missing = sorted(set(self.input_variables) - values.keys())
        extra = sorted(values.keys() - set(self.input_variables))
        if missing or extra:
            raise PromptError(
                f"{self.id}: variables do not match the prompt "
                f"(missing: {', '.join(missing) or '-'}; unknown: {', '.join(extra) or '-'})"
            )
        tags = self.delimiters
        return {k: defuse_tags(str(v), tags) for k, v in values.items()}

    def render(self, **values: str) -> list[tuple[str, str]]:
        """The messages as ``(role, text)`` pairs, without LangChain (for tests and ``doctor``)."""
        safe = self.inputs(**values)
        return [(m.role, m.content.format(**safe)) for m in self.messages]

    def to_langchain(self) -> ChatPromptTemplate:
        """A LangChain ``ChatPromptTemplate`` of the messages (imports LangChain on first use)."""
        from langchain_core.prompts import ChatPromptTemplate

        return ChatPromptTemplate.from_messages(
            [(m.role, m.content) for m in self.messages], template_format="f-string"
        )


def defuse_tags(text: str, tags: frozenset[str] | set[str]) -> str:
    """Rewrites ``<tag>``/``</tag>`` for the given tag names so data cannot close its fence."""
    if not tags:
        return text

    def _sub(m: re.Match[str]) -> str:
        if m.group(1).lower() not in tags:
            return m.group(0)
        return m.group(0).replace("<", "‹").replace(">", "›")

    return _TAG.sub(_sub, text)


def placeholders(template: str) -> set[str]:
    """The ``{names}`` an f-string template uses (``{{`` and ``}}`` are literal braces)."""
    names: set[str] = set()
    for _, field, spec, conv in string.Formatter().parse(template):
        if field is None:
            continue
        if not _IDENT.match(field) or spec or conv:
            raise ValueError(
                f"placeholder {{{field}{'!' + conv if conv else ''}{':' + spec if spec else ''}}} "
                "must be a plain name; write {{ and }} for literal braces"
            )
        names.add(field)
    return names


def packaged_prompts_dir() -> Path:
    """The prompt files that ship with ideabot.

    An installed wheel carries them as ``bot/prompts/`` (``pyproject.toml`` maps the repository's
    top-level ``prompts/`` there). Run from a source checkout (``PYTHONPATH`` or an editable
    install) there is no ``bot/prompts/``: the files are read from ``prompts/`` beside ``bot/``.
    """
    from importlib.resources import files

    package = Path(str(files("bot")))
    shipped = package / "prompts"
    if shipped.is_dir():
        return shipped
    return package.parent / "prompts"


def resolve_prompts_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """Where prompt files live: *override* (the ``PROMPTS_DIR`` setting), else the shipped ones.

    The environment is not read here: the setting reaches the adapters as an argument, so one
    process can hold two configurations (tests do) and nothing depends on import order.
    """
    if override is not None:
        return Path(override)
    return packaged_prompts_dir()


def _find(name: str, directory: Path) -> Path:
    for suffix in SUFFIXES:
        path = directory / f"{name}{suffix}"
        if path.is_file():
            return path
    raise PromptError(f"{directory / (name + SUFFIXES[0])}: prompt file not found")


def parse_prompt(path: Path) -> Prompt:
    """Reads and validates one prompt file; raises ``PromptError`` naming *path*."""
    import yaml

    try:
        # libyaml's safe loader when PyYAML has it: the same documents, several times faster to
        # parse, which counts at every start (and every Lambda cold start).
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise PromptError(f"{path}: cannot read YAML: {exc}") from None
    if not isinstance(raw, Mapping):
        raise PromptError(f"{path}: expected a mapping at the top level")
    try:
        prompt = Prompt.model_validate({**raw, "path": path})
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err.get("loc", ()))
        raise PromptError(f"{path}: {loc or 'file'}: {err.get('msg', 'invalid')}") from None

    stem = path.name
    for suffix in SUFFIXES:
        stem = stem.removesuffix(suffix)
    if prompt.name != stem:
        raise PromptError(f"{path}: name {prompt.name!r} does not match the file name {stem!r}")

    declared = list(prompt.input_variables)
    dupes = sorted({v for v in declared if declared.count(v) > 1})
    if dupes:
        raise PromptError(f"{path}: input_variables lists {', '.join(dupes)} more than once")
    used: set[str] = set()
    for i, msg in enumerate(prompt.messages):
        try:
            used |= placeholders(msg.content)
        except ValueError as exc:
            raise PromptError(f"{path}: messages.{i}: {exc}") from None
    unused = sorted(set(declared) - used)
    undeclared = sorted(used - set(declared))
    if unused or undeclared:
        raise PromptError(
            f"{path}: input_variables do not match the placeholders in messages "
            f"(declared but unused: {', '.join(unused) or '-'}; "
            f"used but not declared: {', '.join(undeclared) or '-'})"
        )
    for i, case in enumerate(prompt.test_data):
        if set(case.inputs) != set(declared):
            raise PromptError(
                f"{path}: testData.{i}.inputs must give exactly {', '.join(sorted(declared))}"
            )
    return prompt


def load_prompt(name: str, prompts_dir: str | os.PathLike[str] | None = None) -> Prompt:
    """Loads ``<prompts dir>/<name>.prompt.yaml``; raises ``PromptError`` naming the file."""
    return parse_prompt(_find(name, resolve_prompts_dir(prompts_dir)))


def load_all(prompts_dir: str | os.PathLike[str] | None = None) -> dict[str, Prompt]:
    """Loads every prompt file, for start-up: all problems are reported in one ``PromptError``."""
    directory = resolve_prompts_dir(prompts_dir)
    if not directory.is_dir():
        raise PromptError(f"{directory}: prompts directory not found (set PROMPTS_DIR)")
    paths = sorted(p for p in directory.iterdir() if p.name.endswith(SUFFIXES))
    out: dict[str, Prompt] = {}
    errors: list[str] = []
    for path in paths:
        try:
            prompt = parse_prompt(path)
        except PromptError as exc:
            errors.append(str(exc))
            continue
        if prompt.name in out:
            errors.append(f"{path}: a second prompt named {prompt.name!r}")
            continue
        out[prompt.name] = prompt
    if errors:
        raise PromptError("; ".join(errors))
    logger.info("prompts loaded: %s", ", ".join(p.id for p in out.values()) or "none")
    return out
