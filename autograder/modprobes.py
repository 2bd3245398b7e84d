"""Module probes: behaviour checks of modules, losses, optimizers and initializers.

One table, :data:`PROBES`, declares each probe once, as :mod:`autograder.opspecs` does for ops;
a ``kind = "module"`` check in ``assignment.toml`` names one by its ``probe``. A
:class:`ModuleProbe` holds both halves of the check:

* ``make_case(rng, variant) -> (params, arrays)`` draws one case in the parent: ``params`` are
  JSON values (sizes, hyperparameters, the names of the outputs), ``arrays`` the inputs, the
  parameter values, cotangents and gradient sequences the worker needs;
* ``run(tg, params, arrays) -> outputs`` runs IN THE WORKER with the student's ``tapegrad``
  (passed in as ``tg``), through its public API only. It sets parameters by assigning ``.data``
  from the arrays it was sent, so results are deterministic, and returns plain arrays (``None``
  for a missing gradient);
* ``reference(params, arrays) -> expected`` computes the same outputs in float64 NumPy in the
  parent, with PyTorch's conventions (BatchNorm normalises with the biased variance and updates
  ``running_var`` with the unbiased one, momentum 0.1; inverted dropout; Adam with L2 weight
  decay and bias correction; Xavier and Kaiming bounds from the fans and the gain);
* ``judge(params, arrays, got, expected) -> Verdict`` compares them: output by output, with
  the likely bug named, or by statistics for random outputs (dropout masks, initial weights);
* ``signatures``: known bugs, as the outputs they would produce. When the student's outputs
  fail and match one of these instead, the verdict names that bug.

This module never imports tapegrad: the trusted parent holds the table too. Expected values
never leave the parent; the worker sees only what it needs to run the student's code.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from types import ModuleType
from typing import Any

import numpy as np

from .diagnose import Verdict, classify_gradient, compare_values
from .opcheck import Request, RequestFailed
from .opspecs import DOMAINS
from .probes import to_array
from .results import CaseOutcome
from .worker import handler

__all__ = [
    "ModuleProbe",
    "Signature",
    "PROBES",
    "run_module_check",
    "default_judge",
    "compare_output",
]

Params = dict[str, Any]
Arrays = list[np.ndarray]
Outputs = list[Any]  # np.ndarray, or None where a gradient is missing
Judge = Callable[[Params, Arrays, Outputs, Outputs], Verdict]

EPS = 1e-5  # BatchNorm1d and LayerNorm's default eps
MOMENTUM = 0.1  # BatchNorm1d's default momentum (PyTorch's convention)


@dataclass(frozen=True)
class Signature:
    """A known bug, as the outputs it would produce: ``outputs(params, arrays)``."""

    message: str
    bug_class: str
    outputs: Callable[[Params, Arrays], Outputs]


@dataclass(frozen=True)
class ModuleProbe:
    """One module, loss, optimizer or initializer check (see the module docstring)."""

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


def _value(tg: ModuleType, t: Any, what: str) -> np.ndarray:
    """A tensor's values, copied (later in-place updates must not change what we return)."""
    return np.array(to_array(tg, t, what), copy=True)


def _grad(tg: ModuleType, t: Any, what: str) -> np.ndarray | None:
    g = getattr(t, "grad", None)
    return None if g is None else _value(tg, g, what)


def _assign(param: Any, array: np.ndarray) -> None:
    """Set a parameter's values, as PyTorch allows: ``p.data = array`` (our own copy)."""
    param.data = np.array(array, copy=True)


def _seed(tg: ModuleType, seed: int) -> None:
    fn = getattr(tg, "manual_seed", None)
    if callable(fn):
        fn(int(seed))


def _number(tg: ModuleType, value: Any, what: str) -> np.ndarray:
    """A returned number (Python, NumPy or a one-element Tensor) as a 0-d float64 array."""
    if isinstance(value, tg.Tensor):
        array = to_array(tg, value, what)
        if array.size != 1:
            raise TypeError(f"{what} returned a Tensor of shape {array.shape}, expected one number")
        return np.array(float(array.reshape(-1)[0]))
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return np.array(float(value))
    raise TypeError(f"{what} returned {type(value).__name__}, expected a number")


def _shape_text(shape: Any) -> str:
    return str(tuple(int(s) for s in shape))


# ---- Linear -----------------------------------------------------------------------------------

_LINEAR = (  # label, input shape, out_features, bias
    ("batch (4, 3) -> 5 features", (4, 3), 5, True),
    ("3-d input (2, 3, 6) -> 4 features", (2, 3, 6), 4, True),
    ("without bias: (5, 4) -> 3 features", (5, 4), 3, False),
    ("a fresh Linear(64, 32): parameter shapes and initial values", (64,), 32, True),
)
_LINEAR_FRESH = 3


def _linear_case(rng: np.random.Generator, v: int) -> tuple[Params, Arrays]:
    _, xshape, n_out, bias = _LINEAR[v]
    n_in = xshape[-1]
    if v == _LINEAR_FRESH:
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


def _linear_run(tg: ModuleType, p: Params, arrays: Arrays) -> Outputs:
    if p["variant"] == _LINEAR_FRESH:
        _seed(tg, p["seed"])
        lin = tg.nn.Linear(p["in"], p["out"])
        b = lin.bias
        return [
            np.array(lin.weight.shape, dtype=np.int64),
            None if b is None else np.array(b.shape, dtype=np.int64),
            _value(tg, lin.weight, "Linear.weight"),
            None if b is None else _value(tg, b, "Linear.bias"),
        ]
    lin = tg.nn.Linear(p["in"], p["out"], bias=p["bias"])
    _assign(lin.weight, arrays[1])
    if p["bias"]:
        _assign(lin.bias, arrays[2])
    x = tg.Tensor(arrays[0], requires_grad=True)
    y = lin(x)
    out = to_array(tg, y, "Linear")
    y.backward(tg.Tensor(arrays[-1]))
    last = (
        _grad(tg, lin.bias, "Linear.bias.grad")
        if p["bias"]
        else np.array(len(list(lin.parameters())))
    )
    return [
        out,
        _grad(tg, x, "the input's grad"),
        _grad(tg, lin.weight, "Linear.weight.grad"),
        last,
    ]


def _linear_ref(p: Params, arrays: Arrays) -> Outputs:
    if p["variant"] == _LINEAR_FRESH:
        return [np.array([p["out"], p["in"]]), np.array([p["out"]]), None, None]
    x, w, u = arrays[0], arrays[1], arrays[-1]
    y = x @ w.T + (arrays[2] if p["bias"] else 0.0)
    gw = u.reshape(-1, p["out"]).T @ x.reshape(-1, p["in"])
    last = u.reshape(-1, p["out"]).sum(0) if p["bias"] else np.array(1.0)
    return [y, u @ w, gw, last]


def _linear_judge(p: Params, arrays: Arrays, got: Outputs, expected: Outputs) -> Verdict:
    if p["variant"] != _LINEAR_FRESH:
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


# ---- BatchNorm1d and LayerNorm ----------------------------------------------------------------


def _normalize(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, u: np.ndarray, axis: int, ddof: int = 0
) -> tuple[np.ndarray, ...]:
    """Normalisation of a 2-d ``x`` over ``axis`` (0: batch norm, 1: layer norm), its forward
    and the gradients wrt x, gamma and beta for the cotangent ``u``; the variance divides by
    ``n - ddof``."""
    d = x.shape[axis] - ddof
    c = x - x.mean(axis, keepdims=True)
    s = np.sqrt((c * c).sum(axis, keepdims=True) / d + EPS)
    xh = c / s
    gxh = u * gamma
    gc = gxh / s - c * (gxh * c).sum(axis, keepdims=True) / (d * s**3)
    return gamma * xh + beta, gc - gc.mean(axis, keepdims=True), (u * xh).sum(0), u.sum(0)


