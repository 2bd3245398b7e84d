"""The op-spec table: every differentiable tapegrad op, declared once as data.

Each :class:`OpSpec` says how to call the op through tapegrad's public API, what it computes
(a float64 NumPy reference forward), where its inputs live (the domain, kept off kinks, ties
and domain edges so finite differences are meaningful), and the shape cases to try
(broadcasting, scalars, non-square, batched, fan-out). Every check is derived from this table:
the kit's own tests (``tests/test_ops.py``), the public checks students run, and the hidden
grading suites. No op list is written anywhere else.

The table is plain data plus NumPy; it never imports tapegrad (the ``call`` functions receive
the module under test as their first argument), so the trusted grader can hold it without
importing student code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Case", "OpSpec", "SPECS", "spec", "make_inputs", "DOMAINS"]

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Case:
    """One way of calling an op: the input shapes, fixed keyword arguments, and a label that
    says what the case exercises (it appears in feedback)."""

    shapes: tuple[Shape, ...]
    label: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __hash__(self) -> int:
        return hash((self.shapes, self.label))


@dataclass(frozen=True)
class OpSpec:
    """An op (or a small function of ops) and everything needed to check it."""

    name: str
    call: Callable[..., Any]  # call(tg, *tensors, **kwargs) -> Tensor
    reference: Callable[..., np.ndarray]  # reference(*float64 arrays, **kwargs)
    cases: tuple[Case, ...]
    domains: tuple[str, ...]  # one per input, a key of DOMAINS
    assignment: str = "hw1"
    smooth: bool = True  # twice differentiable on the domain: second-order checks apply
    jvp: bool = True  # forward mode is part of the assignment for this op
    topic: str = ""  # the lesson it belongs to, for feedback
    # known wrong forwards, for feedback: (bug class, what that bug computes)
    wrong: tuple[tuple[str, Callable[..., np.ndarray]], ...] = ()

    @property
    def arity(self) -> int:
        return len(self.domains)

    @property
    def elementwise(self) -> bool:
        """One input, y_i = f(x_i): the gradient is the cotangent times f'(x)."""
        return self.topic == "elementwise" and self.arity == 1


def _normal(rng: np.random.Generator, shape: Shape) -> np.ndarray:
    return rng.standard_normal(shape)


def _positive(rng: np.random.Generator, shape: Shape) -> np.ndarray:
    return rng.uniform(0.5, 2.0, shape)


def _nonzero(rng: np.random.Generator, shape: Shape) -> np.ndarray:
    """Away from 0 (the kink of relu and abs, the pole of 1/x)."""
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.3, 2.0, shape)


def _distinct(rng: np.random.Generator, shape: Shape) -> np.ndarray:
    """Values at least 0.4 apart, in random order: no ties for max, whatever the axis."""
    n = int(np.prod(shape))
    values = np.arange(n) * 0.5 + rng.uniform(0.0, 0.1, n) - 0.25 * n
    return rng.permutation(values).reshape(shape) / max(1.0, np.sqrt(n) / 2)


def _logits(rng: np.random.Generator, shape: Shape) -> np.ndarray:
    return 3.0 * rng.standard_normal(shape)


def _extreme(rng: np.random.Generator, shape: Shape) -> np.ndarray:
    """Logits of magnitude ~1000: exp overflows unless the op subtracts the max first."""
    return rng.choice([-1000.0, 1000.0], shape) + rng.standard_normal(shape)


DOMAINS: dict[str, Callable[[np.random.Generator, Shape], np.ndarray]] = {
    "normal": _normal,
    "positive": _positive,
    "nonzero": _nonzero,
    "distinct": _distinct,
    "logits": _logits,
    "extreme": _extreme,
}


def make_inputs(
    spec_: OpSpec, case: Case, rng: np.random.Generator, dtype: Any = np.float64
) -> list[np.ndarray]:
    """Fresh random inputs for one case, in the op's domain."""
    return [
        np.array(DOMAINS[d](rng, shape), dtype=dtype)
        for d, shape in zip(spec_.domains, case.shapes)
    ]


# ---- shape cases shared by families of ops ----------------------------------------------------

