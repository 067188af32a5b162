"""A local stand-in for an OpenAI-compatible ``POST /v1/embeddings`` endpoint, for running the
real ``openai`` client (through ``langchain-openai``) in tests.

Vectors are deterministic: the text's words hashed into *dimension* buckets (the ``HashEmbedder``
of tests/fakes/embedder.py), so texts sharing words are near. Answers ``encoding_format`` float
or base64 (the client asks for base64 by default). Every request is recorded (``requests``);
failures can be injected (``fail_next``: 429 or 5xx, with ``Retry-After``) and a request can be
held until released (``hold``), to test deadlines. Checks the bearer key. 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

import numpy as np

from tests.fakes.embedder import HashEmbedder
from tests.fakes.json_handler import JsonHandler


@dataclass
class EmbeddingsRequest:
    """One request as the server saw it."""

    path: str
    headers: dict[str, str]
    body: Any
    status: int = 200


@dataclass
class FakeOpenAIEmbeddings:
    """State of the fake; ``base_url`` (``…/v1``) is what the client's ``base_url`` takes."""

    dimension: int = 48
    api_key: str = "sk-test-fake"
    requests: list[EmbeddingsRequest] = field(default_factory=list)
    failures: list[tuple[int, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    held: threading.Event | None = None
    hold_probe: bool = True
    base_url: str = ""
    _server: ThreadingHTTPServer | None = None

    def start(self) -> FakeOpenAIEmbeddings:
        """Starts serving on an ephemeral loopback port."""
        fake = self

        class Handler(_Handler):
            state = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        """Releases held requests and stops the server."""
        if self.held is not None:
            self.held.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def fail_next(self, status: int, times: int = 1, retry_after: str | None = None) -> None:
        """The next *times* requests answer *status* (with a Retry-After header if given)."""
        with self.lock:
            self.failures.extend([(status, retry_after)] * times)

    def hold(self, probe: bool = True) -> threading.Event:
        """From now on requests wait (unanswered) until the returned event is set; with
        *probe* False, a start-up probe (one text, "dimension probe") is still answered."""
        self.held = threading.Event()
        self.hold_probe = probe
        return self.held

    def inputs(self) -> list[list[str]]:
        """The texts of each answered request, in order."""
        with self.lock:
            return [list(r.body["input"]) for r in self.requests if r.status == 200]

    def vectors(self, texts: list[str]) -> np.ndarray:
        """What the server answers for *texts* (unit rows)."""
        return HashEmbedder(dim=self.dimension).embed(texts)


class _Handler(JsonHandler):
    state: FakeOpenAIEmbeddings

    def do_POST(self) -> None:
        st = self.state
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body: Any = json.loads(raw) if raw else {}
        rec = EmbeddingsRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        probe = body.get("input") == ["dimension probe"]
        if st.held is not None and (st.hold_probe or not probe):
            st.held.wait(30)  # bounded: the test's deadline is far shorter
        with st.lock:
            st.requests.append(rec)
            fail = st.failures.pop(0) if st.failures else None
        if self.headers.get("Authorization") != f"Bearer {st.api_key}":
            rec.status = 401
            self._reply(401, _error("invalid_api_key", "Incorrect API key provided"))
            return
        if self.path != "/v1/embeddings":
            rec.status = 404
            self._reply(404, _error("not_found", f"no route {self.path}"))
            return
        if fail is not None:
            rec.status = fail[0]
            headers = {"Retry-After": fail[1]} if fail[1] is not None else {}
            self._reply(fail[0], _error("rate_limit_exceeded", "injected"), headers)
            return
        texts = body.get("input")
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            rec.status = 400
            self._reply(400, _error("invalid_request_error", "input must be a list of strings"))
            return
        if any(not t for t in texts):
            rec.status = 400
            self._reply(400, _error("invalid_request_error", "input must not be empty"))
            return
        vecs = st.vectors(texts)
        b64 = body.get("encoding_format") == "base64"
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": (
                    base64.b64encode(v.astype("<f4").tobytes()).decode()
                    if b64
                    else [float(x) for x in v]
                ),
            }
            for i, v in enumerate(vecs)
        ]
        tokens = sum(len(t.split()) for t in texts)
        self._reply(
            200,
            {
                "object": "list",
                "data": data,
                "model": body.get("model"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": code, "code": code, "param": None}}