_BATCHNORM = (  # label, (N, C)
    ("training: batch statistics, gradients, running statistics", (8, 5)),
    ("eval mode after 3 training batches: running statistics", (6, 4)),
    ("training with a batch of 2", (2, 3)),
)
_BN_EVAL = 1


def _batchnorm_case(rng: np.random.Generator, v: int) -> tuple[Params, Arrays]:
    _, (n, c) = _BATCHNORM[v]
    mu, sigma = rng.uniform(-2.0, 2.0, c), rng.uniform(0.5, 3.0, c)

    def batch(rows: int) -> np.ndarray:
        return mu + sigma * rng.standard_normal((rows, c))

    gamma = rng.uniform(0.5, 2.0, c) * rng.choice([-1.0, 1.0], c)
    beta = rng.standard_normal(c)
    if v == _BN_EVAL:
        arrays = [batch(n), batch(n), batch(n), gamma, beta, batch(5), rng.standard_normal((5, c))]
        outputs = [
            "running_mean after 3 batches",
            "running_var after 3 batches",
            "forward in eval mode",
            "gradient of the input in eval mode",
        ]
        about = f"BatchNorm1d({c}), 3 training batches of ({n}, {c}), then eval on (5, {c})"
    else:
        arrays = [batch(n), gamma, beta, rng.standard_normal((n, c))]
        outputs = [
            "forward",
            "gradient of the input",
            "gradient of weight",
            "gradient of bias",
            "running_mean",
            "running_var",
        ]
        about = f"BatchNorm1d({c}), input ({n}, {c})"
    return {
        "variant": v,
        "features": c,
        "outputs": outputs,
        "about": about,
        "cotangent": len(arrays) - 1,
    }, arrays


def _batchnorm_run(tg: ModuleType, p: Params, arrays: Arrays) -> Outputs:
    bn = tg.nn.BatchNorm1d(p["features"])
    bn.train()
    if p["variant"] == _BN_EVAL:
        x1, x2, x3, gamma, beta, xe, u = arrays
        _assign(bn.weight, gamma)
        _assign(bn.bias, beta)
        for xb in (x1, x2, x3):
            bn(tg.Tensor(xb))
        rm = _value(tg, bn.running_mean, "BatchNorm1d.running_mean")
        rv = _value(tg, bn.running_var, "BatchNorm1d.running_var")
        bn.eval()
        x = tg.Tensor(xe, requires_grad=True)
        y = bn(x)
        out = to_array(tg, y, "BatchNorm1d in eval mode")
        y.backward(tg.Tensor(u))
        return [rm, rv, out, _grad(tg, x, "the input's grad")]
    xa, gamma, beta, u = arrays
    _assign(bn.weight, gamma)
    _assign(bn.bias, beta)
    x = tg.Tensor(xa, requires_grad=True)
    y = bn(x)
    out = to_array(tg, y, "BatchNorm1d")
    y.backward(tg.Tensor(u))
    return [
        out,
        _grad(tg, x, "the input's grad"),
        _grad(tg, bn.weight, "BatchNorm1d.weight.grad"),
        _grad(tg, bn.bias, "BatchNorm1d.bias.grad"),
        _value(tg, bn.running_mean, "BatchNorm1d.running_mean"),
        _value(tg, bn.running_var, "BatchNorm1d.running_var"),
    ]


def _batchnorm_ref(
    p: Params,
    arrays: Arrays,
    *,
    ddof: int = 0,
    running_ddof: int = 1,
    momentum: float = MOMENTUM,
    eval_batch_stats: bool = False,
) -> Outputs:
    """PyTorch's BatchNorm1d; the keywords describe known bugs."""
    c = p["features"]
    rm, rv = np.zeros(c), np.ones(c)

    def update(x: np.ndarray) -> None:
        nonlocal rm, rv
        rm = (1 - momentum) * rm + momentum * x.mean(0)
        rv = (1 - momentum) * rv + momentum * x.var(0, ddof=running_ddof)

    if p["variant"] == _BN_EVAL:
        x1, x2, x3, gamma, beta, xe, u = arrays
        for xb in (x1, x2, x3):
            update(xb)
        if eval_batch_stats:
            y, gx, _, _ = _normalize(xe, gamma, beta, u, 0, ddof)
        else:
            s = np.sqrt(rv + EPS)
            y, gx = gamma * (xe - rm) / s + beta, u * gamma / s
        return [rm, rv, y, gx]
    x, gamma, beta, u = arrays
    y, gx, gw, gb = _normalize(x, gamma, beta, u, 0, ddof)
    update(x)
    return [y, gx, gw, gb, rm, rv]


_LAYERNORM = (  # label, input shape
    ("rows of (4, 6)", (4, 6)),
    ("3-d input (2, 3, 5), normalised over the last axis", (2, 3, 5)),
)


def _layernorm_case(rng: np.random.Generator, v: int) -> tuple[Params, Arrays]:
    _, shape = _LAYERNORM[v]
    n = shape[-1]
    rows = shape[:-1] + (1,)
    x = rng.uniform(-2.0, 2.0, rows) + rng.uniform(0.5, 3.0, rows) * rng.standard_normal(shape)
    gamma = rng.uniform(0.5, 2.0, n) * rng.choice([-1.0, 1.0], n)
    arrays = [x, gamma, rng.standard_normal(n), rng.standard_normal(shape)]
    outputs = [
        "forward",
        "gradient of the input",
        "gradient of weight",
        "gradient of bias",
        "forward in eval mode",
    ]
    return {
        "variant": v,
        "features": n,
        "outputs": outputs,
        "cotangent": 3,
        "about": f"LayerNorm({n}), input {shape}",
    }, arrays


def _layernorm_run(tg: ModuleType, p: Params, arrays: Arrays) -> Outputs:
    xa, gamma, beta, u = arrays
    ln = tg.nn.LayerNorm(p["features"])
    _assign(ln.weight, gamma)
    _assign(ln.bias, beta)
    ln.train()
    x = tg.Tensor(xa, requires_grad=True)
    y = ln(x)
    out = to_array(tg, y, "LayerNorm")
    y.backward(tg.Tensor(u))
    grads = [
        _grad(tg, x, "the input's grad"),
        _grad(tg, ln.weight, "LayerNorm.weight.grad"),
        _grad(tg, ln.bias, "LayerNorm.bias.grad"),
    ]
    ln.eval()
    return [out, *grads, to_array(tg, ln(tg.Tensor(xa)), "LayerNorm in eval mode")]


def _layernorm_ref(p: Params, arrays: Arrays, *, ddof: int = 0, axis: int = 1) -> Outputs:
    """Each sample normalised over its last axis (``axis=0``: over the batch, a known bug)."""
    x, gamma, beta, u = arrays
    n = p["features"]
    y, gx, gw, gb = _normalize(x.reshape(-1, n), gamma, beta, u.reshape(-1, n), axis, ddof)
    return [y.reshape(x.shape), gx.reshape(x.shape), gw, gb, y.reshape(x.shape)]


# ---- Dropout ------------------------------------------------------------------------------------

