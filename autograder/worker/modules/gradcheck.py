"""The worker half of the probe of the students' finite differences,
``tapegrad.gradcheck.central_difference``: called on functions of :data:`FUNCTIONS` (plain
NumPy, the same table the judge half uses), with the point, direction and step it was sent."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import numpy as np

from ..tensors import Arrays, Outputs, Params

__all__ = ["FUNCTIONS", "run_central_difference"]

# name -> f(x, extra), float64 in and out; ``extra`` is the case's second array (a matrix)
FUNCTIONS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "cube": lambda x, m: x**3,
    "sin_times_x": lambda x, m: np.sin(x) * x,
    "exp": lambda x, m: np.exp(x),
    "linear_plus_square": lambda x, m: m @ x + x**2,
}


def run_central_difference(tg: ModuleType, p: Params, arrays: Arrays) -> Outputs:
    x, v, m = arrays
    function = FUNCTIONS[p["function"]]
    calls = []

    def f(z: np.ndarray) -> np.ndarray:
        calls.append(1)
        return function(np.asarray(z, dtype=np.float64), m)

    got = tg.gradcheck.central_difference(f, x.copy(), v.copy(), float(p["eps"]))
    return [np.asarray(got, dtype=np.float64), np.array(float(len(calls)))]
