"""What every module probe shares: the :class:`ModuleProbe` and :class:`Signature` records,
judging outputs against the reference, and the helpers the probes' ``run`` functions use in
the worker (see the package docstring for how a probe works)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from types import ModuleType
from typing import Any

import numpy as np

from ..diagnose import Verdict, classify_gradient, compare_values
from autograder.worker.ops import to_array

Params = dict[str, Any]
Arrays = list[np.ndarray]
Outputs = list[Any]  # np.ndarray, or None where a gradient is missing
Judge = Callable[[Params, Arrays, Outputs, Outputs], Verdict]


@dataclass(frozen=True)
class Signature:
    """A known bug, as the outputs it would produce: ``outputs(params, arrays)``."""

    message: str
    bug_class: str
    outputs: Callable[[Params, Arrays], Outputs]


@dataclass(frozen=True)
class ModuleProbe:
    """One module, loss, optimizer or initializer check (see the package docstring)."""

    name: str  # the probe name in assignment.toml
    title: str  # what feedback calls it: "BatchNorm1d", "SGD", ...
    variants: tuple[str, ...]  # one label per kind of case (the case labels students see)
    make_case: Callable[[np.random.Generator, int], tuple[Params, Arrays]]
    run: Callable[[ModuleType, Params, Arrays], Outputs]  # in the worker
    reference: Callable[[Params, Arrays], Outputs]  # in the parent, float64
    judge: Judge | None = None  # None: default_judge
    signatures: tuple[Signature, ...] = ()
    assignment: str = "hw2"

    def verdict(self, params: Params, arrays: Arrays, got: Outputs) -> Verdict:
        """Judge what the worker returned for one case, naming a known bug when the outputs
        match one (a random cotangent replaced by ones: the upstream gradient was ignored)."""
        with np.errstate(all="ignore"):
            expected = self.reference(params, arrays)
            verdict = (self.judge or default_judge)(params, arrays, got, expected)
            if verdict.ok:
                return verdict
            signatures = list(self.signatures)
            if "cotangent" in params:
                signatures.append(
                    Signature(
                        "the upstream gradient (the cotangent passed to backward) is ignored: "
                        "multiply by it (chain rule)",
                        "ignored_upstream",
                        partial(_with_ones, self.reference, int(params["cotangent"])),
                    )
                )
            for sig in signatures:
                if _matches(got, sig.outputs(params, arrays)):
                    return Verdict(
                        False, f"{verdict.message}. Likely: {sig.message}", sig.bug_class
                    )
        return verdict


# ---- comparing outputs ----------------------------------------------------------------------


def tolerance(got: np.ndarray, expected: np.ndarray) -> tuple[float, float]:
    """(atol, rtol) for an output: float32 results get float32 tolerances; the absolute one
    scales with the largest expected magnitude."""
    finite = np.abs(expected[np.isfinite(expected)])
    scale = max(1.0, float(finite.max())) if finite.size else 1.0
    if got.dtype.kind == "f" and got.dtype.itemsize <= 4:
        return 1e-4 * scale, 1e-3
    return 1e-6 * scale, 1e-5


def compare_output(
    name: str,
    got: Any,
    expected: Any,
    *,
    out_shape: tuple[int, ...] = (),
    softmax_family: bool = False,
    trajectory: bool = False,
) -> Verdict:
    """One output. Names starting with "gradient" are judged as gradients (the likely bug
    named by :func:`~autograder.diagnose.classify_gradient`); a ``trajectory`` (one row per
    optimizer step) says after which step it first goes wrong."""
    if expected is None:
        if got is None:
            return Verdict(True)
        return Verdict(False, f"{name}: expected no gradient (None), got one", "wrong_gradient")
    e = np.asarray(expected, dtype=np.float64)
    if got is None:
        if name.startswith("gradient"):
            return Verdict(False, f"{name}: no gradient reached it (.grad is None)", "no_gradient")
        return Verdict(False, f"{name}: nothing came back", "wrong_forward")
    atol, rtol = tolerance(got, e)
    if name.startswith("gradient"):
        return classify_gradient(
            name,
            got,
            e,
            input_shape=e.shape,
            output_shape=out_shape,
            softmax_family=softmax_family,
            atol=atol,
            rtol=rtol,
        )
    verdict = compare_values(name, got, e, atol=atol, rtol=rtol, softmax_family=softmax_family)
    if not verdict.ok and trajectory and got.shape == e.shape and e.ndim >= 1:
        for k in range(e.shape[0]):
            step = compare_values(
                f"{name} after step {k + 1} of {e.shape[0]}", got[k], e[k], atol=atol, rtol=rtol
            )
            if not step.ok:
                return Verdict(False, step.message, verdict.bug_class)
    return verdict


def default_judge(params: Params, arrays: Arrays, got: Outputs, expected: Outputs) -> Verdict:
    """Every output against the reference, in order; the first mismatch decides."""
    out_shape = np.shape(expected[0]) if expected and expected[0] is not None else ()
    for name, g, e in zip(params["outputs"], got, expected):
        verdict = compare_output(
            name,
            g,
            e,
            out_shape=out_shape,
            softmax_family=bool(params.get("softmax_family")),
            trajectory=bool(params.get("trajectory")),
        )
        if not verdict.ok:
            return verdict
    return Verdict(True)


def _matches(got: Outputs, alt: Outputs) -> bool:
    """Do the outputs equal a signature's (within the usual tolerances)?"""
    if len(got) != len(alt):
        return False
    for g, a in zip(got, alt):
        if a is None or g is None:
            if (a is None) != (g is None):
                return False
            continue
        a = np.asarray(a, dtype=np.float64)
        if g.shape != a.shape:
            return False
        atol, rtol = tolerance(g, a)
        g64 = g.astype(np.float64)
        if not np.all(np.abs(g64 - a) <= atol + rtol * np.abs(a)):
            return False
    return True


