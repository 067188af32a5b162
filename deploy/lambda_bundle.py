"""Builds the AWS Lambda bundle (zip deployment) into a folder: ``sam build`` calls it through the
Makefile's ``build-IdeabotFunction`` target.

    python deploy/lambda_bundle.py OUT_DIR [--with-llm] [--check]

1. A wheel of this checkout, installed with the ``postgres`` extra for Lambda's python3.12
   runtime on x86-64 (Amazon Linux 2023, glibc 2.34). Not python3.11: that runtime runs on
   Amazon Linux 2 (glibc 2.26), and onnxruntime >= 1.17 ships only manylinux_2_28 wheels.
2. Distributions Lambda never loads are removed, with everything only they needed (following
   each package's declared requirements): the HTTP server and the in-process scheduler
   (waitress, APScheduler: a function URL and EventBridge replace them), the CLI's progress bar
   (tqdm), the Hugging Face Hub client (tokenizers declares it for downloads; the bot reads its
   tokenizer from a file) and, unless ``--with-llm``, the LangChain stack (only LLM_MODEL uses it).
3. Test suites inside packages and onnxruntime's model-conversion tools are removed.
4. Bytecode is compiled with a local ``python3.12`` (``sam build --use-container`` has one): the
   deployed code is read-only, so Python could not keep bytecode it compiles at a cold start.

Without step 2 and 3 the bundle is ~340 MB unzipped, over Lambda's 250 MB limit. boto3 is not
installed: the runtime provides it. ``--check`` imports the Lambda code paths from the bundle
with a local ``python3.12`` and embeds a sentence with the shipped model.
"""

from __future__ import annotations

import argparse
import email.parser
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = "3.12"
PLATFORMS = ("manylinux_2_34", "manylinux_2_28", "manylinux_2_17", "manylinux2014")
# Distributions the function never imports (see the module docstring).
NOT_ON_LAMBDA = ("waitress", "apscheduler", "tqdm", "huggingface-hub")
LLM_STACK = ("langchain", "langchain-core")
# Folders inside packages that nothing imports at run time.
DEAD_FOLDERS = ("onnxruntime/transformers", "onnxruntime/quantization", "onnxruntime/tools")
# The marker environment of Lambda's python3.12 runtime.
MARKERS = {
    "implementation_name": "cpython",
    "implementation_version": "3.12.0",
    "os_name": "posix",
    "platform_machine": "x86_64",
    "platform_python_implementation": "CPython",
    "platform_release": "",
    "platform_system": "Linux",
    "platform_version": "",
    "python_full_version": "3.12.0",
    "python_version": "3.12",
    "sys_platform": "linux",
}


def canonical(name: str) -> str:
    """PEP 503 name: lower case, runs of -_. as one dash."""
    return re.sub(r"[-_.]+", "-", name).lower()


def install(target: Path, extras: str) -> None:
    """pip: this project's wheel with *extras*, and its dependencies, for the Lambda runtime."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(ROOT), "-w", tmp],
            check=True,
        )
        wheel = next(Path(tmp).glob("ideabot-*.whl"))
        platforms = [a for p in PLATFORMS for a in ("--platform", f"{p}_x86_64")]
        # --no-compile: pip would compile with this interpreter, not the runtime's (see compile).
        pip = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-compile",
            "--target",
            str(target),
        ]
        runtime = ["--implementation", "cp", "--python-version", PYTHON, "--only-binary=:all:"]
        subprocess.run([*pip, *platforms, *runtime, "--upgrade", f"{wheel}[{extras}]"], check=True)


def _distributions(target: Path) -> dict[str, Path]:
    out = {}
    for info in target.glob("*.dist-info"):
        meta = email.parser.Parser().parsestr((info / "METADATA").read_text(encoding="utf-8"))
        out[canonical(meta["Name"])] = info
    return out


def needed(target: Path, root_extras: set[str], excluded: set[str]) -> set[str]:
    """The distributions ideabot needs on Lambda: its requirements' closure without *excluded*."""
    try:
        from packaging.requirements import Requirement
    except ImportError:  # an interpreter with pip but not packaging (sam build's python3)
        from pip._vendor.packaging.requirements import Requirement  # type: ignore[assignment]

    dists = _distributions(target)
    keep: set[str] = set()
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [("ideabot", frozenset(root_extras))]
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen or name in excluded or name not in dists:
            continue
        seen.add((name, extras))
        keep.add(name)
        meta = email.parser.Parser().parsestr(
            (dists[name] / "METADATA").read_text(encoding="utf-8")
        )
        for raw in meta.get_all("Requires-Dist") or []:
            req = Requirement(raw)
            if req.marker is not None and not any(
                req.marker.evaluate({**MARKERS, "extra": e}) for e in (extras or {""})
            ):
                continue
            todo.append((canonical(req.name), frozenset(req.extras)))
    return keep


