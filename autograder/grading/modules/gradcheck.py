"""Probe of the students' finite differences (``tapegrad.gradcheck.central_difference``, the
heart of their ``tg.check_grad``): the directional derivative of known functions by central
differences, compared with the same formula in float64 here. The step is coarse in most cases
(1e-2), so a forward difference, a missing 1/2 or a swapped sign cannot hide in round-off."""

from __future__ import annotations

import numpy as np

from autograder.worker.modules.gradcheck import FUNCTIONS

from ..diagnose import Verdict
from .base import Arrays, ModuleProbe, Outputs, Params, Signature, case_labels, compare_output

_CASES = (  # label, function, input shape, step
    ("x**3 on a vector, step 1e-2", "cube", (5,), 1e-2),
    (
        "sin(x) * x on a (3, 4) matrix along a random direction, step 1e-2",
        "sin_times_x",
        (3, 4),
        1e-2,
    ),
    ("M @ x + x**2 (a vector output), step 1e-3", "linear_plus_square", (4,), 1e-3),
    ("exp(x) on a vector, step 1e-6", "exp", (6,), 1e-6),
)


def _case(rng: np.random.Generator, v: int) -> tuple[Params, Arrays]:
    _, function, shape, eps = _CASES[v]
    x = rng.uniform(-1.5, 1.5, shape)
    direction = rng.standard_normal(shape) * rng.uniform(0.5, 2.0)
    m = rng.standard_normal((shape[0], shape[0]))
    params = {
        "variant": v, "function": function, "eps": eps,
        "outputs": ["the directional derivative", "calls of f"],
        "about": f"central_difference({function}, x {shape}, v, eps={eps:g})",
    }  # fmt: skip
    return params, [x, direction, m]


def _difference(p: Params, arrays: Arrays, *, forward: bool = False, half: bool = False) -> Outputs:
    x, v, m = arrays
    f, eps = FUNCTIONS[p["function"]], float(p["eps"])
    if forward:
        d = (f(x + eps * v, m) - f(x, m)) / eps
    else:
        d = (f(x + eps * v, m) - f(x - eps * v, m)) / (1.0 if half else 2.0) / eps
    return [d, np.array(2.0)]


def _reference(p: Params, arrays: Arrays) -> Outputs:
    return _difference(p, arrays)


def _judge(p: Params, arrays: Arrays, got: Outputs, expected: Outputs) -> Verdict:
    """The value only (how many times f was called is the student's business), tightly: the
    reference evaluates the same formula."""
    return compare_output(p["outputs"][0], got[0], expected[0], out_shape=np.shape(expected[0]))


CENTRAL_DIFFERENCE_PROBE = ModuleProbe(
    "central_difference",
    "gradcheck.central_difference",
    case_labels(_CASES),
    _case,
    _reference,
    judge=_judge,
    signatures=(
        Signature(
            "a forward difference (f(x + eps v) - f(x)) / eps: its error is O(eps); the central "
            "difference (f(x + eps v) - f(x - eps v)) / (2 eps) is O(eps**2)",
            "forward_difference",
            lambda p, a: _difference(p, a, forward=True),
        ),
        Signature(
            "the difference is not halved: divide by 2 * eps, the distance between the two points",
            "constant_factor",
            lambda p, a: _difference(p, a, half=True),
        ),
        Signature(
            "the two points are swapped: f(x + eps v) comes first",
            "sign_flipped",
            lambda p, a: [-_difference(p, a)[0], np.array(2.0)],
        ),
    ),
    assignment="hw1",
)
