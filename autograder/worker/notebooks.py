"""Notebook checks: a function from a graded notebook cell, called with the same inputs on
both sides and compared in the parent.

The worker executes the student's graded cell (extracted from their notebook) and calls the
function; the parent executes the instructor's solution cell from the source notebook in
``assignments/`` (trusted) and calls it on the same inputs. Inputs are data (arrays and
parameters); where a graded function takes a function, it is named from a fixed table here
(``FUNCTIONS``), so no code travels. The nbgrader test cells (with their hidden asserts) stay
with the instructor: they are never sent to the sandbox.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from autograder.grading.diagnose import Verdict, compare_values
from .cells import extract_graded_source
from autograder.grading.results import CaseOutcome
from .loop import handler

__all__ = ["NOTEBOOK_PROBES", "run_notebook_check", "load_namespace"]

Namespace = dict[str, Any]
Case = tuple[str, dict[str, Any], list[np.ndarray]]

# functions a graded function may receive, by name (the same on both sides)
FUNCTIONS: dict[str, Callable[[Any], Any]] = {
    "cube": lambda x: x**3,
    "sin": np.sin,
    "exp": np.exp,
    "tanh": np.tanh,
    "softplus": lambda x: np.log1p(np.exp(x)),
}

# expressions for dual-number derivative checks, over the notebook's own sin/cos/exp/log
EXPRESSIONS: dict[str, Callable[[Namespace], Callable[[Any], Any]]] = {
    "cube": lambda ns: lambda x: x * x * x,
    "sin": lambda ns: ns["sin"],
    "course example": lambda ns: lambda x: ns["log"](x) + x * 5.0 - ns["sin"](5.0),
    "cos(x) * x": lambda ns: lambda x: ns["cos"](x) * x,
    "exp(x) / (1 + x^2)": lambda ns: lambda x: ns["exp"](x) / (1.0 + x * x),
    "3 - x": lambda ns: lambda x: 3.0 - x,
    "2 / x": lambda ns: lambda x: 2.0 / x,
}


@dataclass(frozen=True)
class NotebookProbe:
    """How to exercise one graded notebook function."""

    cases: Callable[[np.random.Generator], list[Case]]
    call: Callable[[Namespace, dict[str, Any], list[np.ndarray]], list[np.ndarray]]
    atol: float = 1e-9
    rtol: float = 1e-7


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


def _numerical_derivative_call(
    ns: Namespace, params: dict[str, Any], arrays: list[np.ndarray]
) -> list[np.ndarray]:
    f = FUNCTIONS[params["f"]]
    x: Any = float(arrays[0]) if params.get("scalar") else arrays[0]
    kwargs = {"eps": params["eps"]} if "eps" in params else {}
    return [np.asarray(ns["numerical_derivative"](f, x, **kwargs), dtype=np.float64)]


def _derivative_cases(rng: np.random.Generator) -> list[Case]:
    cases: list[Case] = [("Dual arithmetic", {"dual": True}, [rng.uniform(0.5, 3.0, 4)])]
    for name in EXPRESSIONS:
        cases.append((f"derivative of {name}", {"expr": name}, [np.array(rng.uniform(0.5, 3.0))]))
    return cases


def _derivative_call(
    ns: Namespace, params: dict[str, Any], arrays: list[np.ndarray]
) -> list[np.ndarray]:
    if params.get("dual"):
        a, ta, b, tb = (float(v) for v in arrays[0])
        d = ns["Dual"](a, ta) * ns["Dual"](b, tb) + 1.0
        q = ns["Dual"](a, ta) / ns["Dual"](b, tb) - 2.0
        return [np.array([d.primal, d.tangent, q.primal, q.tangent], dtype=np.float64)]
    fn = EXPRESSIONS[params["expr"]](ns)
    return [np.asarray(float(ns["derivative"](fn, float(arrays[0]))), dtype=np.float64)]


def _accuracy_cases(rng: np.random.Generator) -> list[Case]:
    cases: list[Case] = []
    for n, c in ((4, 3), (100, 10), (1, 5)):
        logits = rng.standard_normal((n, c))
        labels = rng.integers(0, c, n)
        labels[: n // 2] = logits[: n // 2].argmax(axis=1)  # a mix of right and wrong rows
        cases.append((f"{n} rows, {c} classes", {}, [logits, labels]))
    return cases


def _accuracy_call(
    ns: Namespace, params: dict[str, Any], arrays: list[np.ndarray]
) -> list[np.ndarray]:
    value = ns["accuracy"](arrays[0], arrays[1])
    if not isinstance(value, float):
        raise TypeError(f"accuracy returned {type(value).__name__}, expected a Python float")
    return [np.asarray(value)]


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


def _im2col_shape_call(
    ns: Namespace, params: dict[str, Any], arrays: list[np.ndarray]
) -> list[np.ndarray]:
    try:
        rows, cols = ns["im2col_shape"](
            tuple(params["shape"]), params["k"], stride=params["stride"], padding=params["padding"]
        )
    except ValueError:
        return [np.array([-1, -1], dtype=np.int64)]  # "raised ValueError", as the task asks
    return [np.array([rows, cols], dtype=np.int64)]


NOTEBOOK_PROBES: dict[str, NotebookProbe] = {
    "numerical_derivative": NotebookProbe(
        _numerical_derivative_cases, _numerical_derivative_call, 1e-9, 1e-6
    ),
    "derivative": NotebookProbe(_derivative_cases, _derivative_call, 1e-10, 1e-9),
    "accuracy": NotebookProbe(_accuracy_cases, _accuracy_call, 1e-12, 1e-12),
    "im2col_shape": NotebookProbe(_im2col_shape_cases, _im2col_shape_call, 0, 0),
}


def load_namespace(notebook: Path, grade_id: str) -> Namespace:
    """Execute a graded cell's source as a module and return its namespace.

    In the worker this runs the student's cell; in the parent, only the instructor's source
    notebook from ``assignments/`` is ever loaded this way.
    """
    source = extract_graded_source(notebook, [grade_id])
    ns: Namespace = {"__name__": f"notebook_{grade_id.replace('-', '_')}", "math": math}
    exec(compile(source, f"{notebook.name}:{grade_id}", "exec"), ns)  # noqa: S102
    return ns


_loaded: dict[tuple[str, str], Namespace] = {}


@handler("notebook")
def notebook_probe(
    tg: ModuleType, header: dict[str, Any], arrays: list[np.ndarray]
) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Worker side: run the student's graded cell (once) and call the function on one case."""
    name = Path(str(header["notebook"])).name  # a file at the top of the submission, no path
    key = (name, str(header["grade_id"]))
    if key not in _loaded:
        root = Path(str(tg.__file__)).resolve().parent.parent  # the submission holds tapegrad/
        _loaded[key] = load_namespace(root / name, key[1])
    probe = NOTEBOOK_PROBES[str(header["function"])]
    return {}, probe.call(_loaded[key], dict(header["params"]), arrays)


