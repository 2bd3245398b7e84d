"""The worker half of the hw4 probes: the student's tracer (``tg.trace``), the derivative code
it generates (``graph.derivative_function``) and the dead-value pass of ``tg.compile``.

The functions traced are named from :data:`FUNCTIONS` (written with the student's ``tg``;
the judge half, :mod:`autograder.grading.modules.compiler`, holds their float64 NumPy
references and what their traces must look like), so no code travels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from ..tensors import Arrays, Outputs, Params, to_array

__all__ = ["FUNCTIONS", "Traced", "run_dead_values", "run_derivative_source", "run_trace"]


@dataclass(frozen=True)
class Traced:
    """A function the probes trace: ``build(tg)`` gives it on Tensors, ``numpy`` in float64."""

    build: Callable[[ModuleType], Callable[..., Any]]
    numpy: Callable[..., float]
    shapes: tuple[tuple[int, ...], ...]
    ops: tuple[str, ...]  # its trace's ops (lowercase Function class names), in any order
    positive: bool = False  # inputs drawn in (0.5, 2) (a log), else standard normal
    smooth: bool = True  # no constant the trace freezes (a ReLU mask): derivative code is
    # valid at any input of these shapes
    dead: int = 0  # array operations whose result nothing uses
    constants: tuple[float, ...] = ()  # the one-element constants of its trace, in order
    reuses: bool = False  # a value of its trace is read by two ops (its adjoint accumulates)


def _softmax_rows(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


FUNCTIONS: dict[str, Traced] = {
    "course example": Traced(
        lambda tg: lambda x1, x2: (tg.log(x1) + x1 * x2 - tg.sin(x2)).sum(),
        lambda x1, x2: float(np.sum(np.log(x1) + x1 * x2 - np.sin(x2))),
        ((4,), (4,)),
        ("log", "mul", "add", "sin", "sub", "sum"),
        positive=True,
        reuses=True,
    ),
    "a tanh layer, squared and halved": Traced(
        lambda tg: lambda x, w, b: (tg.tanh(x @ w + b) ** 2.0).sum() * 0.5,
        lambda x, w, b: float(np.sum(np.tanh(x @ w + b) ** 2) * 0.5),
        ((3, 4), (4, 2), (2,)),
        ("matmul", "add", "tanh", "pow", "sum", "mul"),
        constants=(2.0, 0.5),
    ),
    "a reused value: y = x * x, z = y + x, sum(z * y)": Traced(
        lambda tg: _reused,
        lambda x: float(np.sum((x * x + x) * (x * x))),
        ((2, 3),),
        ("mul", "add", "mul", "sum"),
        reuses=True,
    ),
    "ReLU then log-softmax": Traced(
        lambda tg: lambda x, w: tg.log_softmax(tg.relu(x @ w), axis=1).sum(),
        lambda x, w: float(np.sum(np.log(_softmax_rows(np.maximum(x @ w, 0))))),
        ((3, 4), (4, 5)),
        ("matmul", "relu", "logsoftmax", "sum"),
        smooth=False,
    ),
    "dead values: exp(x) * 3 computed and dropped, then sum(tanh(x @ w)**2)": Traced(
        lambda tg: lambda x, w: _with_dead(tg, x, w),
        lambda x, w: float(np.sum(np.tanh(x @ w) ** 2)),
        ((4, 3), (3, 2)),
        ("matmul", "tanh", "pow", "sum"),
        dead=2,
        constants=(2.0,),
    ),
}


def _reused(x: Any) -> Any:
    y = x * x
    z = y + x
    return (z * y).sum()


def _with_dead(tg: ModuleType, x: Any, w: Any) -> Any:
    _ = tg.exp(x) * 3.0  # computed, never used
    return (tg.tanh(x @ w) ** 2.0).sum()


def _function(tg: ModuleType, p: Params) -> tuple[Traced, Callable[..., Any]]:
    spec = FUNCTIONS[p["function"]]
    return spec, spec.build(tg)


def run_trace(tg: ModuleType, p: Params, arrays: Arrays) -> Outputs:
    """``tg.trace(f, *arrays)``: its output's value, and its nodes as arrays: per node its
    kind (0 input, 1 constant, 2 op), the positions of its inputs (-1 padded), its op's
    position in ``p["ops"]`` (-1: an op not listed), its name as (letter, number) with letter
    0 for "v", 1 for "c", -1 for anything else, and its label read as a number (NaN if not
    one)."""
    _, f = _function(tg, p)
    graph = tg.trace(f, *[a.copy() for a in arrays])
    nodes = list(graph.nodes)
    where = {id(n): i for i, n in enumerate(nodes)}
    kinds = np.array([{"input": 0, "constant": 1}.get(n.kind, 2) for n in nodes], np.int64)
    width = max([len(n.inputs) for n in nodes] + [1])
    parents = np.full((len(nodes), width), -1, np.int64)
    for i, n in enumerate(nodes):
        for j, x in enumerate(n.inputs):
            parents[i, j] = where.get(id(x), len(nodes))  # a node not in the list: invalid
    names = list(p["ops"])
    codes = np.array([names.index(n.op) if n.op in names else -1 for n in nodes], np.int64)
    out_position = np.array(where.get(id(graph.output), -1), np.int64)
    value = to_array(tg, graph.output.value, "the traced output's value")
    names_ = np.array([_name_code(str(n.name)) for n in nodes], np.int64).reshape(-1, 2)
    labels = np.array([_number(n.label) for n in nodes], np.float64)
    return [np.asarray(value, np.float64), kinds, parents, codes, out_position, names_, labels]


def _name_code(name: str) -> tuple[int, int]:
    letter = {"v": 0, "c": 1}.get(name[:1], -1)
    try:
        return letter, int(name[1:])
    except ValueError:
        return -1, 0


def _number(label: object) -> float:
    try:
        return float(str(label))
    except ValueError:
        return float("nan")


def run_derivative_source(tg: ModuleType, p: Params, arrays: Arrays) -> Outputs:
    """Trace at the first half of ``arrays``, run the generated derivative code at the
    second half: its value and gradients, the number of lines of its source and how many of
    them accumulate into an adjoint (``+=``)."""
    _, f = _function(tg, p)
    k = len(arrays) // 2
    graph = tg.trace(f, *[a.copy() for a in arrays[:k]])
    source = graph.derivative_source()
    if not isinstance(source, str) or "def " not in source:
        raise TypeError(f"derivative_source() returned {type(source).__name__}, not source")
    value, grads = graph.derivative_function()(*[a.copy() for a in arrays[k:]])
    outputs: Outputs = [np.asarray(to_array(tg, value, "the generated value"), np.float64)]
    for i, g in enumerate(grads):
        outputs.append(np.asarray(to_array(tg, g, f"the generated gradient {i}"), np.float64))
    outputs.append(np.array(len(source.splitlines()), np.int64))
    outputs.append(np.array(sum("+=" in line for line in source.splitlines()), np.int64))
    return outputs


def run_dead_values(tg: ModuleType, p: Params, arrays: Arrays) -> Outputs:
    """``tg.compile`` with the passes ("fold", "dce") and with ("fold",) alone: each called
    twice on inputs that require grad (the first call runs eagerly and traces). Returns the
    value and gradients with dead-value elimination, the array operations per call without
    and with it, and how many calls ran compiled."""
    _, f = _function(tg, p)
    counts, compiled = [], 0
    outputs: Outputs = []
    for passes in (("fold",), ("fold", "dce")):
        fn = tg.compile(passes=passes)(f)
        fn(*[tg.Tensor(a.copy(), requires_grad=True) for a in arrays])  # eager; traces
        xs = [tg.Tensor(a.copy(), requires_grad=True) for a in arrays]
        y = fn(*xs)
        y.backward()
        if fn.stats.fallbacks:
            raise RuntimeError(f"tg.compile ran the function eagerly: {fn.stats.fallbacks[0]}")
        counts.append(int(fn.op_counts()["compiled"]))
        compiled += int(fn.stats.compiled_calls)
        if passes == ("fold", "dce"):
            outputs.append(np.asarray(to_array(tg, y, "the compiled value"), np.float64))
            for i, x in enumerate(xs):
                outputs.append(
                    None if x.grad is None else np.asarray(to_array(tg, x.grad, f"grad {i}"))
                )
    return outputs + [np.array(counts, np.int64), np.array(compiled, np.int64)]
