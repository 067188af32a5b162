"""The embedded model in int8 against float32: CPU per text and how close the vectors are.

    .venv/bin/python bench/eval_int8.py --data /work/shared/data/issue-kinds/dev.jsonl \
        [--limit 150] [--offset 200]

Embeds each issue (title and body, 256 word pieces) one text per run with both computations
(as the bot does: a single text runs on the calling thread, one thread per operator),
alternating text by text so that both see the same machine, and prints the CPU time per text and
the cosine between the two vectors of each text (min / mean), plus the same for int8 with every
channel quantised (no outlier split, ``onnx_int8.rewrite_int8(outliers={})``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.adapters.embedder_onnx import OnnxEmbedder, default_model_path
from bot.adapters.onnx_int8 import rewrite_int8


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=Path("/work/shared/data/issue-kinds/dev.jsonl"))
    ap.add_argument("--limit", type=int, default=150)
    ap.add_argument("--offset", type=int, default=200)
    args = ap.parse_args()
    rows = [json.loads(line) for line in args.data.read_text(encoding="utf-8").splitlines()]
    texts = [f"{r.get('title', '')}\n{r.get('body', '')}" for r in rows]
    texts = texts[args.offset : args.offset + args.limit]
    emb = {
        "float32": OnnxEmbedder(max_tokens=256, workers=2, compute="float32"),
        "int8": OnnxEmbedder(max_tokens=256, workers=2),
        "int8, every channel quantised": OnnxEmbedder(max_tokens=256, workers=2),
    }
    for e in emb.values():
        e.embed(["warm up"])
    import onnxruntime as ort

    plain = emb["int8, every channel quantised"]
    model = rewrite_int8(default_model_path().read_bytes(), outliers={})[0]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    plain._session = ort.InferenceSession(
        model,
        sess_options=opts,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=["SkipLayerNormFusion"],
    )
    cpu = dict.fromkeys(emb, 0.0)
    vecs: dict[str, list[np.ndarray]] = {k: [] for k in emb}
    for text in texts:
        for name, e in emb.items():
            t = time.process_time()
            vecs[name].append(e.embed([text])[0])
            cpu[name] += time.process_time() - t
    ref = np.asarray(vecs["float32"])
    print(f"{len(texts)} texts of {args.data.name} from row {args.offset}")
    for name in emb:
        cos = (np.asarray(vecs[name]) * ref).sum(axis=1)
        print(
            f"  {name:30s} CPU {cpu[name] * 1000 / len(texts):5.1f} ms a text; cosine to float32 "
            f"min {cos.min():.4f} mean {cos.mean():.4f}"
        )


if __name__ == "__main__":
    main()