UNARY = (
    Case(((),), "scalar"),
    Case(((7,),), "vector"),
    Case(((3, 5),), "non-square matrix"),
    Case(((2, 3, 4),), "3-d"),
    Case(((48, 50),), "large (directional check)"),
)

BINARY = (
    Case(((3, 4), (3, 4)), "same shape"),
    Case(((3, 4), (4,)), "broadcast a row"),
    Case(((3, 1), (1, 4)), "outer broadcast"),
    Case(((), (2, 3)), "scalar with matrix"),
    Case(((2, 3), ()), "matrix with scalar"),
    Case(((2, 1, 4), (3, 1)), "3-d broadcast both ways"),
    Case(((4, 1), (1, 4, 2)), "a size-1 axis broadcast to 2, under a new leading axis"),
    Case(((40, 50), (50,)), "large (directional check)"),
)

REDUCE = (
    Case(((3, 4),), "all axes"),
    Case(((3, 4),), "axis 0", {"axis": 0}),
    Case(((3, 4),), "axis -1 keepdims", {"axis": -1, "keepdims": True}),
    Case(((2, 3, 4),), "axis tuple", {"axis": (0, 2)}),
    Case(((5,),), "vector"),
    Case(((40, 50),), "large, axis 1", {"axis": 1}),
)

SOFTMAX = (
    Case(((4, 5),), "rows"),
    Case(((4, 5),), "axis 0", {"axis": 0}),
    Case(((2, 3, 4),), "3-d, last axis"),
    Case(((6,),), "vector"),
    Case(((32, 10),), "a batch of logits"),
)

MATMUL = (
    Case(((3, 4), (4, 5)), "non-square"),
    Case(((2, 3, 4), (4, 2)), "batched @ matrix (broadcast)"),
    Case(((2, 3, 4), (2, 4, 5)), "batched"),
    Case(((3, 4), (2, 4, 5)), "matrix @ batched (a broadcast over the batch)"),
    Case(((4,), (4, 3)), "vector @ matrix"),
    Case(((3, 4), (4,)), "matrix @ vector"),
    Case(((30, 40), (40, 20)), "large (directional check)"),
)


