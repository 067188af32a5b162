"""A small in-memory emulation of Pinecone's data-plane REST API, for running the real SDK in tests.

Serves the endpoints ``pinecone.Index`` (SDK 10.x, API version 2026-07) calls for vector
indexes: ``POST /vectors/upsert``, ``POST /query``, ``GET /vectors/fetch``,
``POST /vectors/delete``, ``GET /vectors/list``, ``POST /describe_index_stats``. JSON field names
are camelCase as on the wire. Enforces Pinecone's per-request limits (1,000 vectors, 2 MB) and
the 40 KB metadata limit per record, answering 400 like Pinecone does. Every request is recorded
(``requests``) and failures can be injected (``fail_next``). Binds 127.0.0.1 on an ephemeral port.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from tests.fakes.json_handler import JsonHandler

MAX_VECTORS_PER_UPSERT = 1000
MAX_REQUEST_BYTES = 2 * 1024 * 1024
MAX_METADATA_BYTES = 40 * 1024
API_KEY_HEADER = "Api-Key"
VERSION_HEADER = "X-Pinecone-Api-Version"


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    size: int
    body: Any
    status: int = 200


@dataclass
class _Record:
    values: list[float]
    metadata: dict[str, Any] | None


@dataclass
class FakePinecone:
    """State of the fake index; ``url`` is what ``pc.index(host=...)`` takes."""

    dimension: int = 384
    metric: str = "cosine"
    api_key: str = "test-key"
    namespaces: dict[str, dict[str, _Record]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    failures: list[tuple[int, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""
    _server: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------------ control

    def start(self) -> FakePinecone:
        """Starts serving on an ephemeral loopback port."""
        fake = self

        class Handler(_Handler):
            state = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stops the server."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def fail_next(self, status: int, times: int = 1, retry_after: str | None = "0") -> None:
        """The next *times* requests answer *status* (with a Retry-After header if given)."""
        with self.lock:
            self.failures.extend([(status, retry_after)] * times)

    def calls(self, path: str) -> list[Recorded]:
        """Recorded requests to *path* (successful or not)."""
        return [r for r in self.requests if r.path == path]

    def ids(self, namespace: str) -> set[str]:
        """The ids stored in *namespace*."""
        with self.lock:
            return set(self.namespaces.get(namespace, {}))

    def metadata(self, namespace: str, vid: str) -> dict[str, Any] | None:
        """The stored metadata of one record."""
        with self.lock:
            return self.namespaces[namespace][vid].metadata

    # ------------------------------------------------------------------ API

    def _score(self, q: np.ndarray, v: list[float]) -> float:
        x = np.asarray(v, dtype=np.float64)
        if self.metric == "dotproduct":
            return float(q @ x)
        if self.metric == "euclidean":
            return float(np.sum((q - x) ** 2))
        denom = float(np.linalg.norm(q) * np.linalg.norm(x)) or 1.0
        return float(q @ x) / denom

    def upsert(self, body: dict[str, Any], size: int) -> tuple[int, Any]:
        vectors = body.get("vectors") or []
        if size > MAX_REQUEST_BYTES:
            return 400, _err(
                "INVALID_ARGUMENT",
                f"Request size {size / 1e6:.1f}MB exceeds the maximum supported size of 2MB",
            )
        if len(vectors) > MAX_VECTORS_PER_UPSERT:
            return 400, _err(
                "INVALID_ARGUMENT",
                f"Upsert request has {len(vectors)} vectors; the limit is "
                f"{MAX_VECTORS_PER_UPSERT} vectors per request",
            )
        for v in vectors:
            if len(v.get("values") or []) != self.dimension:
                return 400, _err(
                    "INVALID_ARGUMENT",
                    f"Vector dimension {len(v.get('values') or [])} does not match the "
                    f"dimension of the index {self.dimension}",
                )
            meta = v.get("metadata")
            if meta is not None:
                msize = len(json.dumps(meta, ensure_ascii=False, separators=(",", ":")).encode())
                if msize > MAX_METADATA_BYTES:
                    return 400, _err(
                        "INVALID_ARGUMENT",
                        f"Metadata size is {msize} bytes, which exceeds the limit of "
                        f"{MAX_METADATA_BYTES} bytes per vector",
                    )
                for k, val in meta.items():
                    if val is None or isinstance(val, dict):
                        return 400, _err("INVALID_ARGUMENT", f"Metadata value for {k} is invalid")
        ns = self.namespaces.setdefault(body.get("namespace", ""), {})
        for v in vectors:
            ns[v["id"]] = _Record(list(v["values"]), v.get("metadata"))
        return 200, {"upsertedCount": len(vectors)}

    def query(self, body: dict[str, Any]) -> tuple[int, Any]:
        ns = self.namespaces.get(body.get("namespace", ""), {})
        top_k = int(body.get("topK", 10))
        if not 1 <= top_k <= 10000:
            return 400, _err("INVALID_ARGUMENT", "topK must be between 1 and 10000")
        if "vector" in body:
            q = np.asarray(body["vector"], dtype=np.float64)
        elif body.get("id") in ns:
            q = np.asarray(ns[body["id"]].values, dtype=np.float64)
        else:
            return 400, _err("INVALID_ARGUMENT", "vector or a known id is required")
        flt = body.get("filter")
        scored = [
            (self._score(q, r.values), vid, r)
            for vid, r in ns.items()
            if flt is None or _matches(r.metadata or {}, flt)
        ]
        scored.sort(key=lambda s: (s[0] if self.metric == "euclidean" else -s[0], s[1]))
        matches = []
        for score, vid, r in scored[:top_k]:
            m: dict[str, Any] = {"id": vid, "score": score}
            if body.get("includeValues"):
                m["values"] = r.values
            if body.get("includeMetadata") and r.metadata is not None:
                m["metadata"] = r.metadata
            matches.append(m)
        return 200, {
            "matches": matches,
            "namespace": body.get("namespace", ""),
            "usage": {"readUnits": 5},
        }

    def fetch(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        namespace = query.get("namespace", [""])[0]
        ns = self.namespaces.get(namespace, {})
        ids = query.get("ids", [])
        if not ids:
            return 400, _err("INVALID_ARGUMENT", "ids are required")
        vectors = {}
        for vid in ids:
            r = ns.get(vid)
            if r is not None:
                vec: dict[str, Any] = {"id": vid, "values": r.values}
                if r.metadata is not None:
                    vec["metadata"] = r.metadata
                vectors[vid] = vec
        return 200, {"vectors": vectors, "namespace": namespace, "usage": {"readUnits": 1}}

    def delete(self, body: dict[str, Any]) -> tuple[int, Any]:
        namespace = body.get("namespace", "")
        ns = self.namespaces.get(namespace, {})
        if body.get("deleteAll"):
            ns.clear()
        for vid in body.get("ids") or []:
            ns.pop(vid, None)
        if body.get("filter"):
            for vid in [v for v, r in ns.items() if _matches(r.metadata or {}, body["filter"])]:
                del ns[vid]
        return 200, {}

    def list(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        namespace = query.get("namespace", [""])[0]
        prefix = query.get("prefix", [""])[0]
        limit = int(query.get("limit", ["100"])[0])
        start = query.get("paginationToken", [""])[0]
        ids = sorted(v for v in self.namespaces.get(namespace, {}) if v.startswith(prefix))
        ids = [v for v in ids if v > start] if start else ids
        page = ids[:limit]
        out: dict[str, Any] = {
            "vectors": [{"id": v} for v in page],
            "namespace": namespace,
            "usage": {"readUnits": 1},
        }
        if len(ids) > limit:
            out["pagination"] = {"next": page[-1]}
        return 200, out

    def stats(self) -> tuple[int, Any]:
        spaces = {k: {"vectorCount": len(v)} for k, v in self.namespaces.items() if v}
        return 200, {
            "namespaces": spaces,
            "dimension": self.dimension,
            "indexFullness": 0.0,
            "totalVectorCount": sum(len(v) for v in self.namespaces.values()),
            "metric": self.metric,
            "vectorType": "dense",
        }


def _err(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}, "status": 400}


def _matches(meta: dict[str, Any], flt: dict[str, Any]) -> bool:
    for key, cond in flt.items():
        if key == "$and":
            if not all(_matches(meta, c) for c in cond):
                return False
            continue
        if key == "$or":
            if not any(_matches(meta, c) for c in cond):
                return False
            continue
        value = meta.get(key)
        if not isinstance(cond, dict):
            cond = {"$eq": cond}
        for op, arg in cond.items():
            if op == "$eq":
                ok = value == arg
            elif op == "$ne":
                ok = value != arg
            elif op == "$in":
                ok = value in arg
            elif op == "$nin":
                ok = value not in arg
            elif op == "$exists":
                ok = (value is not None) == bool(arg)
            else:
                ok = False
            if not ok:
                return False
    return True


class _Handler(JsonHandler):
    state: FakePinecone

    def _handle(self, method: str) -> None:
        st = self.state
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body: Any = json.loads(raw) if raw else {}
        rec = Recorded(method, parts.path, query, dict(self.headers.items()), len(raw), body)
        with st.lock:
            st.requests.append(rec)
            if self.headers.get(API_KEY_HEADER) != st.api_key:
                rec.status = 401
                fail: tuple[int, str | None] | None = (401, None)
            else:
                fail = st.failures.pop(0) if st.failures else None
            if fail is not None:
                rec.status = fail[0]
                status, payload = fail[0], _err("INJECTED", f"injected {fail[0]}")
                headers = {"Retry-After": fail[1]} if fail[1] is not None else {}
            else:
                headers = {}
                route = (method, parts.path)
                if route == ("POST", "/vectors/upsert"):
                    status, payload = st.upsert(body, len(raw))
                elif route == ("POST", "/query"):
                    status, payload = st.query(body)
                elif route == ("GET", "/vectors/fetch"):
                    status, payload = st.fetch(query)
                elif route == ("POST", "/vectors/delete"):
                    status, payload = st.delete(body)
                elif route == ("GET", "/vectors/list"):
                    status, payload = st.list(query)
                elif route == ("POST", "/describe_index_stats"):
                    status, payload = st.stats()
                else:
                    status, payload = 404, _err("NOT_FOUND", f"no route {method} {parts.path}")
                rec.status = status
        self._reply(status, payload, headers)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")