Request = Callable[[dict[str, Any], list[np.ndarray]], tuple[dict[str, Any], list[np.ndarray]]]


def run_notebook_check(
    request: Request,
    source_notebook: Path,
    notebook: str,
    grade_id: str,
    function: str,
    rng: np.random.Generator,
) -> list[CaseOutcome]:
    """Parent side: every case of one notebook check."""
    from autograder.grading.ops import RequestFailed

    if function not in NOTEBOOK_PROBES:
        raise KeyError(
            f"no notebook probe for function {function!r}; known: {', '.join(NOTEBOOK_PROBES)}"
        )
    probe = NOTEBOOK_PROBES[function]
    reference = load_namespace(source_notebook, grade_id)
    outcomes: list[CaseOutcome] = []
    cases = probe.cases(rng)
    for n, (label, params, arrays) in enumerate(cases):
        expected = probe.call(reference, params, [a.copy() for a in arrays])
        try:
            _, got = request(
                {
                    "type": "notebook",
                    "notebook": notebook,
                    "grade_id": grade_id,
                    "function": function,
                    "params": params,
                },
                arrays,
            )
        except RequestFailed as exc:
            outcomes.append(
                CaseOutcome(label, False, f"{function} ({label}): {exc}", exc.bug_class)
            )
            if exc.fatal or exc.bug_class == "not_implemented":
                outcomes += [
                    CaseOutcome(rest[0], False, f"not run: {exc}", exc.bug_class)
                    for rest in cases[n + 1 :]
                ]
                break
            continue
        verdict = _judge(got, expected, probe)
        message = "" if verdict.ok else f"{function} ({label}): {verdict.message}"
        outcomes.append(CaseOutcome(label, verdict.ok, message, verdict.bug_class))
    return outcomes


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
        verdict = compare_values("result", g, e, atol=probe.atol, rtol=probe.rtol)
        if not verdict.ok:
            return verdict
    return Verdict(True)