def _ref_conv2d(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int = 1, padding: int = 0
) -> np.ndarray:
    """Cross-correlation by its definition, a loop over output pixels (the small cases only)."""
    n, _, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh, ow = (h + 2 * padding - kh) // stride + 1, (wd + 2 * padding - kw) // stride + 1
    out = np.empty((n, o, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * stride : i * stride + kh, j * stride : j * stride + kw]
            out[:, :, i, j] = np.einsum("nchw,ochw->no", patch, w)
    return out + b[None, :, None, None]


def _labels(shape: tuple[int, ...]) -> np.ndarray:
    """Fixed labels for a cross-entropy case of logits ``shape``: every class appears."""
    return np.arange(shape[0], dtype=np.int64) * 7 % shape[1]


def _log_softmax_rows(z: np.ndarray) -> np.ndarray:
    return z - _rows(z, axis=1)


def _rows(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable logsumexp with keepdims, for the references below."""
    m = np.max(x, axis=axis, keepdims=True)
    return m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))


def _ref_logsumexp(x: np.ndarray, axis: Any = None, keepdims: bool = False) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    out = m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axis) if axis is not None else out.reshape(())


def _ref_getitem(x: np.ndarray, index: Any) -> np.ndarray:
    return x[index]


# ---- the table --------------------------------------------------------------------------------

_REPEATS = np.array([0, 2, 2, 1, 0])  # an index array with repeats: gradients must add up

SPECS: tuple[OpSpec, ...] = (
    # arithmetic, both operand orders with Python scalars
    OpSpec("add", lambda tg, a, b: a + b, np.add, BINARY, ("normal", "normal"), topic="arithmetic"),
    OpSpec(
        "sub", lambda tg, a, b: a - b, np.subtract, BINARY, ("normal", "normal"), topic="arithmetic"
    ),
    OpSpec(
        "mul", lambda tg, a, b: a * b, np.multiply, BINARY, ("normal", "normal"), topic="arithmetic"
    ),
    OpSpec(
        "div", lambda tg, a, b: a / b, np.divide, BINARY, ("normal", "nonzero"), topic="arithmetic"
    ),
    OpSpec("neg", lambda tg, a: -a, np.negative, UNARY, ("normal",), topic="arithmetic"),
    OpSpec(
        "scalar_ops",
        lambda tg, a: 2.0 * a - 1.5 / a + a / 4.0 - (3.0 - a),
        lambda a: 2.0 * a - 1.5 / a + a / 4.0 - (3.0 - a),
        UNARY,
        ("nonzero",),
        topic="arithmetic",
        wrong=(  # a reflected operator (1.5 / a, 3.0 - a) with its operands swapped
            ("swapped_operands", lambda a: 2.0 * a - a / 1.5 + a / 4.0 - (3.0 - a)),
            ("swapped_operands", lambda a: 2.0 * a - 1.5 / a + a / 4.0 - (a - 3.0)),
            ("swapped_operands", lambda a: 2.0 * a - a / 1.5 + a / 4.0 - (a - 3.0)),
        ),
    ),
    OpSpec(
        "pow_scalar",
        lambda tg, a, p: a**p,
        lambda a, p: a**p,
        tuple(Case(c.shapes, f"{c.label}, a**{p:g}", {"p": p}) for p in (3.0, -0.5) for c in UNARY),
        ("positive",),
        topic="arithmetic",
    ),
    OpSpec(
        "pow", lambda tg, a, b: a**b, np.power, BINARY, ("positive", "normal"), topic="arithmetic"
    ),
    OpSpec(
        "rpow",
        lambda tg, a: 2.0**a,
        lambda a: 2.0**a,
        UNARY,
        ("normal",),
        topic="arithmetic",
        wrong=(("swapped_operands", lambda a: a**2.0),),
    ),
    OpSpec(
        "matmul", lambda tg, a, b: a @ b, np.matmul, MATMUL, ("normal", "normal"), topic="matmul"
    ),
    # elementwise functions
    OpSpec("exp", lambda tg, a: tg.exp(a), np.exp, UNARY, ("normal",), topic="elementwise"),
    OpSpec("log", lambda tg, a: tg.log(a), np.log, UNARY, ("positive",), topic="elementwise"),
    OpSpec("sqrt", lambda tg, a: tg.sqrt(a), np.sqrt, UNARY, ("positive",), topic="elementwise"),
    OpSpec("sin", lambda tg, a: tg.sin(a), np.sin, UNARY, ("normal",), topic="elementwise"),
    OpSpec("cos", lambda tg, a: tg.cos(a), np.cos, UNARY, ("normal",), topic="elementwise"),
    OpSpec("tanh", lambda tg, a: tg.tanh(a), np.tanh, UNARY, ("normal",), topic="elementwise"),
    OpSpec(
        "sigmoid",
        lambda tg, a: tg.sigmoid(a),
        lambda a: 1.0 / (1.0 + np.exp(-a)),
        UNARY,
        ("normal",),
        topic="elementwise",
    ),
    OpSpec(
        "relu",
        lambda tg, a: tg.relu(a),
        lambda a: np.maximum(a, 0.0),
        UNARY,
        ("nonzero",),
        smooth=False,
        topic="elementwise",
    ),
    OpSpec(
        "abs",
        lambda tg, a: tg.abs(a),
        np.abs,
        UNARY,
        ("nonzero",),
        smooth=False,
        topic="elementwise",
    ),
    # reductions
    OpSpec(
        "sum",
        lambda tg, a, **k: a.sum(**k),
        lambda a, **k: np.sum(a, **k),
        REDUCE,
        ("normal",),
        topic="reductions",
    ),
    OpSpec(
        "mean",
        lambda tg, a, **k: a.mean(**k),
        lambda a, **k: np.mean(a, **k),
        REDUCE,
        ("normal",),
        topic="reductions",
    ),
    OpSpec(
        "max",
        lambda tg, a, **k: a.max(**k),
        lambda a, **k: np.max(a, **k),
        REDUCE,
        ("distinct",),
        smooth=False,
        topic="reductions",
    ),
    OpSpec(
        "logsumexp",
        lambda tg, a, **k: tg.logsumexp(a, **k),
        _ref_logsumexp,
        REDUCE,
        ("logits",),
        topic="stable softmax",
    ),
    OpSpec(
        "softmax",
        lambda tg, a, axis=-1: tg.softmax(a, axis),
        lambda a, axis=-1: np.exp(a - _rows(a, axis)),
        SOFTMAX,
        ("logits",),
        topic="stable softmax",
    ),
    OpSpec(
        "log_softmax",
        lambda tg, a, axis=-1: tg.log_softmax(a, axis),
        lambda a, axis=-1: a - _rows(a, axis),
        SOFTMAX,
        ("logits",),
        topic="stable softmax",
    ),
    OpSpec(
        "log_softmax_extreme",
        lambda tg, a: tg.log_softmax(a, -1),
        lambda a: a - _rows(a, -1),
        (Case(((4, 6),), "logits of +-1000"),),
        ("extreme",),
        topic="stable softmax",
    ),
    OpSpec(
        "softmax_extreme",
        lambda tg, a: tg.softmax(a, -1),
        lambda a: np.exp(a - _rows(a, -1)),
        (Case(((4, 6),), "logits of +-1000"),),
        ("extreme",),
        topic="stable softmax",
    ),
    OpSpec(
        "logsumexp_extreme",
        lambda tg, a: tg.logsumexp(a, 1),
        lambda a: _rows(a, 1)[:, 0],
        (Case(((4, 6),), "logits of +-1000"),),
        ("extreme",),
        topic="stable softmax",
    ),
    # shape ops
    OpSpec(
        "reshape",
        lambda tg, a, shape: a.reshape(shape),
        lambda a, shape: a.reshape(shape),
        (
            Case(((3, 4),), "to 3-d", {"shape": (2, 3, 2)}),
            Case(((2, 6),), "with -1", {"shape": (-1,)}),
            Case(((4,),), "to column", {"shape": (4, 1)}),
        ),
        ("normal",),
        topic="shapes",
    ),
    OpSpec(
        "transpose",
        lambda tg, a, axes=None: a.transpose(*(axes or ())),
        lambda a, axes=None: np.transpose(a, axes),
        (Case(((3, 5),), "matrix"), Case(((2, 3, 4),), "3-d permutation", {"axes": (1, 2, 0)})),
        ("normal",),
        topic="shapes",
    ),
    OpSpec(
        "T",
        lambda tg, a: a.T,
        lambda a: a.T,
        (Case(((3, 5),), "non-square"),),
        ("normal",),
        topic="shapes",
    ),
    OpSpec(
        "broadcast_to",
        lambda tg, a, shape: a.broadcast_to(shape),
        lambda a, shape: np.broadcast_to(a, shape),
        (
            Case(((3, 1),), "column to matrix", {"shape": (3, 4)}),
            Case(((4,),), "row to 3-d", {"shape": (2, 3, 4)}),
            Case(((),), "scalar", {"shape": (2, 2)}),
        ),
        ("normal",),
        topic="broadcasting",
    ),
    OpSpec(
        "getitem",
        lambda tg, a, index: a[index],
        _ref_getitem,
        (
            Case(((4, 5),), "slice", {"index": (slice(1, 3), slice(None, None, 2))}),
            Case(((4, 5),), "row", {"index": 2}),
            Case(((4, 5),), "negative step", {"index": (slice(None, None, -1), 1)}),
            Case(((3, 4),), "integer array with repeats", {"index": _REPEATS[_REPEATS < 3]}),
            Case(
                ((4, 5),),
                "paired integer arrays",
                {"index": (np.array([0, 3, 0]), np.array([1, 4, 1]))},
            ),
        ),
        ("normal",),
        topic="indexing",
    ),
    OpSpec(
        "getitem_square",
        lambda tg, a, index: a[index] ** 2,
        lambda a, index: _ref_getitem(a, index) ** 2,
        (
            Case(
                ((3, 4),), "integer array with repeats, squared", {"index": _REPEATS[_REPEATS < 3]}
            ),
            Case(((4, 5),), "slice, squared", {"index": (slice(1, 3), slice(None, None, 2))}),
        ),
        ("normal",),
        topic="indexing",  # its second derivative runs ScatterAdd.backward
    ),
    OpSpec(
        "concatenate",
        lambda tg, a, b, axis=0: tg.concatenate([a, b], axis),
        lambda a, b, axis=0: np.concatenate([a, b], axis),
        (Case(((2, 3), (4, 3)), "axis 0"), Case(((2, 3), (2, 5)), "axis 1", {"axis": 1})),
        ("normal", "normal"),
        topic="shapes",
    ),
    OpSpec(
        "stack",
        lambda tg, a, b, axis=0: tg.stack([a, b], axis),
        lambda a, b, axis=0: np.stack([a, b], axis),
        (
            Case(((2, 3), (2, 3)), "new axis 0"),
            Case(((2, 3), (2, 3)), "new last axis", {"axis": -1}),
        ),
        ("normal", "normal"),
        topic="shapes",
    ),
    OpSpec(
        "where",
        lambda tg, a, b: tg.where(a > 0, a, b),
        lambda a, b: np.asarray(np.where(a > 0, a, b)),
        (
            Case(((3, 4), (3, 4)), "same shape"),
            Case(((3, 4), (4,)), "broadcast b"),
            Case(((3, 1), (3, 4)), "broadcast a (and the condition)"),
        ),
        ("nonzero", "normal"),
        smooth=False,
        topic="shapes",
    ),
    # the tape: fan-out, reused nodes, deep composition
    OpSpec(
        "fanout",
        lambda tg, x: x * x + tg.sin(x) * x,
        lambda x: x * x + np.sin(x) * x,
        UNARY,
        ("normal",),
        topic="tape: fan-out",
    ),
    OpSpec(
        "reused_node",
        lambda tg, x: (lambda y: y * y + y)(tg.exp(x)),
        lambda x: np.exp(x) ** 2 + np.exp(x),
        UNARY,
        ("normal",),
        topic="tape: reused node",
    ),
    OpSpec(
        "diamond",
        lambda tg, x, w: tg.tanh(x @ w) @ w.T + x,
        lambda x, w: np.tanh(x @ w) @ w.T + x,
        (Case(((3, 4), (4, 4)), "square weight shared"),),
        ("normal", "normal"),
        topic="tape: reused node",
    ),
    OpSpec(
        "mlp_layer",
        lambda tg, x, w, b: tg.relu(x @ w + b).sum(axis=1),
        lambda x, w, b: np.maximum(x @ w + b, 0).sum(axis=1),
        (Case(((5, 4), (4, 3), (3,)), "batch 5, 4 -> 3"),),
        ("normal", "normal", "normal"),
        smooth=False,
        topic="vectorized minibatch",
    ),
    OpSpec(
        "course_example",
        lambda tg, x1, x2: tg.log(x1) + x1 * x2 - tg.sin(x2),
        lambda x1, x2: np.log(x1) + x1 * x2 - np.sin(x2),
        (Case(((), ()), "scalars"), Case(((6,), (6,)), "vectors")),
        ("positive", "normal"),
        topic="chain rule",
    ),
    # hw2: the fused functions of tapegrad.nn.functional, whose backward and jvp rules are
    # written by hand (a fast first-order path, and one built from ops for create_graph)
    OpSpec(
        "linear",
        lambda tg, x, w, b: tg.nn.functional.linear(x, w, b),
        lambda x, w, b: x @ np.swapaxes(w, -1, -2) + b,
        (
            Case(((5, 4), (3, 4), (3,)), "batch 5, 4 -> 3"),
            Case(((2, 5, 4), (3, 4), (3,)), "a (2, 5, 4) input: the leading axes are a batch"),
        ),
        ("normal", "normal", "normal"),
        assignment="hw2",
        topic="layers",
    ),
    OpSpec(
        "linear_nobias",
        lambda tg, x, w: tg.nn.functional.linear(x, w),
        lambda x, w: x @ np.swapaxes(w, -1, -2),
        (Case(((5, 4), (3, 4)), "batch 5, 4 -> 3, no bias"),),
        ("normal", "normal"),
        assignment="hw2",
        topic="layers",
    ),
    # linear's create_graph path, input by input: hvp differentiates the first input twice
    OpSpec(
        "linear_square_x",
        lambda tg, x, w, b: tg.nn.functional.linear(x, w, b) ** 2,
        lambda x, w, b: (x @ np.swapaxes(w, -1, -2) + b) ** 2,
        (Case(((2, 5, 4), (3, 4), (3,)), "a (2, 5, 4) input, squared"),),
        ("normal", "normal", "normal"),
        assignment="hw2",
        jvp=False,
        topic="layers",
    ),
    OpSpec(
        "linear_square_w",
        lambda tg, w, x, b: tg.nn.functional.linear(x, w, b) ** 2,
        lambda w, x, b: (x @ np.swapaxes(w, -1, -2) + b) ** 2,
        (Case(((3, 4), (2, 5, 4), (3,)), "the weight, with a (2, 5, 4) input, squared"),),
        ("normal", "normal", "normal"),
        assignment="hw2",
        jvp=False,
        topic="layers",
    ),
    OpSpec(
        "linear_square_b",
        lambda tg, b, x, w: tg.nn.functional.linear(x, w, b) ** 2,
        lambda b, x, w: (x @ np.swapaxes(w, -1, -2) + b) ** 2,
        (Case(((3,), (2, 5, 4), (3, 4)), "the bias, with a (2, 5, 4) input, squared"),),
        ("normal", "normal", "normal"),
        assignment="hw2",
        jvp=False,
        topic="layers",
    ),
    OpSpec(
        "cross_entropy",
        lambda tg, z: tg.nn.functional.cross_entropy(z, _labels(z.shape)),
        lambda z: -np.mean(_log_softmax_rows(z)[np.arange(z.shape[0]), _labels(z.shape)]),
        (Case(((6, 4),), "6 samples, 4 classes"), Case(((1, 3),), "a single sample")),
        ("logits",),
        assignment="hw2",
        topic="losses",
    ),
    OpSpec(
        "flatten",
        lambda tg, x: tg.nn.functional.flatten(x),
        lambda x: x.reshape(x.shape[0], -1),
        (
            Case(((2, 3, 4, 5),), "(N, C, H, W) -> (N, C*H*W)"),
            Case(((3, 2, 2),), "(N, H, W) -> (N, H*W)"),
        ),
        ("normal",),
        assignment="hw2",
        smooth=False,  # linear in x: the gradient does not depend on x, no graph to check
        topic="layers",
    ),
    # hw3: convolution through im2col; the jvp runs Im2Col.jvp, the second derivative of a
    # squared convolution runs Im2Col.backward's own backward (Col2Im.backward)
    OpSpec(
        "conv2d",
        lambda tg, x, w, b, **kw: tg.nn.functional.conv2d(x, w, b, **kw),
        lambda x, w, b, **kw: _ref_conv2d(x, w, b, **kw),
        (
            Case(((2, 3, 5, 5), (4, 3, 3, 3), (4,)), "3x3, padding 1", {"padding": 1}),
            Case(((1, 2, 6, 5), (3, 2, 2, 3), (3,)), "2x3 kernel, stride 2", {"stride": 2}),
        ),
        ("normal", "normal", "normal"),
        assignment="hw3",
        smooth=False,  # bilinear: see conv2d_square for the second derivative
        topic="convolution",
    ),
    OpSpec(
        "conv2d_square",
        lambda tg, x, w, b, **kw: tg.nn.functional.conv2d(x, w, b, **kw) ** 2,
        lambda x, w, b, **kw: _ref_conv2d(x, w, b, **kw) ** 2,
        (Case(((2, 2, 4, 4), (3, 2, 3, 3), (3,)), "3x3, padding 1, squared", {"padding": 1}),),
        ("normal", "normal", "normal"),
        assignment="hw3",
        topic="convolution",
    ),
)

_BY_NAME = {s.name: s for s in SPECS}
assert len(_BY_NAME) == len(SPECS), "duplicate op names in SPECS"


def spec(name: str) -> OpSpec:
    """The spec called ``name``."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no op spec named {name!r}; known: {', '.join(_BY_NAME)}") from None
