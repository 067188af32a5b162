"""deploy/lambda_bundle.py's pruning, on a small folder laid out like ``pip install --target``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from deploy.lambda_bundle import NOT_ON_LAMBDA, needed, prune


def dist(target: Path, name: str, files: dict[str, str], requires: Sequence[str] = ()) -> None:
    """A distribution *name* with *files* and Requires-Dist lines, RECORD included."""
    info = target / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    meta = ["Metadata-Version: 2.1", f"Name: {name}", "Version: 1.0"]
    meta += [f"Requires-Dist: {r}" for r in requires]
    (info / "METADATA").write_text("\n".join(meta) + "\n\n")
    record = []
    for rel, text in files.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        record.append(f"{rel},,")
    record.append(f"{info.name}/METADATA,,")
    (info / "RECORD").write_text("\n".join(record) + "\n")


def layout(target: Path) -> None:
    dist(
        target,
        "ideabot",
        {"bot/__init__.py": ""},
        [
            "slack-bolt>=1",
            "langchain-core>=1",
            "waitress>=3",
            "tokenizers",
            "numpy",
            'psycopg[binary]>=3; extra == "postgres"',
            'pytest; extra == "dev"',
        ],
    )
    dist(target, "slack-bolt", {"slack_bolt/__init__.py": ""}, ["slack-sdk"])
    dist(target, "slack-sdk", {"slack_sdk/__init__.py": ""})
    dist(target, "langchain-core", {"langchain_core/__init__.py": "x" * 1000}, ["zstandard"])
    dist(target, "zstandard", {"zstandard/__init__.py": "", "zstandard/_cffi.so": "y" * 500})
    dist(target, "waitress", {"waitress/__init__.py": ""})
    dist(target, "tokenizers", {"tokenizers/__init__.py": ""}, ["huggingface-hub"])
    dist(target, "huggingface-hub", {"huggingface_hub/__init__.py": ""}, ["hf-xet"])
    dist(target, "hf-xet", {"hf_xet/__init__.py": ""})
    dist(target, "psycopg", {"psycopg/__init__.py": ""}, ['psycopg-binary; extra == "binary"'])
    dist(target, "psycopg-binary", {"psycopg_binary/__init__.py": ""})
    dist(target, "pytest", {"pytest/__init__.py": ""})
    dist(target, "numpy", {"numpy/__init__.py": "", "numpy/_core/tests/test_x.py": "t"})
    (target / "langchain_core" / "__pycache__").mkdir()
    (target / "langchain_core" / "__pycache__" / "__init__.cpython-312.pyc").write_bytes(b"c")


def test_the_closure_follows_extras_and_stops_at_what_lambda_never_loads(tmp_path: Path) -> None:
    layout(tmp_path)
    keep = needed(tmp_path, {"postgres"}, set(NOT_ON_LAMBDA) | {"langchain-core"})
    assert keep == {
        "ideabot",
        "slack-bolt",
        "slack-sdk",
        "tokenizers",
        "numpy",
        "psycopg",
        "psycopg-binary",
    }


def test_prune_removes_files_records_and_bytecode(tmp_path: Path) -> None:
    layout(tmp_path)
    prune(tmp_path)
    left = {p.name for p in tmp_path.iterdir()}
    for gone in ("langchain_core", "zstandard", "waitress", "huggingface_hub", "hf_xet", "pytest"):
        assert gone not in left
    assert not list(tmp_path.glob("langchain_core-*.dist-info"))
    assert {"bot", "slack_bolt", "slack_sdk", "tokenizers", "psycopg", "psycopg_binary"} <= left
    assert not (tmp_path / "numpy" / "_core" / "tests").exists()
    assert (tmp_path / "numpy" / "__init__.py").exists()


def test_with_llm_keeps_langchain(tmp_path: Path) -> None:
    layout(tmp_path)
    prune(tmp_path, with_llm=True)
    assert (tmp_path / "langchain_core" / "__init__.py").exists()
    assert (tmp_path / "zstandard" / "_cffi.so").exists()
    assert not (tmp_path / "waitress").exists()
