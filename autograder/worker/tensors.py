"""Between the student's Tensors and plain NumPy: what every handler uses to read results out
of the submission's ``tapegrad`` and to set up modules, through its public API only.

A student's result that is not what it should be (not a Tensor, ``.numpy()`` not giving an
array, several numbers where one was asked for) raises a ``TypeError`` that says what came
back; the handler's error reply carries it to the student.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

# What a probe's runner takes and returns (and its judge half in the parent reads).
Params = dict[str, Any]
Arrays = list[np.ndarray]
Outputs = list[Any]  # np.ndarray, or None where a gradient is missing

__all__ = [
    "AFFINE_OUTPUTS",
    "Arrays",
    "Outputs",
    "Params",
    "affine_grads",
    "assign",
    "forward_backward",
    "grad_of",
    "number_of",
    "seed",
    "set_affine",
    "to_array",
    "value_of",
]


def to_array(tg: ModuleType, value: Any, what: str) -> np.ndarray:
    """A student's result as a NumPy array, or a clear error saying what came back instead."""
    if not isinstance(value, tg.Tensor):
        raise TypeError(f"{what} returned {type(value).__name__}, expected a tapegrad Tensor")
    array = value.numpy()
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{what}: Tensor.numpy() returned {type(array).__name__}, not an ndarray")
    return np.array(array, order="C", copy=True)  # (ascontiguousarray would make 0-d 1-d)


def value_of(tg: ModuleType, t: Any, what: str) -> np.ndarray:
    """A tensor's values, copied (later in-place updates must not change what we return)."""
    return np.array(to_array(tg, t, what), copy=True)


def grad_of(tg: ModuleType, t: Any, what: str) -> np.ndarray | None:
    """A tensor's ``.grad`` as an array, or None when no gradient reached it."""
    g = getattr(t, "grad", None)
    return None if g is None else value_of(tg, g, what)


def number_of(tg: ModuleType, value: Any, what: str) -> np.ndarray:
    """A returned number (Python, NumPy or a one-element Tensor) as a 0-d float64 array."""
    if isinstance(value, tg.Tensor):
        array = to_array(tg, value, what)
        if array.size != 1:
            raise TypeError(f"{what} returned a Tensor of shape {array.shape}, expected one number")
        return np.array(float(array.reshape(-1)[0]))
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return np.array(float(value))
    raise TypeError(f"{what} returned {type(value).__name__}, expected a number")


def assign(param: Any, array: np.ndarray) -> None:
    """Set a parameter's values, as PyTorch allows: ``p.data = array`` (our own copy)."""
    param.data = np.array(array, copy=True)


def set_affine(module: Any, weight: np.ndarray, bias: np.ndarray | None = None) -> None:
    """Set a module's ``weight`` and, when one is given, its ``bias``."""
    assign(module.weight, weight)
    if bias is not None:
        assign(module.bias, bias)


def seed(tg: ModuleType, value: int) -> None:
    """Seed the submission's random numbers, when it offers ``tg.manual_seed``."""
    fn = getattr(tg, "manual_seed", None)
    if callable(fn):
        fn(int(value))


def forward_backward(
    tg: ModuleType,
    fn: Callable[[Any], Any],
    xa: np.ndarray,
    u: np.ndarray,
    what: str,
    grad_what: str = "the input's grad",
) -> tuple[np.ndarray, np.ndarray | None]:
    """``fn`` (a module or a loss) on ``xa`` as a Tensor that requires grad, then backward
    with the cotangent ``u``: the output's values and the input's gradient."""
    x = tg.Tensor(xa, requires_grad=True)
    y = fn(x)
    out = to_array(tg, y, what)
    y.backward(tg.Tensor(u))
    return out, grad_of(tg, x, grad_what)


# The names of the outputs forward_backward and then affine_grads return.
AFFINE_OUTPUTS = ("forward", "gradient of the input", "gradient of weight", "gradient of bias")


def affine_grads(tg: ModuleType, module: Any, what: str) -> list[np.ndarray | None]:
    """The gradients of a module's ``weight`` and ``bias`` (``what``: the module's name)."""
    return [
        grad_of(tg, module.weight, f"{what}.weight.grad"),
        grad_of(tg, module.bias, f"{what}.bias.grad"),
    ]