_DROPOUT = (  # label, input shape, p
    ("training, p=0.3: share dropped, 1/(1-p) scaling, gradient through the mask", (200, 250), 0.3),
    ("training, p=0.5, called twice: a fresh mask at each call", (100, 300), 0.5),
    ("eval mode, p=0.4: the identity (and Dropout(0.0) in training)", (40, 50), 0.4),
)
_DROPOUT_TWICE, _DROPOUT_EVAL = 1, 2


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


def _dropout_run(tg: ModuleType, p: Params, arrays: Arrays) -> Outputs:
    xa, u = arrays
    _seed(tg, p["seed"])
    drop = tg.nn.Dropout(p["p"])
    if p["variant"] == _DROPOUT_TWICE:
        drop.train()
        return [
            to_array(tg, drop(tg.Tensor(xa)), "Dropout"),
            to_array(tg, drop(tg.Tensor(xa)), "Dropout"),
        ]
    if p["variant"] == _DROPOUT_EVAL:
        drop.eval()
    else:
        drop.train()
    x = tg.Tensor(xa, requires_grad=True)
    y = drop(x)
    out = np.array(to_array(tg, y, "Dropout"), copy=True)
    y.backward(tg.Tensor(u))
    outs = [out, _grad(tg, x, "the input's grad")]
    if p["variant"] == _DROPOUT_EVAL:
        zero = tg.nn.Dropout(0.0)
        zero.train()
        outs.append(to_array(tg, zero(tg.Tensor(xa)), "Dropout(0.0)"))
    return outs


def _dropout_ref(p: Params, arrays: Arrays) -> Outputs:
    """The kept entries' values (the mask itself is random)."""
    x, u = arrays
    if p["variant"] == _DROPOUT_EVAL:
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
    if not np.all(np.abs(y64[kept] - want) <= atol + rtol * np.abs(want)):
        ratio = y64[kept] / x[kept]
        r = float(np.median(ratio))
        if np.allclose(ratio, r, rtol=1e-3, atol=0):
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
    if p["variant"] == _DROPOUT_EVAL:
        y = got[0]
        if y is not None and y.shape == x.shape and float(np.mean(y == 0)) > 0.05:
            return Verdict(
                False,
                f"dropout is active in eval mode: {np.mean(y == 0):.0%} of the "
                "outputs are zero; after eval() Dropout returns its input unchanged",
                "train_eval_mode",
            )
        return default_judge(p, arrays, got, expected)
    forwards = got if p["variant"] == _DROPOUT_TWICE else got[:1]
    for name, y in zip(p["outputs"], forwards):
        verdict = _mask_verdict(name, y, x, drop)
        if not verdict.ok:
            return verdict
    if p["variant"] == _DROPOUT_TWICE:
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
    if g is not None and g.shape == x.shape and np.allclose(g, u, rtol=1e-5, atol=1e-6):
        return Verdict(
            False,
            "gradient of the input: it is the upstream gradient unchanged; it "
            "must go through the same mask and scaling as the forward",
            "wrong_gradient",
        )
    want = np.where(got[0] != 0, u / (1 - drop), 0.0)
    return compare_output("gradient of the input", g, want, out_shape=x.shape)


# ---- losses -------------------------------------------------------------------------------------

_CROSS_ENTROPY = (  # label, logits shape, domain, labels as a Tensor
    ("(8, 10) logits, labels as an integer array", (8, 10), "logits", False),
    ("(6, 5) logits of +-1000, labels as a Tensor", (6, 5), "extreme", True),
    ("a single sample (1, 4)", (1, 4), "logits", True),
)


def _cross_entropy_case(rng: np.random.Generator, v: int) -> tuple[Params, Arrays]:
    _, (n, c), domain, as_tensor = _CROSS_ENTROPY[v]
    z = DOMAINS[domain](rng, (n, c))
    labels = rng.integers(0, c, n).astype(np.int64)
    if domain == "extreme":  # a label at -1000 in a row whose max is +1000: p underflows to 0
        z[0, :2] = [-1000.0 + rng.standard_normal(), 1000.0 + rng.standard_normal()]
        labels[0] = 0
    g = np.array(rng.uniform(0.5, 2.0) * rng.choice([-1.0, 1.0]))
    return {
        "variant": v,
        "tensor_labels": as_tensor,
        "softmax_family": True,
        "cotangent": 2,
        "outputs": ["loss", "gradient of the logits"],
        "about": f"cross_entropy, logits ({n}, {c})",
    }, [z, labels, g]


def _cross_entropy_run(tg: ModuleType, p: Params, arrays: Arrays) -> Outputs:
    za, labels, g = arrays
    z = tg.Tensor(za, requires_grad=True)
    loss = tg.nn.functional.cross_entropy(z, tg.Tensor(labels) if p["tensor_labels"] else labels)
    out = to_array(tg, loss, "cross_entropy")
    loss.backward(tg.Tensor(g))
    return [out, _grad(tg, z, "the logits' grad")]


def _cross_entropy_ref(p: Params, arrays: Arrays, *, reduction: str = "mean") -> Outputs:
    z, labels, g = arrays
    n = len(z)
    m = z.max(1, keepdims=True)
    log_p = z - m - np.log(np.exp(z - m).sum(1, keepdims=True))
    onehot = np.zeros_like(z)
    onehot[np.arange(n), labels] = 1.0
    scale = 1.0 if reduction == "sum" else 1.0 / n
    loss = -log_p[np.arange(n), labels].sum() * scale
    return [np.array(loss), g * (np.exp(log_p) - onehot) * scale]


_MSE = (("(4, 3)", (4, 3)), ("a vector (10,)", (10,)), ("3-d (2, 3, 4)", (2, 3, 4)))


def _mse_case(rng: np.random.Generator, v: int) -> tuple[Params, Arrays]:
    _, shape = _MSE[v]
    g = np.array(rng.uniform(0.5, 2.0) * rng.choice([-1.0, 1.0]))
    return {
        "variant": v,
        "cotangent": 2,
        "outputs": ["loss", "gradient of the input"],
        "about": f"mse_loss, input and target {shape}",
    }, [rng.standard_normal(shape), rng.standard_normal(shape), g]


def _mse_run(tg: ModuleType, p: Params, arrays: Arrays) -> Outputs:
    xa, target, g = arrays
    x = tg.Tensor(xa, requires_grad=True)
    loss = tg.nn.functional.mse_loss(x, tg.Tensor(target))
    out = to_array(tg, loss, "mse_loss")
    loss.backward(tg.Tensor(g))
    return [out, _grad(tg, x, "the input's grad")]


def _mse_ref(p: Params, arrays: Arrays, *, reduction: str = "mean") -> Outputs:
    x, t, g = arrays
    scale = 1.0 if reduction == "sum" else 1.0 / x.size
    return [np.array(np.sum((x - t) ** 2) * scale), g * 2.0 * (x - t) * scale]


# ---- optimizers ---------------------------------------------------------------------------------

