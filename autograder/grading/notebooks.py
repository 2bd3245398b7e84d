"""The judge half of the notebook checks: a function from a graded notebook cell, called with
the same inputs in the worker (the student's cell) and here (the instructor's), and compared.

The cases are drawn here; the worker half (:mod:`autograder.worker.notebooks`) runs the
student's graded cell and calls the function; this process executes the instructor's solution
cell from the source notebook in ``assignments/`` (trusted) through the same call
(:data:`~autograder.worker.notebooks.CALLS`), so both sides are asked the same question. The
nbgrader test cells (with their hidden asserts) stay with the instructor: they are never sent
to the sandbox.

A student release has no solution cell: for its public checks (a fixed seed, so fixed cases)
``kit release`` records the solution's answers (:func:`record_answers`, plain JSON numbers) and
``grade --public`` judges against them (:func:`recorded_reference`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from autograder.worker.notebooks import CALLS, EXPRESSIONS, VAR_EXPRESSIONS, load_namespace

from .cases import Request, run_cases
from .diagnose import Verdict, compare_values
from .results import CaseOutcome

__all__ = [
    "NOTEBOOK_PROBES",
    "Reference",
    "record_answers",
    "recorded_reference",
    "run_notebook_check",
    "solution_reference",
]

Case = tuple[str, dict[str, Any], list[np.ndarray]]


@dataclass(frozen=True)
class NotebookProbe:
    """How to exercise one graded notebook function: its cases and how close is right."""

    cases: Callable[[np.random.Generator], list[Case]]
    atol: float = 1e-9
    rtol: float = 1e-7
    what: str = "result"  # what the compared array holds, in feedback


def _numerical_derivative_cases(rng: np.random.Generator) -> list[Case]:
    cases: list[Case] = []
    for name in ("cube", "sin", "exp", "softplus"):
        cases.append(
            (f"{name} at a scalar", {"f": name, "scalar": True}, [np.array(rng.uniform(-1.5, 1.5))])
        )
    cases.append(("exp on an array", {"f": "exp"}, [rng.uniform(-2, 2, 7)]))
    cases.append(("tanh on a matrix", {"f": "tanh"}, [rng.standard_normal((2, 3))]))
    cases.append(
        (
            "coarse eps (central, not forward, differences)",
            {"f": "exp", "eps": 1e-2, "scalar": True},
            [np.array(rng.uniform(0.5, 1.5))],
        )
    )
    return cases


def _derivative_cases(rng: np.random.Generator) -> list[Case]:
    cases: list[Case] = [("Dual arithmetic", {"dual": True}, [rng.uniform(0.5, 3.0, 4)])]
    for name in EXPRESSIONS:
        cases.append((f"derivative of {name}", {"expr": name}, [np.array(rng.uniform(0.5, 3.0))]))
    return cases


def _forward_trace_cases(rng: np.random.Generator) -> list[Case]:
    cases: list[Case] = [
        ("the lecture's point (2, 5), seeded in x1", {}, [np.array([2.0, 5.0, 1, 0])])
    ]
    cases.append(("seeded in x2", {}, [np.array([rng.uniform(0.5, 3), rng.uniform(-3, 3), 0, 1])]))
    for _ in range(3):
        x = [rng.uniform(0.5, 3.0), rng.uniform(-3.0, 3.0), *rng.standard_normal(2)]
        cases.append(("a random point and direction", {}, [np.array(x)]))
    return cases


def _scalar_var_cases(rng: np.random.Generator) -> list[Case]:
    return [(name, {"expr": name}, [rng.uniform(0.5, 2.0, 2)]) for name in VAR_EXPRESSIONS]


def _accuracy_cases(rng: np.random.Generator) -> list[Case]:
    cases: list[Case] = []
    for n, c in ((4, 3), (100, 10), (1, 5)):
        logits = rng.standard_normal((n, c))
        labels = rng.integers(0, c, n)
        labels[: n // 2] = logits[: n // 2].argmax(axis=1)  # a mix of right and wrong rows
        cases.append((f"{n} rows, {c} classes", {}, [logits, labels]))
    return cases


def _softmax_regression_cases(rng: np.random.Generator) -> list[Case]:
    cases: list[Case] = []
    for n, d, c, shift in ((6, 4, 3, 0.0), (32, 10, 5, 0.0), (1, 3, 2, 0.0), (8, 5, 4, 800.0)):
        x, w = rng.standard_normal((n, d)), rng.standard_normal((d, c))
        b = rng.standard_normal(c) + shift
        label = f"N={n}, D={d}, C={c}" + (f", logits near {shift:g}" if shift else "")
        cases.append((label, {}, [x, rng.integers(0, c, n), w, b]))
    return cases


def _stable_log_softmax_cases(rng: np.random.Generator) -> list[Case]:
    return [
        ("small logits", {}, [rng.standard_normal((4, 5))]),
        ("one row", {}, [rng.standard_normal((1, 7))]),
        ("logits near +1000", {}, [rng.standard_normal((3, 4)) + 1000.0]),
        ("logits near -1000", {}, [rng.standard_normal((3, 4)) - 1000.0]),
        ("spread of 2000 in a row", {}, [np.array([[1000.0, 0.0, -1000.0]]) + rng.normal()]),
    ]


def _im2col_shape_cases(rng: np.random.Generator) -> list[Case]:
    cases: list[Case] = []
    for _ in range(5):
        n, c = int(rng.integers(1, 9)), int(rng.integers(1, 5))
        h, w = int(rng.integers(3, 33)), int(rng.integers(3, 33))
        k, s, p = int(rng.integers(1, 6)), int(rng.integers(1, 4)), int(rng.integers(0, 3))
        cases.append(
            (
                f"({n}, {c}, {h}, {w}), k={k}, stride={s}, padding={p}",
                {"shape": [n, c, h, w], "k": k, "stride": s, "padding": p},
                [],
            )
        )
    cases.append(
        (
            "a filter larger than the padded input",
            {"shape": [1, 1, 2, 2], "k": 5, "stride": 1, "padding": 0},
            [],
        )
    )
    return cases


def _col2im_cases(rng: np.random.Generator) -> list[Case]:
    cases: list[Case] = []
    for shape, k, stride, padding in (
        ((1, 1, 3, 3), 2, 1, 0),
        ((2, 3, 6, 6), 3, 1, 1),
        ((1, 2, 7, 5), 3, 2, 0),
        ((3, 1, 5, 5), 2, 2, 1),
        ((2, 2, 4, 6), 3, 1, 2),
    ):
        n, c, h, w = shape
        out_h, out_w = (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1
        cols = rng.standard_normal((n * out_h * out_w, c * k * k))
        label = f"{shape}, k={k}, stride={stride}, padding={padding}"
        params = {"shape": list(shape), "k": k, "stride": stride, "padding": padding}
        cases.append((label, params, [cols]))
    return cases


def _max_pool_grad_cases(rng: np.random.Generator) -> list[Case]:
    cases: list[Case] = []
    for shape, k in (((1, 1, 2, 4), 2), ((2, 3, 6, 6), 3), ((1, 2, 8, 4), 2), ((3, 1, 4, 4), 4)):
        x = rng.permutation(int(np.prod(shape))).reshape(shape).astype(np.float64)  # no ties
        gy = rng.standard_normal((shape[0], shape[1], shape[2] // k, shape[3] // k))
        cases.append((f"x {shape}, {k}x{k} windows", {"k": k}, [x, gy]))
    return cases


# The programs of hw4's notebook: row i is [op, a, b], value k + i = op(value a, value b)
# for k inputs (b = -1 for one-argument ops); ops 0 add, 1 mul, 2 sub, 3 sin, 4 cos, 5 exp,
# 6 log. Drawn with every value reachable or not, reused or not; log only of an input (drawn
# positive), and redrawn until no value exceeds 1e6 (products of products grow fast).
_UNARY = {3: np.sin, 4: np.cos, 6: np.log}


def _program(rng: np.random.Generator, inputs: int, length: int) -> np.ndarray:
    while True:
        rows = []
        for i in range(length):
            available = inputs + i
            if rng.random() < 0.35:
                op = int(rng.choice((3, 4, 6)))
                a = int(rng.integers(0, inputs)) if op == 6 else int(rng.integers(0, available))
                rows.append([op, a, -1])
            else:
                a, b = (int(v) for v in rng.integers(0, available, 2))
                rows.append([int(rng.integers(0, 3)), a, b])
        values = list(rng.uniform(0.5, 2.0, inputs))
        for op, a, b in rows:
            u, v = values[a], values[b]
            values.append({0: u + v, 1: u * v, 2: u - v}[op] if op < 3 else _UNARY[op](u))
        if max(abs(v) for v in values) < 1e6:
            return np.array(rows, dtype=np.int64)


def _reverse_sweep_cases(rng: np.random.Generator) -> list[Case]:
    cases: list[Case] = []
    course = np.array([[6, 0, -1], [1, 0, 1], [0, 2, 3], [3, 1, -1], [2, 4, 5]])
    cases.append(("the course example ln(x1) + x1 x2 - sin(x2) at (2, 5)", {},
                  [course, np.array([2.0, 5.0])]))  # fmt: skip
    cases.append(("Y = X + X, Z = Y * X (a value used twice)", {},
                  [np.array([[0, 0, 0], [1, 1, 0]]), np.array([1.5])]))  # fmt: skip
    for inputs, length in ((2, 6), (3, 10), (1, 8)):
        program = _program(rng, inputs, length)
        label = f"a random program: {inputs} inputs, {length} operations"
        cases.append((label, {}, [program, rng.uniform(0.5, 2.0, inputs)]))
    return cases


def _liveness_cases(rng: np.random.Generator) -> list[Case]:
    cases: list[Case] = []
    chain = np.array([[5, 0, -1], [1, 0, 0], [0, 2, 1], [3, 0, -1]])  # value 4 (sin x) dead
    cases.append(("exp(x) + x * x, with sin(x) computed and unused", {"inputs": 1},
                  [chain, np.array([3])]))  # fmt: skip
    for inputs, length, outs in ((2, 8, 1), (3, 12, 2), (1, 6, 1)):
        program = _program(rng, inputs, length)
        total = inputs + length
        outputs = rng.choice(np.arange(inputs, total), size=outs, replace=False)
        label = f"a random program: {inputs} inputs, {length} operations, outputs {list(outputs)}"
        cases.append((label, {"inputs": inputs}, [program, outputs.astype(np.int64)]))
    return cases


NOTEBOOK_PROBES: dict[str, NotebookProbe] = {
    "numerical_derivative": NotebookProbe(_numerical_derivative_cases, 1e-9, 1e-6),
    "derivative": NotebookProbe(_derivative_cases, 1e-10, 1e-9),
    "forward_trace": NotebookProbe(
        _forward_trace_cases, 1e-10, 1e-9, "the trace (row i: v_i, dv_i; row 0 is v_-1)"
    ),
    "Var": NotebookProbe(
        _scalar_var_cases, 1e-10, 1e-9, "[output.data, then .grad of each input, in order]"
    ),
    "accuracy": NotebookProbe(_accuracy_cases, 1e-12, 1e-12),
    "softmax_regression_grad": NotebookProbe(_softmax_regression_cases, 1e-10, 1e-8, "dW, db"),
    "stable_log_softmax": NotebookProbe(_stable_log_softmax_cases, 1e-9, 1e-10),
    "im2col_shape": NotebookProbe(_im2col_shape_cases, 0, 0),
    "col2im_loops": NotebookProbe(_col2im_cases, 1e-12, 1e-12, "col2im(cols)"),
    "max_pool_grad": NotebookProbe(_max_pool_grad_cases, 1e-12, 1e-12, "the gradient of x"),
    "reverse_sweep": NotebookProbe(
        _reverse_sweep_cases, 1e-12, 1e-10, "the values of the program, then the gradients"
    ),
    "dead_mask": NotebookProbe(_liveness_cases, 0, 0, "which operations are kept (1) or not"),
    "last_use": NotebookProbe(_liveness_cases, 0, 0, "the last reader of each value"),
}


# What the right answer to a case is: (label, params, inputs) -> the expected arrays.
Reference = Callable[[str, dict[str, Any], list[np.ndarray]], list[np.ndarray]]


def solution_reference(source_notebook: Path, grade_id: str, function: str) -> Reference:
    """Answers computed by the instructor's solution cell (``source_notebook`` is trusted)."""
    namespace = load_namespace(source_notebook, grade_id)
    call = CALLS[function]

    def answer(label: str, params: dict[str, Any], arrays: list[np.ndarray]) -> list[np.ndarray]:
        return call(namespace, params, [a.copy() for a in arrays])

    return answer


