"""Makes the embedded model compute in int8, with fused attention: a rewrite of its ONNX graph,
done in memory at load.

The shipped model stores each weight matrix as int8 with one scale per output column, but its graph
turns them back into float32 (``Mul(Cast(w_int8), scale)``) before every ``MatMul``: onnxruntime
folds that into a float32 matrix at load, so the model ran in float32 (4.5 GFLOP per 195-word-piece
ticket, and this AVX2 CPU's float32 peak held indexing to ~20 tickets/s on 2 cores). The graph is
also the PyTorch exporter's, which onnxruntime's own fusions do not recognise: attention ran as a
dozen small operators per layer, GELU as five. The rewrite:

- gives each such ``MatMul`` (and the bias ``Add`` after it) to onnxruntime's
  ``DynamicQuantizeMatMul``: the activations are quantised to uint8 per call and multiplied by the
  int8 matrix itself in integer kernels, as ``onnxruntime.quantization.quantize_dynamic`` would;
- replaces each attention block (reshapes, transposes, the two scalings, the mask, softmax, the
  exporter's ``Where(IsNaN(…))`` guard and the two products) by one ``MultiHeadAttention`` with the
  token mask as its key padding mask. The guard only mattered for a row whose every key is masked,
  and a row always has its [CLS] key;
- replaces ``x * 0.5 * (1 + erf(x / sqrt 2))`` by ``Gelu``.

The vectors change a little (cosine ~0.995 to the float32 ones), so the embedder that uses this has
its own ``model_id``.

Why not the ``onnx`` package: it is 31 MB, and the Lambda bundle has 11 MB left. The rewrite only
adds, drops and rewires ``NodeProto`` messages, so it works on protobuf's wire format, which is
stable; initializers and everything else are copied byte for byte. Its input is the model whose
SHA-256 ``embedder_onnx`` checks, and every pattern is checked (constants included) before it is
replaced; a model of another shape raises ``RewriteError`` rather than compute something else.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

# Field numbers from onnx.proto.
_MODEL_OPSET_IMPORT, _MODEL_GRAPH = 8, 7
_OPSET_DOMAIN, _OPSET_VERSION = 1, 2
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_INPUT, _GRAPH_OUTPUT = 1, 5, 11, 12
_VALUE_INFO_NAME = 1
_TENSOR_DIMS, _TENSOR_DATA_TYPE, _TENSOR_FLOAT_DATA, _TENSOR_NAME, _TENSOR_RAW_DATA = 1, 2, 4, 8, 9
_NODE_INPUT, _NODE_OUTPUT, _NODE_NAME, _NODE_OP_TYPE, _NODE_ATTRIBUTE, _NODE_DOMAIN = (
    1,
    2,
    3,
    4,
    5,
    7,
)
_ATTR_NAME, _ATTR_F, _ATTR_I, _ATTR_TYPE = 1, 2, 3, 20
_ATTR_FLOAT, _ATTR_INT = 1, 2
_FLOAT, _INT8, _INT32, _INT64 = 1, 3, 6, 7  # TensorProto.DataType

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
MS = "com.microsoft"


# Per input of the matrix products, the channels that are multiplied in float32 rather than
# quantised: those over 3x the median magnitude, at most 4 (bench/calibrate_int8.py, on the
# project's own example texts). The names are the model's own tensor names (the attention
# outputs keep the names of the reshapes they replace).
OUTLIERS: dict[str, tuple[int, ...]] = {
    "layer_norm": (62, 99),  # max 7.2, median 2.0
    "view_3": (132, 160, 187, 311),  # max 3.3, median 0.7
    "layer_norm_1": (62, 63, 99, 303),  # max 27.9, median 2.0
    "gelu": (329, 856, 1096, 1389),  # max 23.9, median 1.6
    "layer_norm_2": (62, 99, 157),  # max 8.1, median 2.0
    "layer_norm_3": (62, 63, 99, 157),  # max 30.2, median 1.9
    "gelu_1": (607, 821, 869, 1157),  # max 20.5, median 1.9
    "layer_norm_4": (62, 99),  # max 8.0, median 2.0
    "layer_norm_5": (62, 63, 99, 223),  # max 27.4, median 2.0
    "gelu_2": (218, 409, 1004, 1265),  # max 17.3, median 1.9
    "layer_norm_6": (62, 99, 157),  # max 9.7, median 2.0
    "layer_norm_7": (62, 63, 99, 223),  # max 28.4, median 1.9
    "gelu_3": (358, 750, 1155, 1383),  # max 13.3, median 1.6
    "layer_norm_8": (99, 157),  # max 10.5, median 2.2
    "layer_norm_9": (62, 99, 127, 223),  # max 21.5, median 1.6
    "gelu_4": (637, 661, 1097, 1357),  # max 7.7, median 1.7
    "layer_norm_10": (99, 338),  # max 10.0, median 2.0
    "layer_norm_11": (62, 99, 223, 319),  # max 12.8, median 1.8
    "gelu_5": (119, 256, 1302),  # max 8.0, median 1.9
}


class RewriteError(ValueError):
    """The model does not have the shape this rewrite was written for."""


# --- protobuf wire format -------------------------------------------------------------------


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _enc_varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64 values are ten-byte varints
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _fields(data: bytes) -> Iterator[tuple[int, int, int | bytes, bytes]]:
    """(field number, wire type, value, the field's raw bytes) of each field of a message."""
    pos = 0
    while pos < len(data):
        start = pos
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == _VARINT:
            value, pos = _varint(data, pos)
        elif wire == _LEN:
            size, pos = _varint(data, pos)
            value = data[pos : pos + size]
            pos += size
        elif wire == _I32:
            value, pos = data[pos : pos + 4], pos + 4
        elif wire == _I64:
            value, pos = data[pos : pos + 8], pos + 8
        else:
            raise RewriteError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value, data[start:pos]


def _bytes_of(data: bytes, number: int) -> list[bytes]:
    return [v for n, _w, v, _ in _fields(data) if n == number and isinstance(v, bytes)]


def _len_field(number: int, payload: bytes) -> bytes:
    return _enc_varint(number << 3 | _LEN) + _enc_varint(len(payload)) + payload


def _varint_field(number: int, value: int) -> bytes:
    return _enc_varint(number << 3 | _VARINT) + _enc_varint(value)


def _int_attribute(name: str, value: int) -> bytes:
    return (
        _len_field(_ATTR_NAME, name.encode())
        + _varint_field(_ATTR_I, value)
        + _varint_field(_ATTR_TYPE, _ATTR_INT)
    )


def _float_attribute(name: str, value: float) -> bytes:
    return (
        _len_field(_ATTR_NAME, name.encode())
        + _enc_varint(_ATTR_F << 3 | _I32)
        + struct.pack("<f", value)
        + _varint_field(_ATTR_TYPE, _ATTR_FLOAT)
    )


# --- the graph --------------------------------------------------------------------------------


@dataclass
class _Node:
    op_type: str
    inputs: list[str]
    outputs: list[str]
    name: str = ""
    domain: str = ""
    attributes: list[bytes] = field(default_factory=list)
    raw: bytes | None = None  # the original encoding, reused while the node is unchanged

    @classmethod
    def parse(cls, raw: bytes) -> _Node:
        node = cls("", [], [], raw=raw)
        for number, wire, value, _ in _fields(raw):
            if wire != _LEN:
                continue
            text = bytes(value).decode() if number != _NODE_ATTRIBUTE else ""
            if number == _NODE_INPUT:
                node.inputs.append(text)
            elif number == _NODE_OUTPUT:
                node.outputs.append(text)
            elif number == _NODE_NAME:
                node.name = text
            elif number == _NODE_OP_TYPE:
                node.op_type = text
            elif number == _NODE_DOMAIN:
                node.domain = text
            elif number == _NODE_ATTRIBUTE:
                node.attributes.append(bytes(value))
        return node

    def encode(self) -> bytes:
        if self.raw is not None:
            return self.raw
        out = b"".join(_len_field(_NODE_INPUT, i.encode()) for i in self.inputs)
        out += b"".join(_len_field(_NODE_OUTPUT, o.encode()) for o in self.outputs)
        out += _len_field(_NODE_NAME, self.name.encode())
        out += _len_field(_NODE_OP_TYPE, self.op_type.encode())
        out += b"".join(_len_field(_NODE_ATTRIBUTE, a) for a in self.attributes)
        if self.domain:
            out += _len_field(_NODE_DOMAIN, self.domain.encode())
        return out


@dataclass
class _Tensor:
    dtype: int
    dims: tuple[int, ...]
    scalar: float | None  # the value of a one-element float tensor
    data: bytes = b""  # raw little-endian values


def _encode_tensor(name: str, dtype: int, dims: tuple[int, ...], data: bytes) -> bytes:
    out = b"".join(_varint_field(_TENSOR_DIMS, d) for d in dims)
    return (
        out
        + _varint_field(_TENSOR_DATA_TYPE, dtype)
        + _len_field(_TENSOR_NAME, name.encode())
        + _len_field(_TENSOR_RAW_DATA, data)
    )


def _tensor(raw: bytes) -> tuple[str, _Tensor]:
    name, dtype, dims, floats, data = "", 0, [], b"", b""
    for number, wire, value, _ in _fields(raw):
        if number == _TENSOR_NAME:
            name = bytes(value).decode()
        elif number == _TENSOR_DATA_TYPE:
            dtype = int(value)
        elif number == _TENSOR_DIMS and wire == _VARINT:
            dims.append(int(value))
        elif number == _TENSOR_DIMS and wire == _LEN:  # packed
            pos, packed = 0, bytes(value)
            while pos < len(packed):
                d, pos = _varint(packed, pos)
                dims.append(d)
        elif number == _TENSOR_FLOAT_DATA:
            floats += bytes(value)  # packed, or one 4-byte float
        elif number == _TENSOR_RAW_DATA:
            data = bytes(value)
    blob = data or floats
    scalar = None
    if dtype == _FLOAT and math.prod(dims) == 1 and len(blob) == 4:
        scalar = struct.unpack("<f", blob)[0]
    return name, _Tensor(dtype, tuple(dims), scalar, blob)


class _Graph:
    def __init__(self, nodes: list[_Node], tensors: dict[str, _Tensor], outputs: set[str]):
        self.nodes = nodes
        self.tensors = tensors
        self.graph_outputs = outputs
        self.new_tensors: list[bytes] = []  # encoded TensorProtos to add as initializers
        self.index()

    def index(self) -> None:
        self.producer = {o: n for n in self.nodes for o in n.outputs}
        self.consumers: dict[str, list[_Node]] = {}
        for n in self.nodes:
            for i in n.inputs:
                self.consumers.setdefault(i, []).append(n)

    def src(self, name: str) -> _Node | None:
        return self.producer.get(name)

    def only_consumer(self, name: str) -> _Node | None:
        users = self.consumers.get(name, [])
        return users[0] if len(users) == 1 and name not in self.graph_outputs else None

    def scalar(self, name: str) -> float | None:
        t = self.tensors.get(name)
        return t.scalar if t else None

    def const_input(self, node: _Node) -> tuple[str, float] | None:
        """(the other input, the constant) of a binary node with one scalar constant input."""
        if len(node.inputs) != 2:
            return None
        for k in (0, 1):
            c = self.scalar(node.inputs[k])
            if c is not None:
                return node.inputs[1 - k], c
        return None


def _close(a: float | None, b: float) -> bool:
    return a is not None and abs(a - b) <= 1e-6 * max(1.0, abs(b))


def _attention(g: _Graph, mask_i32: str) -> tuple[list[_Node], int]:
    """One MultiHeadAttention per softmax; the nodes it replaces are left for dead-node removal."""
    new: list[_Node] = []
    fused = 0

    def up(name: str, scales: list[float]) -> str:
        # Through the head-splitting reshapes/transposes and the scalings, to the projection.
        node = g.src(name)
        while node is not None and node.op_type in ("Reshape", "Transpose", "Mul"):
            if node.op_type == "Mul":
                const = g.const_input(node)
                if const is None:
                    break
                name, c = const
                scales.append(c)
            else:
                name = node.inputs[0]
            node = g.src(name)
        return name

    for softmax in [n for n in g.nodes if n.op_type == "Softmax"]:
        add = g.src(softmax.inputs[0])
        if add is None or add.op_type != "Add" or len(add.inputs) != 2:
            continue
        qk = next(
            (g.src(i) for i in add.inputs if getattr(g.src(i), "op_type", "") == "MatMul"), None
        )
        probs = softmax.outputs[0]
        av = g.only_consumer(probs)
        users = {n.op_type: n for n in g.consumers.get(probs, [])}
        if av is None and set(users) == {"IsNaN", "Where"}:  # the exporter's guard: see the module
            guard = users["Where"]
            if g.src(guard.inputs[0]) is not users["IsNaN"] or guard.inputs[2] != probs:
                continue
            av = g.only_consumer(guard.outputs[0])
        if qk is None or av is None or av.op_type != "MatMul":
            continue
        scales: list[float] = []
        q, k = up(qk.inputs[0], scales), up(qk.inputs[1], scales)
        v = up(av.inputs[1], [])
        hidden = None
        bias_of_q = g.src(q)
        if bias_of_q is not None and bias_of_q.op_type == "Add":
            dims = [g.tensors[i].dims for i in bias_of_q.inputs if i in g.tensors]
            hidden = dims[0][-1] if dims and dims[0] else None
        # Walk down from the product to the merged heads: Transpose, then Reshape.
        out, last = av.outputs[0], None
        for op in ("Transpose", "Reshape"):
            last = g.only_consumer(out)
            if last is None or last.op_type != op:
                out = ""
                break
            out = last.outputs[0]
        scale = math.prod(scales) if len(scales) == 2 else None
        if not out or last is None or hidden is None or scale is None or len({q, k, v}) != 3:
            continue
        head_size = round(scale**-2)
        if not _close(scale, head_size**-0.5) or hidden % head_size:
            raise RewriteError(f"attention scale {scale} is not 1/sqrt(head size)")
        new.append(
            _Node(
                "MultiHeadAttention",
                [q, k, v, "", mask_i32],
                [out],
                f"{softmax.name}__mha",
                domain=MS,
                attributes=[
                    _int_attribute("num_heads", hidden // head_size),
                    _float_attribute("scale", scale),
                ],
            )
        )
        # The merged heads now come from the attention node; what made them before is dead.
        g.nodes[g.nodes.index(last)] = _Node("Identity", [], [], "dead")
        fused += 1
    return new, fused


def _gelu(g: _Graph) -> int:
    fused = 0
    for erf in [n for n in g.nodes if n.op_type == "Erf"]:
        div = g.src(erf.inputs[0])
        plus1 = g.only_consumer(erf.outputs[0])
        half = g.only_consumer(plus1.outputs[0]) if plus1 else None
        final = g.only_consumer(half.outputs[0]) if half else None
        if div is None or plus1 is None or half is None or final is None or div.op_type != "Div":
            continue
        x, sqrt2 = div.inputs[0], g.scalar(div.inputs[1])
        c1, c05 = g.const_input(plus1), g.const_input(half)
        if (
            plus1.op_type == "Add"
            and half.op_type == "Mul"
            and final.op_type == "Mul"
            and _close(sqrt2, math.sqrt(2))
            and c1 is not None
            and _close(c1[1], 1.0)
            and c05 is not None
            and _close(c05[1], 0.5)
            and set(final.inputs) == {x, half.outputs[0]}
        ):
            gelu = _Node("Gelu", [x], list(final.outputs), f"{final.name}__gelu", domain=MS)
            g.nodes[g.nodes.index(final)] = gelu
            fused += 1
    return fused


def _int8_matmuls(g: _Graph, outliers: dict[str, tuple[int, ...]]) -> int:
    """Each ``MatMul`` of an int8 matrix (and its bias ``Add``) as ``DynamicQuantizeMatMul``;
    where *outliers* names channels of its input, those are multiplied in float32 instead and
    zeroed in what is quantised (new initializers go to ``g.new_tensors``)."""
    done = 0
    nodes: list[_Node] = []
    split: dict[str, tuple[str, str]] = {}  # input -> (its inlier part, its outlier channels)
    for mm in g.nodes:
        nodes.append(mm)
        if mm.op_type != "MatMul":
            continue
        weight = g.src(mm.inputs[1])
        cast = g.src(weight.inputs[0]) if weight is not None and weight.op_type == "Mul" else None
        if weight is None or cast is None or cast.op_type != "Cast":
            continue
        w = g.tensors.get(cast.inputs[0])
        scale = g.tensors.get(weight.inputs[1])
        if w is None or w.dtype != _INT8 or len(w.dims) != 2 or scale is None:
            continue
        if scale.dtype != _FLOAT or math.prod(scale.dims) != w.dims[1]:
            continue
        out, bias = mm.outputs[0], ""
        add = g.only_consumer(out)
        if add is not None and add.op_type == "Add":
            other = next((x for x in add.inputs if x != out), "")
            t = g.tensors.get(other)
            if t is not None and t.dtype == _FLOAT and t.dims == (w.dims[1],):
                bias, out = other, add.outputs[0]
                add.op_type, add.inputs, add.outputs, add.raw = "Identity", [], [], None  # folded
        col_scale = f"{weight.inputs[1]}__1d"
        # The kernel takes the scales as a vector; Squeeze with no axes drops the leading 1.
        nodes[-1] = _Node("Squeeze", [weight.inputs[1]], [col_scale], f"{mm.name}__scale")
        a, channels = mm.inputs[0], outliers.get(mm.inputs[0], ())
        if channels and max(channels) >= w.dims[0]:
            raise RewriteError(f"outlier channel {max(channels)} of {a} out of range")
        if channels and a not in split:
            split[a] = (f"{a}__inliers", f"{a}__outliers")
            keep = np.ones(w.dims[0], dtype=np.float32)
            keep[list(channels)] = 0
            g.new_tensors += [
                _encode_tensor(f"{a}__keep", _FLOAT, (w.dims[0],), keep.tobytes()),
                _encode_tensor(
                    f"{a}__channels", _INT64, (len(channels),), np.array(channels, "<i8").tobytes()
                ),
            ]
            nodes += [
                _Node("Mul", [a, f"{a}__keep"], [split[a][0]], f"{a}__zero_outliers"),
                _Node(
                    "Gather",
                    [a, f"{a}__channels"],
                    [split[a][1]],
                    f"{a}__take_outliers",
                    attributes=[_int_attribute("axis", -1)],
                ),
            ]
        quantised_out = f"{out}__int8" if channels else out
        nodes.append(
            _Node(
                "DynamicQuantizeMatMul",
                [split[a][0] if channels else a, cast.inputs[0], col_scale, "", bias],
                [quantised_out],
                f"{mm.name}__int8",
                domain=MS,
            )
        )
        if channels:
            rows = np.frombuffer(w.data, np.int8).reshape(w.dims)[list(channels)]
            col = np.frombuffer(scale.data, "<f4").reshape(-1)
            w_out = f"{cast.inputs[0]}__outlier_rows"
            g.new_tensors.append(
                _encode_tensor(
                    w_out, _FLOAT, (len(channels), w.dims[1]), (rows * col).astype("<f4").tobytes()
                )
            )
            nodes += [
                _Node("MatMul", [split[a][1], w_out], [f"{out}__outliers"], f"{mm.name}__outliers"),
                _Node("Add", [quantised_out, f"{out}__outliers"], [out], f"{mm.name}__sum"),
            ]
        done += 1
    g.nodes = nodes
    return done


def _live(g: _Graph) -> list[_Node]:
    """The nodes something still reads (graph outputs, transitively), in their order."""
    producer = {o: n for n in g.nodes for o in n.outputs}
    needed = set(g.graph_outputs)
    live: set[int] = set()
    stack = [producer[o] for o in needed if o in producer]
    while stack:
        n = stack.pop()
        if id(n) in live:
            continue
        live.add(id(n))
        stack += [producer[i] for i in n.inputs if i in producer and id(producer[i]) not in live]
    return [n for n in g.nodes if id(n) in live]


@dataclass
class RewriteReport:
    int8_matmuls: int
    attentions: int
    gelus: int


def rewrite_int8(
    model: bytes,
    num_layers: int | None = None,
    outliers: Mapping[str, tuple[int, ...]] | None = None,
) -> tuple[bytes, RewriteReport]:
    """The rewritten model and what was replaced. With *num_layers*, each pattern must be found
    exactly that many times (6 attentions and GELUs, 36 matrix products for MiniLM-L6).
    *outliers* (default ``OUTLIERS``) names, per product input, the channels kept in float32."""
    try:
        return _rewrite(model, num_layers, dict(OUTLIERS if outliers is None else outliers))
    except (IndexError, KeyError, ValueError, struct.error) as exc:  # RewriteError is a ValueError
        if isinstance(exc, RewriteError):
            raise
        raise RewriteError(f"not a model this rewrite can read: {exc!r}") from None


def _rewrite(
    model: bytes, num_layers: int | None, outliers: dict[str, tuple[int, ...]]
) -> tuple[bytes, RewriteReport]:
    top = list(_fields(model))
    graph_fields = [v for n, _w, v, _ in top if n == _MODEL_GRAPH]
    if len(graph_fields) != 1:
        raise RewriteError("the model has no graph")
    graph = bytes(graph_fields[0])
    tensors = dict(_tensor(t) for t in _bytes_of(graph, _GRAPH_INITIALIZER))
    inputs = [_bytes_of(vi, _VALUE_INFO_NAME)[0].decode() for vi in _bytes_of(graph, _GRAPH_INPUT)]
    outputs = {
        _bytes_of(vi, _VALUE_INFO_NAME)[0].decode() for vi in _bytes_of(graph, _GRAPH_OUTPUT)
    }
    if "attention_mask" not in inputs:
        raise RewriteError("the model has no attention_mask input")
    g = _Graph([_Node.parse(n) for n in _bytes_of(graph, _GRAPH_NODE)], tensors, outputs)

    mask_i32 = "attention_mask__int32"
    mha, attentions = _attention(g, mask_i32)
    cast_mask = _Node(
        "Cast",
        ["attention_mask"],
        [mask_i32],
        "attention_mask__cast",
        attributes=[_int_attribute("to", _INT32)],
    )
    # ONNX wants the nodes in topological order: each attention goes right after the node that
    # makes the last of its query, key and value (its mask is cast first of all).
    for node in mha:
        after = max(g.nodes.index(g.producer[x]) for x in node.inputs[:3])
        g.nodes.insert(after + 1, node)
    g.nodes.insert(0, cast_mask)
    g.index()
    gelus = _gelu(g)
    g.index()
    matmuls = _int8_matmuls(g, outliers)
    g.index()
    nodes = _live(g)
    report = RewriteReport(matmuls, attentions, gelus)
    if num_layers is not None and (attentions, gelus, matmuls) != (
        num_layers,
        num_layers,
        6 * num_layers,
    ):
        raise RewriteError(f"expected {num_layers} layers, rewrote {report}")
    if not matmuls:
        raise RewriteError("no int8 weight matrix products found in the model")

    new_graph = b"".join(_len_field(_GRAPH_NODE, n.encode()) for n in nodes)
    new_graph += b"".join(r for n, _w, _v, r in _fields(graph) if n != _GRAPH_NODE)
    new_graph += b"".join(_len_field(_GRAPH_INITIALIZER, t) for t in g.new_tensors)
    parts = [
        _len_field(_MODEL_GRAPH, new_graph) if n == _MODEL_GRAPH else r for n, _w, _v, r in top
    ]
    parts.append(
        _len_field(
            _MODEL_OPSET_IMPORT,
            _len_field(_OPSET_DOMAIN, MS.encode()) + _varint_field(_OPSET_VERSION, 1),
        )
    )
    return b"".join(parts), report