_SGD: tuple[dict[str, Any], ...] = (
    {
        "label": "momentum 0.9, weight decay 0.01: 5 steps with given gradients",
        "shapes": ((3, 4), (5,)),
        "lr": 0.05,
        "momentum": 0.9,
        "weight_decay": 0.01,
        "steps": 5,
        "mode": "given",
    },
    {
        "label": "plain SGD, lr 0.1: 3 steps",
        "shapes": ((2, 3),),
        "lr": 0.1,
        "momentum": 0.0,
        "weight_decay": 0.0,
        "steps": 3,
        "mode": "given",
    },
    {
        "label": "momentum 0.8 on a quadratic loss, zero_grad() between steps: 6 steps",
        "shapes": ((4,), (2, 2)),
        "lr": 0.05,
        "momentum": 0.8,
        "weight_decay": 0.0,
        "steps": 6,
        "mode": "loss",
    },
    {
        "label": "a parameter without a gradient at one step is left alone",
        "shapes": ((3,), (2,)),
        "lr": 0.1,
        "momentum": 0.5,
        "weight_decay": 0.1,
        "steps": 3,
        "mode": "given",
        "skip": [[0, 1]],
    },
)
_ADAM: tuple[dict[str, Any], ...] = (
    {
        "label": "defaults (betas 0.9, 0.999), lr 0.01: 6 steps with given gradients",
        "shapes": ((3, 4), (6,)),
        "lr": 0.01,
        "betas": [0.9, 0.999],
        "eps": 1e-8,
        "weight_decay": 0.0,
        "steps": 6,
        "mode": "given",
    },
    {
        "label": "betas (0.8, 0.99), eps 1e-6, weight decay 0.1: 5 steps on a quadratic loss",
        "shapes": ((4,), (2, 3)),
        "lr": 0.05,
        "betas": [0.8, 0.99],
        "eps": 1e-6,
        "weight_decay": 0.1,
        "steps": 5,
        "mode": "loss",
    },
    {
        "label": "weight decay 0.05, lr 0.001: 8 steps with given gradients",
        "shapes": ((5,),),
        "lr": 0.001,
        "betas": [0.9, 0.999],
        "eps": 1e-8,
        "weight_decay": 0.05,
        "steps": 8,
        "mode": "given",
    },
)


def _optim_case(
    table: tuple[dict[str, Any], ...], title: str, rng: np.random.Generator, v: int
) -> tuple[Params, Arrays]:
    spec = table[v]
    shapes, steps = spec["shapes"], spec["steps"]
    arrays = [rng.standard_normal(s) for s in shapes]
    for s, start in zip(shapes, list(arrays)):
        if spec["mode"] == "given":  # away from 0, where Adam's g / sqrt(v) is touchy
            arrays.append(rng.choice([-1.0, 1.0], (steps, *s)) * rng.uniform(0.3, 2.0, (steps, *s)))
        else:  # loss = sum(a * (p - c)**2), c at least 1 away: Adam's g never comes near 0
            away = rng.choice([-1.0, 1.0], s) * rng.uniform(1.0, 2.0, s)
            arrays += [rng.uniform(0.5, 2.0, s), start + away]
    params = {k: val for k, val in spec.items() if k not in ("label", "shapes")}
    params.update(
        variant=v,
        count=len(shapes),
        trajectory=True,
        outputs=[f"parameter {k} {tuple(s)}" for k, s in enumerate(shapes)],
        about=f"{title}, parameters {', '.join(str(tuple(s)) for s in shapes)}",
    )
    return params, arrays


def _optim_run(
    make: Callable[[ModuleType, list[Any], Params], Any], tg: ModuleType, p: Params, arrays: Arrays
) -> Outputs:
    """Run ``steps`` optimizer steps from the given initial values, with the given gradients
    (assigned to ``.grad``) or a quadratic loss (zero_grad, backward); return each parameter's
    values after every step, stacked."""
    n = p["count"]
    params = [tg.nn.Parameter(a) for a in arrays[:n]]
    opt = make(tg, params, p)
    skip = {(int(k), int(t)) for k, t in p.get("skip", [])}
    history: list[list[np.ndarray]] = [[] for _ in params]
    for t in range(p["steps"]):
        if p["mode"] == "given":
            for k, q in enumerate(params):
                q.grad = None if (k, t) in skip else tg.Tensor(arrays[n + k][t].copy())
        else:
            opt.zero_grad()
            terms = []
            for k, q in enumerate(params):
                a, c = tg.Tensor(arrays[n + 2 * k]), tg.Tensor(arrays[n + 2 * k + 1])
                terms.append(((q - c) ** 2 * a).sum())
            loss = terms[0]
            for term in terms[1:]:
                loss = loss + term
            loss.backward()
        opt.step()
        for k, q in enumerate(params):
            history[k].append(_value(tg, q, f"parameter {k} after step {t + 1}"))
    return [np.stack(h) for h in history]


def _trajectory(
    p: Params,
    arrays: Arrays,
    update: Callable[[int, np.ndarray, np.ndarray], np.ndarray],
    accumulate: bool = False,
) -> Outputs:
    """Reference trajectories: ``update(k, param, grad) -> new param`` for each parameter with a
    gradient at each step (``accumulate``: gradients add up, as without zero_grad)."""
    n = p["count"]
    values = [a.copy() for a in arrays[:n]]
    skip = {(int(k), int(t)) for k, t in p.get("skip", [])}
    total: list[Any] = [0.0] * n
    history: list[list[np.ndarray]] = [[] for _ in range(n)]
    for t in range(p["steps"]):
        for k in range(n):
            if (k, t) in skip:
                history[k].append(values[k].copy())
                continue
            if p["mode"] == "given":
                g = arrays[n + k][t]
            else:
                g = 2.0 * arrays[n + 2 * k] * (values[k] - arrays[n + 2 * k + 1])
            total[k] = total[k] + g if accumulate else g
            values[k] = update(k, values[k], total[k])
            history[k].append(values[k].copy())
    return [np.stack(h) for h in history]


def _sgd_make(tg: ModuleType, params: list[Any], p: Params) -> Any:
    return tg.optim.SGD(params, lr=p["lr"], momentum=p["momentum"], weight_decay=p["weight_decay"])


def _sgd_ref(
    p: Params,
    arrays: Arrays,
    *,
    dampening: bool = False,
    momentum: bool = True,
    decay: str = "l2",
    accumulate: bool = False,
) -> Outputs:
    """torch.optim.SGD; the keywords describe known bugs."""
    lr, mu, wd = p["lr"], p["momentum"] if momentum else 0.0, p["weight_decay"]
    buffers: dict[int, np.ndarray] = {}

    def update(k: int, x: np.ndarray, g: np.ndarray) -> np.ndarray:
        if decay == "l2":
            g = g + wd * x
        if mu:
            if dampening:
                buffers[k] = mu * buffers.get(k, 0.0) + (1 - mu) * g
            else:
                buffers[k] = g.copy() if k not in buffers else mu * buffers[k] + g
            g = buffers[k]
        if decay == "decoupled":
            x = x * (1 - lr * wd)
        return x - lr * g

    return _trajectory(p, arrays, update, accumulate)


def _adam_make(tg: ModuleType, params: list[Any], p: Params) -> Any:
    return tg.optim.Adam(
        params, lr=p["lr"], betas=tuple(p["betas"]), eps=p["eps"], weight_decay=p["weight_decay"]
    )


def _adam_ref(
    p: Params,
    arrays: Arrays,
    *,
    correct: tuple[bool, bool] = (True, True),
    decay: str = "l2",
    swap_betas: bool = False,
    accumulate: bool = False,
) -> Outputs:
    """torch.optim.Adam (L2 weight decay, not AdamW); the keywords describe known bugs."""
    lr, eps, wd = p["lr"], p["eps"], p["weight_decay"]
    b1, b2 = reversed(p["betas"]) if swap_betas else p["betas"]
    state: dict[int, list[Any]] = {}

    def update(k: int, x: np.ndarray, g: np.ndarray) -> np.ndarray:
        if decay == "l2":
            g = g + wd * x
        t, m, v = state.get(k, [0, 0.0, 0.0])
        t, m, v = t + 1, b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        state[k] = [t, m, v]
        m_hat = m / (1 - b1**t) if correct[0] else m
        v_hat = v / (1 - b2**t) if correct[1] else v
        if decay == "decoupled":
            x = x * (1 - lr * wd)
        return x - lr * m_hat / (np.sqrt(v_hat) + eps)

    return _trajectory(p, arrays, update, accumulate)


