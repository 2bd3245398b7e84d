"""The worker half of the notebook checks: run the student's graded cell and call the function
it defines on one case (the judge half, :mod:`autograder.grading.notebooks`, draws the cases
and compares with the instructor's cell, called through the same :data:`CALLS`).

Inputs are data (arrays and parameters); where a graded function takes a function, it is named
from a fixed table here (:data:`FUNCTIONS`), so no code travels. The nbgrader test cells (with
their hidden asserts) never come here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from .cells import extract_graded_source

__all__ = [
    "CALLS",
    "EXPRESSIONS",
    "FUNCTIONS",
    "VAR_EXPRESSIONS",
    "Namespace",
    "load_namespace",
    "notebook_handler",
]

Namespace = dict[str, Any]

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


# expressions for the scalar tracer Var of hw1: name -> (arity, function of the notebook's Vars)
VAR_EXPRESSIONS: dict[str, tuple[int, Callable[..., Any]]] = {
    "log(x) * exp(y), each input used once": (2, lambda x, y: x.log() * y.exp()),
    "Y = X + X, Z = Y + X": (1, lambda x: (x + x) + x),
    "x * x * x": (1, lambda x: x * x * x),
    "course example ln(x1) + x1 x2 - sin(x2)": (2, lambda a, b: a.log() + a * b - b.sin()),
    "diamond: a = x y, b = a + x, a * b": (2, lambda x, y: (lambda a: a * (a + x))(x * y)),
    "constants: 2 x + x 3 - 1 - (4 - x)": (1, lambda x: 2.0 * x + x * 3.0 - 1.0 - (4.0 - x)),
    "sin(exp(x) y) + y": (2, lambda x, y: (x.exp() * y).sin() + y),
}


def _numerical_derivative_call(
    ns: Namespace, params: dict[str, Any], arrays: list[np.ndarray]
) -> list[np.ndarray]:
    f = FUNCTIONS[params["f"]]
    x: Any = float(arrays[0]) if params.get("scalar") else arrays[0]
    kwargs = {"eps": params["eps"]} if "eps" in params else {}
    return [np.asarray(ns["numerical_derivative"](f, x, **kwargs), dtype=np.float64)]


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


def _forward_trace_call(
    ns: Namespace, params: dict[str, Any], arrays: list[np.ndarray]
) -> list[np.ndarray]:
    x1, x2, dx1, dx2 = (float(v) for v in arrays[0])
    rows = [tuple(map(float, row)) for row in ns["forward_trace"](x1, x2, dx1, dx2)]
    return [np.array(rows, dtype=np.float64).reshape(len(rows), 2)]


def _scalar_var_call(
    ns: Namespace, params: dict[str, Any], arrays: list[np.ndarray]
) -> list[np.ndarray]:
    """Evaluate one expression on the notebook's Var, backward from the result: its value,
    then the .grad of every input."""
    arity, fn = VAR_EXPRESSIONS[params["expr"]]
    inputs = [ns["Var"](float(v)) for v in arrays[0][:arity]]
    out = fn(*inputs)
    out.backward()
    return [np.array([float(out.data)] + [float(v.grad) for v in inputs], dtype=np.float64)]


def _softmax_regression_call(
    ns: Namespace, params: dict[str, Any], arrays: list[np.ndarray]
) -> list[np.ndarray]:
    x, y, w, b = arrays
    dw, db = ns["softmax_regression_grad"](x, y.astype(np.int64), w, b)
    return [np.asarray(dw, dtype=np.float64), np.asarray(db, dtype=np.float64)]


def _stable_log_softmax_call(
    ns: Namespace, params: dict[str, Any], arrays: list[np.ndarray]
) -> list[np.ndarray]:
    return [np.asarray(ns["stable_log_softmax"](arrays[0]), dtype=np.float64)]


def _col2im_call(
    ns: Namespace, params: dict[str, Any], arrays: list[np.ndarray]
) -> list[np.ndarray]:
    out = ns["col2im_loops"](
        arrays[0], tuple(params["shape"]), params["k"], params["stride"], params["padding"]
    )
    return [np.asarray(out, dtype=np.float64)]


def _max_pool_grad_call(
    ns: Namespace, params: dict[str, Any], arrays: list[np.ndarray]
) -> list[np.ndarray]:
    return [np.asarray(ns["max_pool_grad"](arrays[0], arrays[1], params["k"]), np.float64)]


def _accuracy_call(
    ns: Namespace, params: dict[str, Any], arrays: list[np.ndarray]
) -> list[np.ndarray]:
    value = ns["accuracy"](arrays[0], arrays[1])
    if not isinstance(value, float):
        raise TypeError(f"accuracy returned {type(value).__name__}, expected a Python float")
    return [np.asarray(value)]


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


def _reverse_sweep_call(
    ns: Namespace, params: dict[str, Any], arrays: list[np.ndarray]
) -> list[np.ndarray]:
    program, x = arrays
    values, grads = ns["reverse_sweep"](program.astype(np.int64), x.copy())
    return [np.asarray(values, np.float64), np.asarray(grads, np.float64)]


def _dead_mask_call(
    ns: Namespace, params: dict[str, Any], arrays: list[np.ndarray]
) -> list[np.ndarray]:
    program, outputs = arrays
    kept = ns["dead_mask"](program.astype(np.int64), params["inputs"], [int(o) for o in outputs])
    return [np.asarray(kept, dtype=bool).astype(np.int64)]


def _last_use_call(
    ns: Namespace, params: dict[str, Any], arrays: list[np.ndarray]
) -> list[np.ndarray]:
    program, outputs = arrays
    last = ns["last_use"](program.astype(np.int64), params["inputs"], [int(o) for o in outputs])
    return [np.asarray(last, dtype=np.int64)]


Call = Callable[[Namespace, dict[str, Any], list[np.ndarray]], list[np.ndarray]]

# graded function -> how to call it on one case (the same on both sides)
CALLS: dict[str, Call] = {
    "numerical_derivative": _numerical_derivative_call,
    "derivative": _derivative_call,
    "forward_trace": _forward_trace_call,
    "Var": _scalar_var_call,
    "accuracy": _accuracy_call,
    "softmax_regression_grad": _softmax_regression_call,
    "stable_log_softmax": _stable_log_softmax_call,
    "im2col_shape": _im2col_shape_call,
    "col2im_loops": _col2im_call,
    "max_pool_grad": _max_pool_grad_call,
    "reverse_sweep": _reverse_sweep_call,
    "dead_mask": _dead_mask_call,
    "last_use": _last_use_call,
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


def notebook_handler(
    tg: ModuleType, header: dict[str, Any], arrays: list[np.ndarray]
) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Worker side: run the student's graded cell (once) and call the function on one case."""
    name = Path(str(header["notebook"])).name  # a file at the top of the submission, no path
    key = (name, str(header["grade_id"]))
    if key not in _loaded:
        root = Path(str(tg.__file__)).resolve().parent.parent  # the submission holds tapegrad/
        _loaded[key] = load_namespace(root / name, key[1])
    return {}, CALLS[str(header["function"])](_loaded[key], dict(header["params"]), arrays)
