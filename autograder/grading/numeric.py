"""Finite differences on plain float64 NumPy functions, and the one tolerance formula: the
trusted side of every comparison.

The grader applies the differences to the reference forward of an op spec (and to the
student's own forward, evaluated in the worker); the kit's tests apply them to the same
references. Every "is it close enough" of the grader is :func:`close` (``|got - expected| <=
atol + rtol * |expected|``, NaN never close), with :func:`tolerance` choosing atol and rtol
for a result of a given dtype and scale.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = [
    "EPS",
    "allclose",
    "close",
    "directional_derivative",
    "gradient_of_projection",
    "tolerance",
]

EPS = 1e-6
Forward = Callable[..., np.ndarray]


def directional_derivative(
    f: Forward, inputs: Sequence[np.ndarray], index: int, direction: np.ndarray, eps: float = EPS
) -> np.ndarray:
    """d/dt f(..., x_index + t * direction, ...) at t = 0, by central differences."""
    xs = [np.asarray(x, dtype=np.float64) for x in inputs]
    plus, minus = list(xs), list(xs)
    plus[index] = xs[index] + eps * direction
    minus[index] = xs[index] - eps * direction
    return (np.asarray(f(*plus), np.float64) - np.asarray(f(*minus), np.float64)) / (2 * eps)


def gradient_of_projection(
    f: Forward, inputs: Sequence[np.ndarray], index: int, cotangent: np.ndarray, eps: float = EPS
) -> np.ndarray:
    """The gradient of <cotangent, f(inputs)> with respect to input ``index``, one central
    difference per element: what a correct VJP returns for that cotangent."""
    x = np.asarray(inputs[index], dtype=np.float64)
    grad = np.empty(x.size)
    basis = np.zeros(x.size)
    for k in range(x.size):
        basis[k] = 1.0
        d = directional_derivative(f, inputs, index, basis.reshape(x.shape), eps)
        grad[k] = np.sum(cotangent * d)
        basis[k] = 0.0
    return grad.reshape(x.shape)


def close(
    got: np.ndarray, expected: np.ndarray | float, atol: float = 1e-5, rtol: float = 1e-4
) -> np.ndarray:
    """Elementwise |got - expected| <= atol + rtol * |expected|, with NaN never close."""
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    return np.abs(got - expected) <= atol + rtol * np.abs(expected)


def allclose(
    got: np.ndarray, expected: np.ndarray | float, atol: float = 1e-5, rtol: float = 1e-4
) -> bool:
    """Every element :func:`close`."""
    return bool(np.all(close(got, expected, atol, rtol)))


def tolerance(got: np.ndarray, expected: np.ndarray) -> tuple[float, float]:
    """(atol, rtol) for a result: float32 results get float32 tolerances; the absolute one
    scales with the largest finite expected magnitude."""
    expected = np.asarray(expected, dtype=np.float64)
    finite = np.abs(expected[np.isfinite(expected)])
    scale = max(1.0, float(finite.max())) if finite.size else 1.0
    if got.dtype.kind == "f" and got.dtype.itemsize <= 4:
        return 1e-4 * scale, 1e-3
    return 1e-6 * scale, 1e-5