_NO_ZERO_GRAD = (
    "the gradients add up from step to step: zero_grad() must clear every parameter's .grad",
    "wrong_gradient",
)

_CLIP = (  # label, shapes, above max_norm, the parameter without a gradient
    ("total norm above max_norm: every gradient scaled", ((3, 4), (5,), (2, 2, 2)), True, None),
    ("total norm below max_norm: gradients unchanged", ((3, 4), (5,)), False, None),
    ("a parameter without a gradient is skipped", ((4,), (3, 3), (2,)), True, 1),
)


def _clip_case(rng: np.random.Generator, v: int) -> tuple[Params, Arrays]:
    _, shapes, above, none = _CLIP[v]
    grads = [rng.standard_normal(s) for s in shapes]
    norm = math.sqrt(sum(float(np.sum(g * g)) for k, g in enumerate(grads) if k != none))
    max_norm = round(norm * (rng.uniform(0.2, 0.6) if above else rng.uniform(1.5, 3.0)), 4)
    outputs = ["returned total norm"] + [
        f"gradient of parameter {k} {s} after clipping" for k, s in enumerate(shapes)
    ]
    return {
        "variant": v,
        "count": len(shapes),
        "none": none,
        "max_norm": max_norm,
        "outputs": outputs,
        "about": f"clip_grad_norm_(max_norm={max_norm:g}), parameters "
        + ", ".join(str(s) for s in shapes),
    }, [rng.standard_normal(s) for s in shapes] + grads


def _clip_run(tg: ModuleType, p: Params, arrays: Arrays) -> Outputs:
    n = p["count"]
    params = [tg.nn.Parameter(a) for a in arrays[:n]]
    for k, q in enumerate(params):
        q.grad = None if k == p["none"] else tg.Tensor(arrays[n + k].copy())
    total = _number(tg, tg.optim.clip_grad_norm_(params, p["max_norm"]), "clip_grad_norm_")
    return [total] + [_grad(tg, q, f"parameter {k}'s grad") for k, q in enumerate(params)]


def _clip_ref(
    p: Params,
    arrays: Arrays,
    *,
    per_parameter: bool = False,
    always: bool = False,
    returns_clipped: bool = False,
) -> Outputs:
    n, max_norm = p["count"], p["max_norm"]
    grads = [None if k == p["none"] else arrays[n + k] for k in range(n)]
    total = math.sqrt(sum(float(np.sum(g * g)) for g in grads if g is not None))

    def clipped(g: np.ndarray, norm: float) -> np.ndarray:
        coef = max_norm / (norm + 1e-6)
        return g * coef if always or coef < 1.0 else g

    out = [
        None
        if g is None
        else clipped(g, math.sqrt(float(np.sum(g * g))) if per_parameter else total)
        for g in grads
    ]
    return [np.array(min(total, max_norm) if returns_clipped else total)] + out


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


def _init_run(tg: ModuleType, p: Params, arrays: Arrays) -> Outputs:
    _seed(tg, p["seed"])
    t = tg.nn.Parameter(np.zeros(tuple(p["shape"]), dtype=np.float32))
    getattr(tg.nn.init, p["function"])(t, **p["kwargs"])
    return [_value(tg, t, f"the tensor after {p['function']}")]  # filled in place


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


# ---- Conv2d and MaxPool2d -----------------------------------------------------------------------

_CONV = (  # label, input shape, out channels, kernel, stride, padding
    ("3x3 kernel, stride 1, no padding", (2, 3, 7, 6), 4, 3, 1, 0),
    ("3x3 kernel, stride 2, padding 1", (2, 2, 8, 7), 3, 3, 2, 1),
    ("5x5 kernel, padding 2 (same size), one input channel", (1, 1, 6, 6), 2, 5, 1, 2),
    ("1x1 kernel", (3, 4, 3, 5), 2, 1, 1, 0),
)


