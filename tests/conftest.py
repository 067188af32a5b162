"""Shared pytest fixtures.

Database fixtures:
- ``pg_url``: a PostgreSQL URL whose ``search_path`` is a fresh, empty schema (dropped afterwards),
  so parallel tests (``pytest -n 2``) never see each other's tables. Skips when the server does not
  answer. Server: ``TEST_DATABASE_URL`` (any ``postgres://`` / ``postgresql://`` /
  ``postgresql+psycopg://`` URL), default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``.
- ``store_url``: parametrised over the backends (``sqlite`` file under tmp_path, ``postgres``).
  ``TEST_STORE_BACKENDS=sqlite`` (comma list) restricts the backends.
- ``store``: a ``SqlStore`` on ``store_url``, closed afterwards.
- ``store_backend``: ``"memory"`` (the in-memory fake, always on) or a ``store_url``, for the
  store contract tests that must hold for the fake and for SQL alike.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from bot.adapters.store_sql import SqlStore

PG_DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
_BACKENDS = [b.strip() for b in os.environ.get("TEST_STORE_BACKENDS", "sqlite,postgres").split(",")]


def _pg_base_url() -> str:
    from bot.adapters.store_sql import normalise_url

    return normalise_url(os.environ.get("TEST_DATABASE_URL") or PG_DEFAULT_URL)


def _libpq_conninfo(sa_url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(sa_url).set(drivername="postgresql").render_as_string(hide_password=False)


@cache
def _pg_unavailable() -> str | None:
    """None when PostgreSQL answers, else the reason to skip (checked once per worker)."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    url = _pg_base_url()
    try:
        with psycopg.connect(_libpq_conninfo(url), connect_timeout=3) as conn:
            conn.execute("select 1")
    except psycopg.Error as exc:
        safe = _libpq_conninfo(url).split("@")[-1]
        return f"PostgreSQL at {safe} does not answer ({type(exc).__name__}); set TEST_DATABASE_URL"
    return None


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A SQLAlchemy URL to PostgreSQL, isolated in its own schema for this test."""
    reason = _pg_unavailable()
    if reason:
        pytest.skip(reason)
    import psycopg
    from sqlalchemy.engine import make_url

    base = _pg_base_url()
    schema = f"t_{os.getpid()}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq_conninfo(base), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_libpq_conninfo(base), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


_SQL_BACKENDS = [
    pytest.param("sqlite", marks=pytest.mark.skipif("sqlite" not in _BACKENDS, reason="off")),
    pytest.param(
        "postgres",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(
                "postgres" not in _BACKENDS, reason="TEST_STORE_BACKENDS excludes postgres"
            ),
        ],
    ),
]


def _url_for(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'ideabot.sqlite3'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture(params=_SQL_BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL for each backend: a SQLite file under tmp_path, or an isolated PG schema."""
    return _url_for(request.param, request, tmp_path)


@pytest.fixture(params=["memory", *_SQL_BACKENDS])
def store_backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """``"memory"`` for the in-memory fake, else a database URL as ``store_url`` gives."""
    if request.param == "memory":
        return "memory"
    return _url_for(request.param, request, tmp_path)


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    """A fresh ``SqlStore`` on each backend."""
    from bot.adapters.store_sql import SqlStore

    s = SqlStore(store_url)
    try:
        yield s
    finally:
        s.close()
