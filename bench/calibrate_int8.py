"""Finds the outlier input channels of the embedded model's matrix products, for ``onnx_int8``.

    .venv/bin/pip install onnx   # this script only; the bot does not need it
    .venv/bin/python bench/calibrate_int8.py [--top 4] [--ratio 3]

Runs the int8-rewritten model (with no outlier split) on the project's own texts
(bot/examples/*.jsonl: no evaluation data), records each product input's largest magnitude per
channel, and prints, per input, the channels above *ratio* x the median (at most *top*):
``onnx_int8.OUTLIERS`` is this output. A transformer's residual stream carries a few channels
~10x larger than the rest (here channel 99 reaches ~30 where the median is ~2): quantised with one
scale per call they take the whole uint8 range, and the other channels get a handful of levels.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.adapters import onnx_int8  # noqa: E402
from bot.adapters.embedder_onnx import TOKENIZER_PATH, default_model_path  # noqa: E402


def own_texts() -> list[str]:
    texts = []
    for path in sorted((ROOT / "bot" / "examples").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip().startswith("{"):
                row = json.loads(line)
                text = row.get("text") or f"{row.get('title', '')}\n{row.get('body', '')}".strip()
                if text:
                    texts.append(text)
    return texts


def main() -> None:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper
    from tokenizers import Tokenizer

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--top", type=int, default=4)
    ap.add_argument("--ratio", type=float, default=3.0)
    args = ap.parse_args()
    blob, _ = onnx_int8.rewrite_int8(default_model_path().read_bytes(), outliers={})
    model = onnx.load_from_string(blob)
    inputs: list[str] = []
    for node in model.graph.node:
        if node.op_type == "DynamicQuantizeMatMul" and node.input[0] not in inputs:
            inputs.append(node.input[0])
    for name in inputs:
        model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    tok = Tokenizer.from_file(str(TOKENIZER_PATH))
    tok.enable_truncation(max_length=256)
    peak = {name: np.zeros(0) for name in inputs}
    texts = own_texts()
    for text in texts:
        ids = np.array([tok.encode(text).ids], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": 0 * ids}
        for name, a in zip(inputs, session.run(inputs, feeds), strict=True):
            m = np.abs(a.reshape(-1, a.shape[-1])).max(axis=0)
            peak[name] = np.maximum(peak[name], m) if peak[name].size else m
    print(f"# {len(texts)} texts of bot/examples, top {args.top}, ratio {args.ratio}")
    print("OUTLIERS = {")
    for name in inputs:
        m = peak[name]
        chosen = [int(j) for j in np.argsort(-m)[: args.top] if m[j] > args.ratio * np.median(m)]
        note = f"max {m.max():.1f}, median {np.median(m):.1f}"
        print(f'    "{name}": {tuple(sorted(chosen))},  # {note}')
    print("}")


if __name__ == "__main__":
    main()