def _case_digest(params: dict[str, Any], arrays: list[np.ndarray]) -> str:
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    for a in arrays:
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(np.ascontiguousarray(a).tobytes())
    return digest.hexdigest()


def _encode(a: np.ndarray) -> dict[str, Any]:
    return {"dtype": a.dtype.str, "shape": list(a.shape), "data": a.ravel().tolist()}


def _decode(item: Any) -> np.ndarray:
    dtype = np.dtype(item["dtype"])
    if dtype.kind not in "biuf":
        raise ValueError(f"a recorded answer of dtype {dtype} (numbers only)")
    return np.asarray(item["data"], dtype=dtype).reshape(item["shape"])


def record_answers(
    source_notebook: Path, grade_id: str, function: str, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """The instructor's answers to the cases ``rng`` draws, as JSON data (for a student
    release, whose public checks have a fixed seed and no solution cell to ask)."""
    answer = solution_reference(source_notebook, grade_id, function)
    return [
        {
            "label": label,
            "case": _case_digest(params, arrays),
            "expected": [_encode(np.asarray(e)) for e in answer(label, params, arrays)],
        }
        for label, params, arrays in NOTEBOOK_PROBES[function].cases(rng)
    ]


def recorded_reference(answers: list[dict[str, Any]], where: str) -> Reference:
    """Answers read back from :func:`record_answers`' data; a case the record does not hold
    (another grader version drew other cases) is an error naming ``where``."""
    by_case = {item["case"]: item for item in answers}

    def answer(label: str, params: dict[str, Any], arrays: list[np.ndarray]) -> list[np.ndarray]:
        item = by_case.get(_case_digest(params, arrays))
        if item is None:
            raise ValueError(
                f"{where} has no answer for the case {label!r}: it was written for another "
                "version of the grader; install the version your course gives you"
            )
        return [_decode(e) for e in item["expected"]]

    return answer


def run_notebook_check(
    request: Request,
    reference: Reference,
    notebook: str,
    grade_id: str,
    function: str,
    rng: np.random.Generator,
) -> list[CaseOutcome]:
    """Every case of one notebook check, judged against ``reference``'s answers."""
    probe = NOTEBOOK_PROBES[function]
    header = {"type": "notebook", "notebook": notebook, "grade_id": grade_id, "function": function}
    plan = [
        (label, partial(_run_case, probe, reference, header, label, params, arrays))
        for label, params, arrays in probe.cases(rng)
    ]
    return run_cases(request, function, plan)


def _run_case(
    probe: NotebookProbe,
    reference: Reference,
    header: dict[str, Any],
    label: str,
    params: dict[str, Any],
    arrays: list[np.ndarray],
    request: Request,
) -> tuple[Verdict, str]:
    expected = reference(label, params, arrays)
    _, got = request({**header, "params": params}, arrays)
    return _judge(got, expected, probe), label


def _judge(got: list[np.ndarray], expected: list[np.ndarray], probe: NotebookProbe) -> Verdict:
    if len(got) != len(expected):
        return Verdict(False, "the worker's reply was incomplete", "crash")
    for g, e in zip(got, expected):
        if e.dtype.kind == "i":
            if g.shape != e.shape or not np.array_equal(g, e):
                raised = bool(np.array_equal(e, [-1, -1]))
                return Verdict(
                    False,
                    f"returned {g.tolist()}, expected {'a ValueError' if raised else e.tolist()}",
                    "wrong_forward",
                )
            continue
        verdict = compare_values(probe.what, g, e, atol=probe.atol, rtol=probe.rtol)
        if not verdict.ok:
            return verdict
    return Verdict(True)
