"""A plain (non-editable) install runs: the wheel carries the code, the data and the prompts.

Builds the wheel from a copy of the sources (so no build/ or *.egg-info lands in the checkout),
installs it with ``--no-deps`` into a folder, and runs ``python -m bot demo`` from an unrelated
folder with only that folder on PYTHONPATH; the dependencies come from the running interpreter.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _pip(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        [sys.executable, "-m", "pip", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, f"pip {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}"
    return r


def test_installed_wheel_runs_the_demo_from_anywhere(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "bot", src / "bot", ignore=skip)
    shutil.copytree(ROOT / "prompts", src / "prompts", ignore=skip)

    # With build isolation: pip fetches the setuptools the pyproject asks for from the package
    # index it is configured with (the interpreter's own may be older).
    _pip("wheel", "--no-deps", "--quiet", "-w", str(tmp_path / "dist"), str(src), cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("ideabot-*.whl")
    target = tmp_path / "site"
    _pip(
        "install",
        "--no-deps",
        "--no-index",
        "--quiet",
        "--target",
        str(target),
        str(wheel),
        cwd=tmp_path,
    )
    assert (target / "bot" / "prompts" / "triage.prompt.yaml").is_file()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("SLACK_", "JIRA_", "PINECONE_", "LLM_", "PROMPTS_", "BOT_", "DATABASE_")
        )
    }
    env["PYTHONPATH"] = str(target)
    where = subprocess.run(
        [
            sys.executable,
            "-c",
            "import bot.cli, bot.adapters.prompts as p; print(bot.__file__); "
            "print(p.packaged_prompts_dir())",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert where.returncode == 0, where.stderr
    module_file, prompts_dir = where.stdout.splitlines()
    assert Path(module_file).is_relative_to(target), module_file
    assert Path(prompts_dir) == target / "bot" / "prompts"

    r = subprocess.run(
        [sys.executable, "-m", "bot", "demo"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert r.returncode == 0, r.stderr
    assert "ideabot demo: 12 Slack-style posts against 20 existing tickets" in r.stdout
    rows = [ln for ln in r.stdout.splitlines() if ln[:1] == "p" and ln[1:2].isdigit()]
    assert len(rows) == 12
    assert str(ROOT) not in r.stdout + r.stderr
