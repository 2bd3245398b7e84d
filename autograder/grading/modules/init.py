"""Probes of the initializers xavier_uniform_ and kaiming_uniform_, judged by the statistics of
the values they draw."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from ..diagnose import Verdict
from .base import Arrays, ModuleProbe, Outputs, Params, case_labels

# ---- initialisation -----------------------------------------------------------------------------

InitCase = tuple[str, tuple[int, ...], dict[str, Any]]
_XAVIER: tuple[InitCase, ...] = (  # label, shape, keyword arguments
    ("Linear-shaped (256, 512) weight", (256, 512), {}),
    ("(128, 1024) weight, gain 5/3", (128, 1024), {"gain": 5.0 / 3.0}),
    (
        "Conv2d-shaped (64, 32, 3, 3) weight: the fans include the receptive field",
        (64, 32, 3, 3),
        {},
    ),
)
_KAIMING: tuple[InitCase, ...] = (
    ("(256, 512) weight, defaults (a=0, mode='fan_in', nonlinearity='leaky_relu')", (256, 512), {}),
    ("(512, 256) weight, a=sqrt(5) (PyTorch's Linear default)", (512, 256), {"a": math.sqrt(5.0)}),
    (
        "Conv2d-shaped (64, 32, 3, 3) weight, nonlinearity='relu'",
        (64, 32, 3, 3),
        {"nonlinearity": "relu"},
    ),
    (
        "Conv2d-shaped (128, 64, 3, 3) weight, mode='fan_out', nonlinearity='relu'",
        (128, 64, 3, 3),
        {"mode": "fan_out", "nonlinearity": "relu"},
    ),
)


def _fans(shape: tuple[int, ...], receptive: bool = True) -> tuple[int, int]:
    field = math.prod(shape[2:]) if receptive else 1
    return shape[1] * field, shape[0] * field


def _gain(nonlinearity: str, a: float) -> float:
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        return math.sqrt(2.0 / (1.0 + a * a))
    return 5.0 / 3.0 if nonlinearity == "tanh" else 1.0


def _xavier_bounds(p: Params) -> dict[str, float]:
    """The right bound (key "") and the bounds of known bugs, named."""
    shape, gain = tuple(p["shape"]), float(p["kwargs"].get("gain", 1.0))
    fi, fo = _fans(shape)
    ri, ro = _fans(shape, receptive=False)
    return {
        "": gain * math.sqrt(6.0 / (fi + fo)),
        "the bound uses fan_in alone (sqrt(6 / (2 * fan_in)))": gain * math.sqrt(3.0 / fi),
        "the bound uses fan_out alone": gain * math.sqrt(3.0 / fo),
        "the fans leave out the receptive field (kh * kw)": gain * math.sqrt(6.0 / (ri + ro)),
        "the gain is left out": math.sqrt(6.0 / (fi + fo)),
        "the standard deviation sqrt(2 / (fan_in + fan_out)) is used as the bound": gain
        * math.sqrt(2.0 / (fi + fo)),
        "the bound is sqrt(6) / (fan_in + fan_out): the square root must cover the fans too": gain
        * math.sqrt(6.0)
        / (fi + fo),
    }


def _kaiming_bounds(p: Params) -> dict[str, float]:
    shape, kw = tuple(p["shape"]), p["kwargs"]
    a, mode = float(kw.get("a", 0.0)), kw.get("mode", "fan_in")
    gain = _gain(kw.get("nonlinearity", "leaky_relu"), a)
    fi, fo = _fans(shape)
    fan, other = (fi, fo) if mode == "fan_in" else (fo, fi)
    rfan = _fans(shape, receptive=False)[0 if mode == "fan_in" else 1]
    return {
        "": gain * math.sqrt(3.0 / fan),
        "the gain is left out": math.sqrt(3.0 / fan),
        "the standard deviation gain / sqrt(fan) is used as the bound (missing sqrt(3))": gain
        / math.sqrt(fan),
        f"the bound uses {'fan_out' if mode == 'fan_in' else 'fan_in'} instead of {mode}": gain
        * math.sqrt(3.0 / other),
        "the fan leaves out the receptive field (kh * kw)": gain * math.sqrt(3.0 / rfan),
        "the gain ignores the slope a (sqrt(2) whatever a is)": math.sqrt(6.0 / fan),
    }


def _init_case(
    table: tuple[Any, ...], fn: str, rng: np.random.Generator, v: int
) -> tuple[Params, Arrays]:
    _, shape, kwargs = table[v]
    args = ", ".join(
        f"{k}={val:.4g}" if isinstance(val, float) else f"{k}={val!r}" for k, val in kwargs.items()
    )
    return {
        "variant": v,
        "shape": list(shape),
        "kwargs": dict(kwargs),
        "function": fn,
        "seed": int(rng.integers(2**31)),
        "outputs": ["the initialised tensor"],
        "about": f"{fn}(tensor of shape {shape}{', ' + args if args else ''})",
    }, []


def _init_judge(
    bounds: Callable[[Params], dict[str, float]],
    p: Params,
    arrays: Arrays,
    got: Outputs,
    expected: Outputs,
) -> Verdict:
    """Statistics of U(-bound, bound) over a large tensor: every value inside the bound, the
    largest close to it, the standard deviation bound/sqrt(3) within 3% (over 16,000 values
    or more the estimate is within 1% nearly always), the mean near 0."""
    w, shape = got[0], tuple(p["shape"])
    if w is None or w.shape != shape:
        return Verdict(
            False,
            f"the tensor has shape {None if w is None else w.shape}, expected {shape}",
            "wrong_shape",
        )
    w = w.astype(np.float64)
    if not np.all(np.isfinite(w)):
        return Verdict(False, "the values contain NaN or inf", "nan_inf")
    if not np.any(w):
        return Verdict(
            False,
            "the tensor is unchanged (all zeros): fill tensor.data in place and return the tensor",
            "wrong_forward",
        )
    known = bounds(p)
    bound = known.pop("")
    n, top, std, mean = w.size, float(np.abs(w).max()), float(w.std()), float(w.mean())
    implied = std * math.sqrt(3.0)
    problems = []
    if top > bound * (1 + 1e-5) + 1e-7:
        problems.append(f"values up to {top:.4g}, outside the bound {bound:.4g}")
    elif top < 0.99 * bound:
        problems.append(f"the largest value is {top:.4g}, the bound is {bound:.4g}")
    if abs(implied / bound - 1) > 0.03:
        problems.append(
            f"standard deviation {std:.4g}, expected bound/sqrt(3) = {bound / math.sqrt(3):.4g}"
        )
    if abs(mean) > 6 * bound / math.sqrt(3 * n):
        problems.append(f"mean {mean:.3g}, expected about 0")
    if not problems:
        return Verdict(True)
    message = f"U(-{bound:.4g}, {bound:.4g}) expected: " + "; ".join(problems)
    for why, other in known.items():
        if (
            abs(other / bound - 1) > 0.1
            and abs(implied / other - 1) < 0.03
            and top <= other * 1.001
        ):
            return Verdict(False, f"{message}. Likely: {why}", "wrong_init_scale")
    return Verdict(False, message, "wrong_init_scale")


def _init_probe(
    name: str,
    fn: str,
    table: tuple[InitCase, ...],
    bounds: Callable[[Params], dict[str, float]],
) -> ModuleProbe:
    """The probe of the initializer ``fn``; its reference is the right bound."""

    def reference(p: Params, arrays: Arrays) -> Outputs:
        return [np.array(bounds(p)[""])]

    return ModuleProbe(
        name,
        fn,
        case_labels(table),
        partial(_init_case, table, fn),
        reference,
        judge=partial(_init_judge, bounds),
    )


XAVIER_PROBE = _init_probe("xavier", "xavier_uniform_", _XAVIER, _xavier_bounds)
KAIMING_PROBE = _init_probe("kaiming", "kaiming_uniform_", _KAIMING, _kaiming_bounds)