def remove_distribution(target: Path, info: Path) -> int:
    """Deletes the files a distribution's RECORD lists; returns the bytes freed."""
    freed = 0
    for line in (info / "RECORD").read_text(encoding="utf-8").splitlines():
        rel = line.split(",", 1)[0]
        path = (target / rel).resolve()
        if not rel or not path.is_relative_to(target.resolve()) or not path.is_file():
            continue
        freed += path.stat().st_size
        path.unlink()
    if info.exists():
        shutil.rmtree(info)
    return freed


def clean_folders(target: Path) -> None:
    """Removes bytecode folders whose sources are gone, then empty folders."""
    folders = sorted((p for p in target.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
    for folder in folders:
        if folder.name == "__pycache__" and not any(folder.parent.glob("*.py")):
            shutil.rmtree(folder)
        elif folder.exists() and not any(folder.iterdir()):
            folder.rmdir()


def size(path: Path) -> int:
    """Bytes under *path*, as Lambda counts the unzipped bundle."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def prune(target: Path, with_llm: bool = False) -> list[tuple[str, int]]:
    """Removes what Lambda never loads (module docstring); returns (what, bytes) removed."""
    excluded = set(NOT_ON_LAMBDA) | (set() if with_llm else set(LLM_STACK))
    keep = needed(target, {"postgres"}, excluded)
    removed = []
    for name, info in sorted(_distributions(target).items()):
        if name not in keep:
            removed.append((name, remove_distribution(target, info)))
    for rel in DEAD_FOLDERS:
        if (target / rel).is_dir():
            removed.append((rel, size(target / rel)))
            shutil.rmtree(target / rel)
    for tests in sorted(target.glob("*/**/tests")):
        if tests.is_dir() and not tests.is_relative_to(target / "bot"):
            removed.append((str(tests.relative_to(target)), size(tests)))
            shutil.rmtree(tests)
    if (target / "bin").is_dir():
        shutil.rmtree(target / "bin")
    clean_folders(target)
    return removed


def runtime_python() -> str | None:
    """A local python3.12 (the runtime's version), or None."""
    found = shutil.which(f"python{PYTHON}")
    if found is None:
        return None
    probe = subprocess.run([found, "-c", "print(1)"], capture_output=True, check=False)
    return found if probe.returncode == 0 else None


def compile_bytecode(target: Path) -> bool:
    """Compiles the bundle with python3.12, as the runtime would on every cold start otherwise
    (the function's code is read-only: it cannot keep what it compiles). Unchecked hashes: the
    files never change, so Python need not compare them with the sources."""
    py = runtime_python()
    if py is None:
        return False
    subprocess.run(
        [py, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", target],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return True


CHECK = """
import bot.lambda_handler, bot.bootstrap, slack_bolt, slack_sdk
import bot.adapters.store_sql, bot.adapters.index_pinecone, bot.adapters.jira_tracker
import bot.adapters.analyzer_offline, bot.adapters.calendar_ics, bot.adapters.flags_openfeature
import bot.adapters.slack_chat, bot.slack.notifier, bot.slack.digest_blocks, bot.slack.lazy
import psycopg, sqlalchemy.dialects.postgresql.psycopg, pinecone
from bot.adapters.embedder_onnx import OnnxEmbedder
vec = OnnxEmbedder().embed(["Add dark mode to the dashboard"])
assert vec.shape == (1, 384), vec.shape
print("bundle check: the Lambda code paths import; the model embeds")
"""


def check(target: Path) -> None:
    """Imports the Lambda code paths from *target* with python3.12 (boto3 stubbed)."""
    py = runtime_python()
    if py is None:
        print(f"bundle check skipped: no python{PYTHON} here")
        return
    with tempfile.TemporaryDirectory() as stub:
        (Path(stub) / "boto3.py").write_text("def client(*a, **k):\n    return None\n")
        subprocess.run(
            [
                py,
                "-I",
                "-B",
                "-c",
                f"import sys; sys.path[:0] = [{str(target)!r}, {stub!r}]\n{CHECK}",
            ],
            check=True,
            cwd=stub,
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out", type=Path, help="the bundle folder (sam build's ARTIFACTS_DIR)")
    ap.add_argument("--with-llm", action="store_true", help="keep LangChain (for LLM_MODEL)")
    ap.add_argument("--check", action="store_true", help="import it with a local python3.12")
    args = ap.parse_args()
    install(args.out, "postgres")
    before = size(args.out)
    removed = prune(args.out, with_llm=args.with_llm)
    if not compile_bytecode(args.out):
        print(f"warning: no python{PYTHON} here to compile the bundle; each cold start compiles")
    mb = 1024 * 1024
    freed = sum(n for _, n in removed)
    print(
        f"bundle {args.out}: {size(args.out) / mb:.1f} MB unzipped ({before / mb:.1f} MB "
        f"before removing {freed / mb:.1f} MB that Lambda never loads)"
    )
    if args.check:
        check(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