def _conv_case(rng: np.random.Generator, v: int) -> tuple[Params, Arrays]:
    _, shape, o, k, s, pad = _CONV[v]
    n, c, h, w = shape
    oh, ow = (h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1
    arrays = [
        rng.standard_normal(shape),
        rng.standard_normal((o, c, k, k)) / math.sqrt(c * k * k),
        rng.standard_normal(o),
        rng.standard_normal((n, o, oh, ow)),
    ]
    return {
        "variant": v,
        "in": c,
        "out": o,
        "kernel": k,
        "stride": s,
        "padding": pad,
        "cotangent": 3,
        "outputs": ["forward", "gradient of the input", "gradient of weight", "gradient of bias"],
        "about": f"Conv2d({c}, {o}, kernel_size={k}, stride={s}, padding={pad}), input {shape}",
    }, arrays


def _conv_run(tg: ModuleType, p: Params, arrays: Arrays) -> Outputs:
    xa, w, b, u = arrays
    conv = tg.nn.Conv2d(p["in"], p["out"], p["kernel"], stride=p["stride"], padding=p["padding"])
    _assign(conv.weight, w)
    _assign(conv.bias, b)
    x = tg.Tensor(xa, requires_grad=True)
    y = conv(x)
    out = to_array(tg, y, "Conv2d")
    y.backward(tg.Tensor(u))
    return [
        out,
        _grad(tg, x, "the input's grad"),
        _grad(tg, conv.weight, "Conv2d.weight.grad"),
        _grad(tg, conv.bias, "Conv2d.bias.grad"),
    ]


def _conv_ref(p: Params, arrays: Arrays, *, flipped: bool = False) -> Outputs:
    """Direct cross-correlation, one output pixel at a time (``flipped``: true convolution,
    the kernel rotated by 180 degrees, a known bug)."""
    x, w, b, u = arrays
    if flipped:
        w = w[:, :, ::-1, ::-1]
    k, s, pad = p["kernel"], p["stride"], p["padding"]
    h, wd = x.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = u.shape[2:]
    y = np.empty(u.shape)
    gxp, gw = np.zeros_like(xp), np.zeros_like(w)
    for i in range(oh):
        for j in range(ow):
            window = (slice(None), slice(None), slice(i * s, i * s + k), slice(j * s, j * s + k))
            patch = xp[window]
            y[:, :, i, j] = np.einsum("ncab,ocab->no", patch, w) + b
            gxp[window] += np.einsum("no,ocab->ncab", u[:, :, i, j], w)
            gw += np.einsum("no,ncab->ocab", u[:, :, i, j], patch)
    gx = gxp[:, :, pad : pad + h, pad : pad + wd]
    return [y, gx, gw[:, :, ::-1, ::-1] if flipped else gw, u.sum((0, 2, 3))]


_POOL = (  # label, input shape, kernel
    ("2x2 windows", (2, 3, 8, 6), 2),
    ("3x3 windows on 7x8: the leftover rows and columns are dropped", (2, 2, 7, 8), 3),
    ("2x2 windows, a batch of 1", (1, 4, 4, 4), 2),
)


def _pool_case(rng: np.random.Generator, v: int) -> tuple[Params, Arrays]:
    _, shape, k = _POOL[v]
    n, c, h, w = shape
    x = DOMAINS["distinct"](rng, shape)  # no ties: the maximum of each window is unique
    return {
        "variant": v,
        "kernel": k,
        "cotangent": 1,
        "outputs": ["forward", "gradient of the input"],
        "about": f"MaxPool2d({k}), input {shape}",
    }, [x, rng.standard_normal((n, c, h // k, w // k))]


def _pool_run(tg: ModuleType, p: Params, arrays: Arrays) -> Outputs:
    xa, u = arrays
    x = tg.Tensor(xa, requires_grad=True)
    y = tg.nn.MaxPool2d(p["kernel"])(x)
    out = to_array(tg, y, "MaxPool2d")
    y.backward(tg.Tensor(u))
    return [out, _grad(tg, x, "the input's grad")]


def _pool_ref(p: Params, arrays: Arrays, *, average_gradient: bool = False) -> Outputs:
    x, u = arrays
    k = p["kernel"]
    n, c, oh, ow = u.shape
    windows = x[:, :, : oh * k, : ow * k].reshape(n, c, oh, k, ow, k)
    y = windows.max(axis=(3, 5))
    if average_gradient:
        mask = np.full(windows.shape, 1.0 / (k * k))
    else:
        mask = (windows == y[:, :, :, None, :, None]).astype(np.float64)
    gx = np.zeros_like(x)
    gx[:, :, : oh * k, : ow * k] = (mask * u[:, :, :, None, :, None]).reshape(n, c, oh * k, ow * k)
    return [y, gx]


# ---- Module: parameters(), train()/eval(), state_dict() -----------------------------------------

# The probe model (built in the worker by _build_net): parameters in registration order,
# buffers, and modules, named as PyTorch names them.
NET_PARAMETERS = (
    "first.weight",
    "first.bias",
    "blocks.0.lin.weight",
    "blocks.0.lin.bias",
    "blocks.0.gain",
    "blocks.1.lin.weight",
    "blocks.1.lin.bias",
    "blocks.1.gain",
    "bn.weight",
    "bn.bias",
    "head.0.weight",
    "head.0.bias",
    "head.2.weight",
    "head.2.bias",
)
NET_BUFFERS = ("bn.running_mean", "bn.running_var")
NET_OPTIONAL = ("tied", "bn.num_batches_tracked")  # PyTorch would also list these
NET_MODULES = (
    "the model",
    "first",
    "blocks.0",
    "blocks.0.lin",
    "blocks.1",
    "blocks.1.lin",
    "act",
    "bn",
    "head",
    "head.0",
    "head.1",
    "head.2",
)

_MODULE = (
    "parameters(): sub-modules, a list of modules, a shared parameter, each once",
    "train() and eval() reach every sub-module",
    "state_dict() and load_state_dict(): names, buffers, a copy that computes the same",
)
_PARAMETERS, _MODES, _STATE = 0, 1, 2


def _build_net(tg: ModuleType) -> tuple[Any, list[Any], list[Any]]:
    """The probe model, its parameters in registration order and its modules (NET_*)."""
    nn = tg.nn

    class Block(nn.Module):  # type: ignore[name-defined,misc]
        def __init__(self, n: int) -> None:
            super().__init__()
            self.lin = nn.Linear(n, n)
            self.gain = nn.Parameter(np.ones(n, dtype=np.float32))

        def forward(self, x: Any) -> Any:
            return tg.relu(self.lin(x)) * self.gain

    class Net(nn.Module):  # type: ignore[name-defined,misc]
        def __init__(self, first: Any, blocks: list[Any], act: Any, bn: Any, head: Any) -> None:
            super().__init__()
            self.first, self.blocks, self.act, self.bn, self.head = first, blocks, act, bn, head
            self.tied = blocks[0].lin.weight  # the same parameter again: listed once

        def forward(self, x: Any) -> Any:
            h = self.act(self.first(x))
            for block in self.blocks:
                h = block(h)
            return self.head(self.bn(h))

    first, blocks, act, bn = nn.Linear(5, 4), [Block(4), Block(4)], nn.ReLU(), nn.BatchNorm1d(4)
    h0, h1, h2 = nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)
    head = nn.Sequential(h0, h1, h2)
    net = Net(first, blocks, act, bn, head)
    params = [first.weight, first.bias]
    for block in blocks:
        params += [block.lin.weight, block.lin.bias, block.gain]
    params += [bn.weight, bn.bias, h0.weight, h0.bias, h2.weight, h2.bias]
    modules = [
        net,
        first,
        blocks[0],
        blocks[0].lin,
        blocks[1],
        blocks[1].lin,
        act,
        bn,
        head,
        h0,
        h1,
        h2,
    ]
    return net, params, modules


def _module_case(rng: np.random.Generator, v: int) -> tuple[Params, Arrays]:
    outputs = (
        ["parameters() in order"],
        ["training flags after eval()", "training flags after train()"],
        [
            "state_dict() keys",
            "output of the original",
            "output of the copy",
            "state of the original",
            "state of the copy",
        ],
    )[v]
    arrays = [] if v != _STATE else [rng.standard_normal((6, 5)) * 2 + 1 for _ in range(3)]
    return {
        "variant": v,
        "seed": int(rng.integers(2**31)),
        "outputs": outputs,
        "about": "a Module with sub-modules, a list of Blocks, BatchNorm1d, Sequential "
        "and a shared parameter",
    }, arrays


def _state_array(tg: ModuleType, value: Any, what: str) -> np.ndarray:
    array = to_array(tg, value, what) if isinstance(value, tg.Tensor) else np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{what} is {type(value).__name__}, expected an array or a Tensor")
    return array.astype(np.float64).ravel()


def _module_run(tg: ModuleType, p: Params, arrays: Arrays) -> Outputs:
    _seed(tg, p["seed"])
    net, params, modules = _build_net(tg)
    if p["variant"] == _PARAMETERS:
        for k, q in enumerate(params):
            q.data = np.full(q.shape, k + 1.0, dtype=np.float32)  # a marker per parameter
        found = [to_array(tg, q, "an item of parameters()") for q in net.parameters()]
        return [np.array([float(a.reshape(-1)[0]) if a.size else 0.0 for a in found])]
    if p["variant"] == _MODES:
        net.eval()
        after_eval = np.array([bool(m.training) for m in modules], dtype=np.int8)
        net.train()
        return [after_eval, np.array([bool(m.training) for m in modules], dtype=np.int8)]
    net.train()
    for xb in arrays[:2]:  # moves the BatchNorm running statistics away from their defaults
        net(tg.Tensor(xb))
    state = net.state_dict()
    keys = [str(k) for k in state.keys()]
    copy, _, _ = _build_net(tg)
    copy.load_state_dict(state)
    loaded = copy.state_dict()
    common = [k for k in keys if k in loaded]
    flat = [
        np.concatenate(
            [np.zeros(0)] + [_state_array(tg, s[k], f"state_dict()[{k!r}]") for k in common]
        )
        for s in (state, loaded)
    ]
    net.eval()
    copy.eval()
    outs = [to_array(tg, m(tg.Tensor(arrays[2])), "the model") for m in (net, copy)]
    names = np.frombuffer("\n".join(keys).encode("utf-8", "replace"), dtype=np.uint8).copy()
    return [names, *outs, *flat]


def _module_ref(p: Params, arrays: Arrays) -> Outputs:
    if p["variant"] == _PARAMETERS:
        return [np.arange(1.0, len(NET_PARAMETERS) + 1)]
    if p["variant"] == _MODES:
        return [np.zeros(len(NET_MODULES)), np.ones(len(NET_MODULES))]
    return [None] * 5  # judged by consistency: the copy against the original


def _names(items: Any, limit: int = 6) -> str:
    items = list(items)
    shown = ", ".join(str(i)[:60] for i in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _module_judge(p: Params, arrays: Arrays, got: Outputs, expected: Outputs) -> Verdict:
    if p["variant"] == _PARAMETERS:
        found = [int(m) if float(m).is_integer() else 0 for m in np.asarray(got[0]).ravel()]
        # Each parameter exactly once. The order is not judged: the starter asks for
        # registration order, PyTorch lists each module's own parameters before its children's.
        if sorted(found) == list(range(1, len(NET_PARAMETERS) + 1)):
            return Verdict(True)
        name = {k + 1: n for k, n in enumerate(NET_PARAMETERS)}
        problems = []
        missing = [n for k, n in name.items() if k not in found]
        if missing:
            problems.append(
                f"parameters() missed {_names(missing)} (does it go into sub-modules, "
                "and into lists of modules?)"
            )
        twice = [name[k] for k in sorted(set(found)) if k in name and found.count(k) > 1]
        if twice:
            problems.append(
                f"listed {_names(twice)} more than once (a parameter reached twice, "
                "e.g. shared between layers, is listed once)"
            )
        if any(k not in name for k in found):
            problems.append("returned tensors that are not parameters of the model")
        return Verdict(
            False,
            f"{len(found)} parameters, expected {len(NET_PARAMETERS)}: " + "; ".join(problems),
            "module_structure",
        )
    if p["variant"] == _MODES:
        for flags, want, call in ((got[0], 0, "eval()"), (got[1], 1, "train()")):
            flags = np.asarray(flags).ravel()
            wrong = [n for n, f in zip(NET_MODULES, flags) if int(f) != want]
            if wrong or flags.size != len(NET_MODULES):
                return Verdict(
                    False,
                    f"after {call}, {_names(wrong)} still "
                    f"{'in training' if want == 0 else 'in eval'} mode: it must set "
                    "the mode of every sub-module too",
                    "train_eval_mode",
                )
        return Verdict(True)
    names, out_a, out_b, state_a, state_b = got
    keys = bytes(np.asarray(names, dtype=np.uint8)).decode("utf-8", "replace").split("\n")
    keys = [k for k in keys if k]
    missing = [k for k in NET_PARAMETERS + NET_BUFFERS if k not in keys]
    extra = [k for k in keys if k not in NET_PARAMETERS + NET_BUFFERS + NET_OPTIONAL]
    if missing or extra:
        parts = ([f"missing {_names(missing)}"] if missing else []) + (
            [f"unexpected {_names(extra)}"] if extra else []
        )
        return Verdict(
            False,
            "state_dict() keys: " + "; ".join(parts) + " (parameters and "
            "buffers, named by attribute path: first.weight, blocks.0.lin.bias, "
            "bn.running_mean, head.2.weight)",
            "module_structure",
        )
    if (
        state_a is None
        or state_b is None
        or state_a.shape != state_b.shape
        or not np.allclose(state_a, state_b, rtol=1e-6, atol=1e-7)
    ):
        return Verdict(
            False,
            "after load_state_dict(state), the copy's state_dict() differs "
            "from state: every parameter and buffer must be loaded",
            "module_structure",
        )
    verdict = (
        compare_values(
            "output of the copy after load_state_dict",
            out_b,
            out_a.astype(np.float64),
            atol=1e-5,
            rtol=1e-4,
        )
        if out_a is not None and out_b is not None
        else (Verdict(False, "no output", "wrong_forward"))
    )
    if not verdict.ok:
        return Verdict(
            False, verdict.message + " (are the buffers saved and loaded too?)", "module_structure"
        )
    return Verdict(True)


# ---- the table ----------------------------------------------------------------------------------


def _labels(table: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple(row["label"] if isinstance(row, dict) else row[0] for row in table)


_PROBES = (
    ModuleProbe(
        "module", "Module", _MODULE, _module_case, _module_run, _module_ref, judge=_module_judge
    ),
    ModuleProbe(
        "linear",
        "Linear",
        _labels(_LINEAR),
        _linear_case,
        _linear_run,
        _linear_ref,
        judge=_linear_judge,
    ),
    ModuleProbe(
        "batchnorm1d",
        "BatchNorm1d",
        _labels(_BATCHNORM),
        _batchnorm_case,
        _batchnorm_run,
        _batchnorm_ref,
        signatures=(
            Signature(
                "eval mode normalises with the batch's statistics; it must use "
                "running_mean and running_var",
                "train_eval_mode",
                partial(_batchnorm_ref, eval_batch_stats=True),
            ),
            Signature(
                "it normalises with the unbiased variance (dividing by N-1); normalise "
                "with the biased one (dividing by N)",
                "wrong_variance",
                partial(_batchnorm_ref, ddof=1),
            ),
            Signature(
                "running_var is updated with the biased batch variance; PyTorch uses the "
                "unbiased one (times N/(N-1))",
                "wrong_variance",
                partial(_batchnorm_ref, running_ddof=0),
            ),
            Signature(
                "the momentum is applied the wrong way round: running = (1 - momentum) * "
                "running + momentum * batch",
                "wrong_momentum",
                partial(_batchnorm_ref, momentum=1 - MOMENTUM),
            ),
        ),
    ),
    ModuleProbe(
        "dropout",
        "Dropout",
        _labels(_DROPOUT),
        _dropout_case,
        _dropout_run,
        _dropout_ref,
        judge=_dropout_judge,
    ),
    ModuleProbe(
        "layernorm",
        "LayerNorm",
        _labels(_LAYERNORM),
        _layernorm_case,
        _layernorm_run,
        _layernorm_ref,
        signatures=(
            Signature(
                "it normalises with the unbiased variance (dividing by n-1); use the "
                "biased one (dividing by n)",
                "wrong_variance",
                partial(_layernorm_ref, ddof=1),
            ),
            Signature(
                "it normalises over the batch (like BatchNorm); LayerNorm normalises each "
                "sample over its last dimension",
                "wrong_forward",
                partial(_layernorm_ref, axis=0),
            ),
        ),
    ),
    ModuleProbe(
        "cross_entropy",
        "cross_entropy",
        _labels(_CROSS_ENTROPY),
        _cross_entropy_case,
        _cross_entropy_run,
        _cross_entropy_ref,
        signatures=(
            Signature(
                "the loss is summed over the batch; it is the mean",
                "constant_factor",
                partial(_cross_entropy_ref, reduction="sum"),
            ),
        ),
    ),
    ModuleProbe(
        "mse",
        "mse_loss",
        _labels(_MSE),
        _mse_case,
        _mse_run,
        _mse_ref,
        signatures=(
            Signature(
                "the loss is summed; it is the mean over all entries",
                "constant_factor",
                partial(_mse_ref, reduction="sum"),
            ),
        ),
    ),
    ModuleProbe(
        "sgd",
        "SGD",
        _labels(_SGD),
        partial(_optim_case, _SGD, "SGD"),
        partial(_optim_run, _sgd_make),
        _sgd_ref,
        signatures=(
            Signature(
                "the momentum buffer is damped (buf = momentum * buf + (1 - momentum) * g); "
                "PyTorch's is buf = momentum * buf + g, starting from buf = g",
                "wrong_momentum",
                partial(_sgd_ref, dampening=True),
            ),
            Signature(
                "the momentum is ignored", "wrong_momentum", partial(_sgd_ref, momentum=False)
            ),
            Signature(
                "the weight decay is ignored: add weight_decay * p to the gradient",
                "wrong_weight_decay",
                partial(_sgd_ref, decay="none"),
            ),
            Signature(
                "the weight decay is decoupled (p -= lr * weight_decay * p); SGD adds "
                "weight_decay * p to the gradient, before the momentum",
                "wrong_weight_decay",
                partial(_sgd_ref, decay="decoupled"),
            ),
            Signature(*_NO_ZERO_GRAD, partial(_sgd_ref, accumulate=True)),
        ),
    ),
    ModuleProbe(
        "adam",
        "Adam",
        _labels(_ADAM),
        partial(_optim_case, _ADAM, "Adam"),
        partial(_optim_run, _adam_make),
        _adam_ref,
        signatures=(
            Signature(
                "no bias correction: m_hat = m / (1 - beta1**t), v_hat = v / (1 - beta2**t)",
                "no_bias_correction",
                partial(_adam_ref, correct=(False, False)),
            ),
            Signature(
                "only the second moment is bias-corrected; correct m too",
                "no_bias_correction",
                partial(_adam_ref, correct=(False, True)),
            ),
            Signature(
                "only the first moment is bias-corrected; correct v too",
                "no_bias_correction",
                partial(_adam_ref, correct=(True, False)),
            ),
            Signature(
                "beta1 and beta2 are swapped: m uses beta1, v uses beta2",
                "wrong_momentum",
                partial(_adam_ref, swap_betas=True),
            ),
            Signature(
                "the weight decay is ignored: add weight_decay * p to the gradient",
                "wrong_weight_decay",
                partial(_adam_ref, decay="none"),
            ),
            Signature(
                "the weight decay is decoupled (AdamW); Adam adds weight_decay * p to the gradient",
                "wrong_weight_decay",
                partial(_adam_ref, decay="decoupled"),
            ),
            Signature(*_NO_ZERO_GRAD, partial(_adam_ref, accumulate=True)),
        ),
    ),
    ModuleProbe(
        "clip_grad_norm",
        "clip_grad_norm_",
        _labels(_CLIP),
        _clip_case,
        _clip_run,
        _clip_ref,
        signatures=(
            Signature(
                "each gradient is clipped by its own norm; the norm is global: the square "
                "root of the sum of squares over all the parameters together",
                "wrong_forward",
                partial(_clip_ref, per_parameter=True),
            ),
            Signature(
                "the gradients are rescaled to max_norm even when their norm is below it",
                "wrong_forward",
                partial(_clip_ref, always=True),
            ),
            Signature(
                "it returns the norm after clipping; return the total norm before",
                "wrong_forward",
                partial(_clip_ref, returns_clipped=True),
            ),
        ),
    ),
    ModuleProbe(
        "xavier",
        "xavier_uniform_",
        _labels(_XAVIER),
        partial(_init_case, _XAVIER, "xavier_uniform_"),
        _init_run,
        lambda p, a: [np.array(_xavier_bounds(p)[""])],
        judge=partial(_init_judge, _xavier_bounds),
    ),
    ModuleProbe(
        "kaiming",
        "kaiming_uniform_",
        _labels(_KAIMING),
        partial(_init_case, _KAIMING, "kaiming_uniform_"),
        _init_run,
        lambda p, a: [np.array(_kaiming_bounds(p)[""])],
        judge=partial(_init_judge, _kaiming_bounds),
    ),
    ModuleProbe(
        "conv2d",
        "Conv2d",
        _labels(_CONV),
        _conv_case,
        _conv_run,
        _conv_ref,
        assignment="hw3",
        signatures=(
            Signature(
                "the kernel is flipped (true convolution); Conv2d computes the "
                "cross-correlation: out[o, i, j] = sum w[o, c, a, b] * x[c, i*s + a, j*s + b]",
                "wrong_forward",
                partial(_conv_ref, flipped=True),
            ),
        ),
    ),
    ModuleProbe(
        "maxpool2d",
        "MaxPool2d",
        _labels(_POOL),
        _pool_case,
        _pool_run,
        _pool_ref,
        assignment="hw3",
        signatures=(
            Signature(
                "the gradient is spread over the whole window; it goes only to each "
                "window's maximum",
                "wrong_gradient",
                partial(_pool_ref, average_gradient=True),
            ),
        ),
    ),
)

PROBES: dict[str, ModuleProbe] = {p.name: p for p in _PROBES}


# ---- the worker's handler and the parent's check ------------------------------------------------


@handler("module")
def module_handler(
    tg: ModuleType, header: dict[str, Any], arrays: Arrays
) -> tuple[dict[str, Any], Arrays]:
    """Run probe ``header["probe"]`` with ``header["params"]`` on the arrays sent. The reply
    lists (``"none"``) which outputs were None (a missing gradient); the arrays are the rest."""
    name = header.get("probe")
    probe = PROBES.get(name) if isinstance(name, str) else None
    if probe is None:
        raise LookupError(f"no module probe {name!r}; known: {sorted(PROBES)}")
    params = dict(header.get("params") or {})
    outputs = probe.run(tg, params, [np.array(a, copy=True) for a in arrays])
    none = [i for i, out in enumerate(outputs) if out is None]
    return {"none": none}, [np.asarray(out, order="C") for out in outputs if out is not None]


def _unpack(header: dict[str, Any], arrays: list[np.ndarray], count: int) -> Outputs:
    none = header.get("none", [])
    valid = isinstance(none, list) and all(
        isinstance(i, int) and not isinstance(i, bool) and 0 <= i < count for i in none
    )
    if not valid or len(set(none)) != len(none) or len(arrays) + len(none) != count:
        raise RequestFailed("the worker's reply was incomplete", "crash")
    rest = iter(arrays)
    return [None if i in none else next(rest) for i in range(count)]


def run_module_check(
    request: Request, probe_name: str, rng: np.random.Generator, *, cases: int = 1
) -> list[CaseOutcome]:
    """Every variant of one probe, ``cases`` times each. ``request(header, arrays)`` talks to
    the worker and raises :class:`~autograder.opcheck.RequestFailed` when the student's code
    fails; after a not-implemented or fatal failure the remaining cases are recorded as failed
    without running them."""
    if probe_name not in PROBES:
        raise KeyError(f"no module probe {probe_name!r}; known: {', '.join(sorted(PROBES))}")
    probe = PROBES[probe_name]
    plan = [(v, label) for v, label in enumerate(probe.variants) for _ in range(cases)]
    outcomes: list[CaseOutcome] = []
    for n, (v, label) in enumerate(plan):
        params, arrays = probe.make_case(rng, v)
        try:
            header, replied = request(
                {"type": "module", "probe": probe.name, "params": params},
                [a.copy() for a in arrays],
            )
            got = _unpack(header, list(replied), len(params["outputs"]))
        except RequestFailed as exc:
            outcomes.append(
                CaseOutcome(label, False, f"{probe.title} ({label}): {exc}", exc.bug_class)
            )
            if exc.fatal or exc.bug_class == "not_implemented":
                outcomes += [
                    CaseOutcome(rest, False, f"not run: {exc}", exc.bug_class)
                    for _, rest in plan[n + 1 :]
                ]
                break
            continue
        try:
            verdict = probe.verdict(params, arrays, got)
        except (ValueError, TypeError, IndexError, KeyError) as exc:  # odd shapes or dtypes
            verdict = Verdict(
                False,
                f"the results could not be judged ({type(exc).__name__}: {str(exc)[:200]})",
                "wrong_shape",
            )
        message = "" if verdict.ok else f"{probe.title} ({params['about']}): {verdict.message}"
        outcomes.append(CaseOutcome(label, verdict.ok, message, verdict.bug_class))
    return outcomes
