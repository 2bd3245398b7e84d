"""Probes of layers: Linear (forward, gradients, parameter shapes and initial values) and
Dropout (the share dropped, the scaling, a fresh mask at each call, eval mode)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from autograder.worker.modules.layers import DROPOUT_EVAL, DROPOUT_TWICE, LINEAR_FRESH

from ..diagnose import Verdict, compare_values
from ..numeric import allclose, tolerance
from .base import (
    Arrays,
    ModuleProbe,
    Outputs,
    Params,
    case_labels,
    compare_output,
    default_judge,
)

# ---- Linear -----------------------------------------------------------------------------------

_LINEAR = (  # label, input shape, out_features, bias
    ("batch (4, 3) -> 5 features", (4, 3), 5, True),
    ("3-d input (2, 3, 6) -> 4 features", (2, 3, 6), 4, True),
    ("without bias: (5, 4) -> 3 features", (5, 4), 3, False),
    ("a fresh Linear(64, 32): parameter shapes and initial values", (64,), 32, True),
)


def _linear_case(rng: np.random.Generator, v: int) -> tuple[Params, Arrays]:
    _, xshape, n_out, bias = _LINEAR[v]
    n_in = xshape[-1]
    if v == LINEAR_FRESH:
        outputs = ["weight shape", "bias shape", "initial weight", "initial bias"]
        return {
            "variant": v,
            "in": n_in,
            "out": n_out,
            "seed": int(rng.integers(2**31)),
            "outputs": outputs,
            "about": f"Linear({n_in}, {n_out})",
        }, []
    x = rng.standard_normal(xshape)
    w = rng.standard_normal((n_out, n_in)) / math.sqrt(n_in)
    arrays = [x, w] + ([rng.standard_normal(n_out)] if bias else [])
    arrays.append(rng.standard_normal(xshape[:-1] + (n_out,)))
    last = "gradient of bias" if bias else "number of parameters"
    about = f"Linear({n_in}, {n_out}{'' if bias else ', bias=False'}), input {xshape}"
    return {
        "variant": v,
        "in": n_in,
        "out": n_out,
        "bias": bias,
        "cotangent": len(arrays) - 1,
        "outputs": ["forward", "gradient of the input", "gradient of weight", last],
        "about": about,
    }, arrays


def _linear_ref(p: Params, arrays: Arrays) -> Outputs:
    if p["variant"] == LINEAR_FRESH:
        return [np.array([p["out"], p["in"]]), np.array([p["out"]]), None, None]
    x, w, u = arrays[0], arrays[1], arrays[-1]
    y = x @ w.T + (arrays[2] if p["bias"] else 0.0)
    gw = u.reshape(-1, p["out"]).T @ x.reshape(-1, p["in"])
    last = u.reshape(-1, p["out"]).sum(0) if p["bias"] else np.array(1.0)
    return [y, u @ w, gw, last]


def _shape_text(shape: Any) -> str:
    return str(tuple(int(s) for s in shape))


def _linear_judge(p: Params, arrays: Arrays, got: Outputs, expected: Outputs) -> Verdict:
    if p["variant"] != LINEAR_FRESH:
        return default_judge(p, arrays, got, expected)
    wshape, bshape, w, b = got
    n_in, n_out = p["in"], p["out"]
    if wshape is None or w is None or tuple(wshape.tolist()) != (n_out, n_in):
        shown = "missing" if wshape is None else _shape_text(wshape)
        return Verdict(
            False,
            f"weight shape {shown}, expected ({n_out}, {n_in}): PyTorch stores "
            "(out_features, in_features)",
            "wrong_shape",
        )
    if bshape is None or b is None or tuple(bshape.tolist()) != (n_out,):
        shown = "missing (None)" if bshape is None else _shape_text(bshape)
        return Verdict(False, f"bias shape {shown}, expected ({n_out},)", "wrong_shape")
    w64, b64 = w.astype(np.float64), b.astype(np.float64)
    if not (np.all(np.isfinite(w64)) and np.all(np.isfinite(b64))):
        return Verdict(False, "the initial weights contain NaN or inf", "nan_inf")
    target = 1.0 / math.sqrt(3.0 * n_in)  # the std of U(-1/sqrt(in), 1/sqrt(in))
    std = float(w64.std())
    if std == 0.0:
        return Verdict(
            False,
            f"all initial weights are equal ({float(w64.flat[0]):g}): every unit "
            "would learn the same thing; initialise them randomly "
            "(kaiming_uniform_ with a=sqrt(5), as PyTorch)",
            "wrong_init_scale",
        )
    if not 0.25 <= std / target <= 4.0 or np.abs(b64).max() > 4.0 / math.sqrt(n_in):
        return Verdict(
            False,
            f"initial weights with std {std:.3g}, far from PyTorch's default "
            f"{target:.3g} (U(-1/sqrt(in_features), 1/sqrt(in_features)))",
            "wrong_init_scale",
        )
    return Verdict(True)


LINEAR_PROBE = ModuleProbe(
    "linear",
    "Linear",
    case_labels(_LINEAR),
    _linear_case,
    _linear_ref,
    judge=_linear_judge,
)


# ---- Dropout ------------------------------------------------------------------------------------

_DROPOUT = (  # label, input shape, p
    ("training, p=0.3: share dropped, 1/(1-p) scaling, gradient through the mask", (200, 250), 0.3),
    ("training, p=0.5, called twice: a fresh mask at each call", (100, 300), 0.5),
    ("eval mode, p=0.4: the identity (and Dropout(0.0) in training)", (40, 50), 0.4),
)


def _dropout_case(rng: np.random.Generator, v: int) -> tuple[Params, Arrays]:
    _, shape, p = _DROPOUT[v]
    x = rng.choice([-1.0, 1.0], shape) * rng.uniform(0.5, 2.0, shape)  # never 0: 0 means dropped
    outputs = (
        ["forward", "gradient of the input"],
        ["first call", "second call"],
        ["forward in eval mode", "gradient in eval mode", "Dropout(0.0) in training"],
    )[v]
    return {
        "variant": v,
        "p": p,
        "seed": int(rng.integers(2**31)),
        "outputs": outputs,
        "about": f"Dropout({p}), input {shape}",
    }, [x, rng.standard_normal(shape)]


def _dropout_ref(p: Params, arrays: Arrays) -> Outputs:
    """The kept entries' values (the mask itself is random)."""
    x, u = arrays
    if p["variant"] == DROPOUT_EVAL:
        return [x, u, x]
    return [x / (1 - p["p"]), (u if p["variant"] == 0 else x) / (1 - p["p"])]


