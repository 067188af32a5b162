"""The domain core stays free of SDKs, and `--help` stays fast by importing nothing heavy."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = (
    "slack_bolt",
    "slack_sdk",
    "jira",
    "pinecone",
    "langchain",
    "sqlalchemy",
    "onnxruntime",
)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_domain_imports_no_sdk() -> None:
    files = sorted((ROOT / "bot" / "domain").glob("*.py"))
    assert files
    for f in files:
        bad = {n for n in _imports(f) if n.startswith(FORBIDDEN)}
        assert not bad, f"{f.name} imports {bad}"


def test_help_imports_no_heavy_library() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from bot.__main__ import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--help'])\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('onnxruntime', 'langchain', 'langchain_core', 'slack_bolt', 'jira', 'pinecone', "
        "'sqlalchemy', 'numpy')]\n"
        "print(','.join(sorted(heavy)))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ""


def test_no_prompt_text_in_python() -> None:
    # Prompts live in prompts/*.prompt.yaml; a long "You are ..." literal in code means one leaked.
    for f in (ROOT / "bot").rglob("*.py"):
        assert "You are a" not in f.read_text(encoding="utf-8"), f