def _with_ones(
    reference: Callable[[Params, Arrays], Outputs], index: int, params: Params, arrays: Arrays
) -> Outputs:
    arrays = list(arrays)
    arrays[index] = np.ones_like(arrays[index])
    return reference(params, arrays)


# ---- worker-side helpers ----------------------------------------------------------------------


def value_of(tg: ModuleType, t: Any, what: str) -> np.ndarray:
    """A tensor's values, copied (later in-place updates must not change what we return)."""
    return np.array(to_array(tg, t, what), copy=True)


def grad_of(tg: ModuleType, t: Any, what: str) -> np.ndarray | None:
    g = getattr(t, "grad", None)
    return None if g is None else value_of(tg, g, what)


def assign(param: Any, array: np.ndarray) -> None:
    """Set a parameter's values, as PyTorch allows: ``p.data = array`` (our own copy)."""
    param.data = np.array(array, copy=True)


def set_affine(module: Any, weight: np.ndarray, bias: np.ndarray | None = None) -> None:
    """Set a module's ``weight`` and, when one is given, its ``bias``."""
    assign(module.weight, weight)
    if bias is not None:
        assign(module.bias, bias)


def seed(tg: ModuleType, value: int) -> None:
    fn = getattr(tg, "manual_seed", None)
    if callable(fn):
        fn(int(value))


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


def affine_grads(tg: ModuleType, module: Any, what: str) -> Outputs:
    """The gradients of a module's ``weight`` and ``bias`` (``what``: the module's name)."""
    return [
        grad_of(tg, module.weight, f"{what}.weight.grad"),
        grad_of(tg, module.bias, f"{what}.bias.grad"),
    ]


def case_labels(table: tuple[Any, ...]) -> tuple[str, ...]:
    """The case labels of a probe's table: rows are dicts with a "label" or tuples led by it."""
    return tuple(row["label"] if isinstance(row, dict) else row[0] for row in table)