def _mask_verdict(name: str, y: Any, x: np.ndarray, p: float) -> Verdict:
    """One training-mode output: zeros in about a share p of the entries, the rest x/(1-p)."""
    if y is None or y.shape != x.shape:
        got = "nothing" if y is None else f"shape {y.shape}"
        return Verdict(False, f"{name}: {got}, expected {x.shape}", "wrong_shape")
    y64 = y.astype(np.float64)
    if not np.all(np.isfinite(y64)):
        return Verdict(False, f"{name}: contains NaN or inf", "nan_inf")
    kept = y64 != 0
    share = 1.0 - float(kept.mean())
    if share == 0.0:
        return Verdict(
            False, f"{name}: nothing was dropped in training mode (p={p})", "train_eval_mode"
        )
    want = x[kept] / (1 - p)
    atol, rtol = tolerance(y, want)
    if not allclose(y64[kept], want, atol, rtol):
        ratio = y64[kept] / x[kept]
        r = float(np.median(ratio))
        if allclose(ratio, r, atol=0, rtol=1e-3):
            fix = f"expected 1/(1-p) = {1 / (1 - p):.4g}"
            why = "not scaled" if abs(r - 1) < 1e-3 else f"scaled by {r:.4g}"
            return Verdict(
                False,
                f"{name}: the kept entries are {why}, {fix}, so that the "
                "expected value of every entry is unchanged",
                "dropout_scaling",
            )
        return compare_values(f"{name} (the kept entries)", y64[kept], want, atol=atol, rtol=rtol)
    sd = math.sqrt(p * (1 - p) / x.size)
    if abs(share - p) > 6 * sd + 1e-3:  # 6 standard deviations: the reference never fails
        return Verdict(
            False,
            f"{name}: {share:.1%} of the entries were dropped, expected about "
            f"{p:.0%} (p is the probability of dropping an entry)",
            "wrong_forward",
        )
    return Verdict(True)


def _dropout_judge(p: Params, arrays: Arrays, got: Outputs, expected: Outputs) -> Verdict:
    x, u = arrays
    drop = p["p"]
    if p["variant"] == DROPOUT_EVAL:
        y = got[0]
        if y is not None and y.shape == x.shape and float(np.mean(y == 0)) > 0.05:
            return Verdict(
                False,
                f"dropout is active in eval mode: {np.mean(y == 0):.0%} of the "
                "outputs are zero; after eval() Dropout returns its input unchanged",
                "train_eval_mode",
            )
        return default_judge(p, arrays, got, expected)
    forwards = got if p["variant"] == DROPOUT_TWICE else got[:1]
    for name, y in zip(p["outputs"], forwards):
        verdict = _mask_verdict(name, y, x, drop)
        if not verdict.ok:
            return verdict
    if p["variant"] == DROPOUT_TWICE:
        differ = float(np.mean((got[0] == 0) != (got[1] == 0)))
        if differ < drop * (1 - drop):  # expected 2p(1-p); far below it is no accident
            return Verdict(
                False,
                f"two calls dropped {'the same' if differ == 0 else 'nearly the same'}"
                " entries: draw a new random mask at every forward call",
                "wrong_forward",
            )
        return Verdict(True)
    g = got[1]
    if g is not None and g.shape == x.shape and allclose(g, u, atol=1e-6, rtol=1e-5):
        return Verdict(
            False,
            "gradient of the input: it is the upstream gradient unchanged; it "
            "must go through the same mask and scaling as the forward",
            "wrong_gradient",
        )
    want = np.where(got[0] != 0, u / (1 - drop), 0.0)
    return compare_output("gradient of the input", g, want, out_shape=x.shape)


DROPOUT_PROBE = ModuleProbe(
    "dropout",
    "Dropout",
    case_labels(_DROPOUT),
    _dropout_case,
    _dropout_ref,
    judge=_dropout_judge,
)
