"""pyproject.toml ships every package, the prompt files and a working console script."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_every_folder_under_bot_is_a_listed_package() -> None:
    # The package list is written out (see pyproject.toml); a folder left out would be missing
    # from the wheel while every test run from the source tree still passes.
    folders = {
        ".".join(p.relative_to(ROOT).parts)
        for p in [ROOT / "bot", *(ROOT / "bot").rglob("*")]
        if p.is_dir() and p.name != "__pycache__"
    }
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    assert listed == folders | {"bot.prompts"}


def test_prompts_ship_from_the_top_level_folder() -> None:
    setuptools = PYPROJECT["tool"]["setuptools"]
    assert setuptools["package-dir"] == {"bot.prompts": "prompts"}
    patterns = setuptools["package-data"]["bot.prompts"]
    shipped = {p.name for pattern in patterns for p in (ROOT / "prompts").glob(pattern)}
    assert shipped == {p.name for p in (ROOT / "prompts").iterdir() if p.is_file()}
    assert shipped  # and there is something to ship


def test_console_script_names_the_command_line_main() -> None:
    target = PYPROJECT["project"]["scripts"]["ideabot"]
    module, _, name = target.partition(":")
    assert getattr(importlib.import_module(module), name) is importlib.import_module("bot.cli").main
