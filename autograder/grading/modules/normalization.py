"""Probes of normalisation layers: BatchNorm1d (batch and running statistics, train and
eval modes) and LayerNorm, against PyTorch's conventions."""

from __future__ import annotations

from functools import partial

import numpy as np

from autograder.worker.modules.normalization import BN_EVAL
from autograder.worker.tensors import AFFINE_OUTPUTS

from .base import (
    Arrays,
    ModuleProbe,
    Outputs,
    Params,
    Signature,
    case_labels,
)

EPS = 1e-5  # BatchNorm1d and LayerNorm's default eps
MOMENTUM = 0.1  # BatchNorm1d's default momentum (PyTorch's convention)


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


def _batchnorm_case(rng: np.random.Generator, v: int) -> tuple[Params, Arrays]:
    _, (n, c) = _BATCHNORM[v]
    mu, sigma = rng.uniform(-2.0, 2.0, c), rng.uniform(0.5, 3.0, c)

    def batch(rows: int) -> np.ndarray:
        return mu + sigma * rng.standard_normal((rows, c))

    gamma = rng.uniform(0.5, 2.0, c) * rng.choice([-1.0, 1.0], c)
    beta = rng.standard_normal(c)
    if v == BN_EVAL:
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
        outputs = [*AFFINE_OUTPUTS, "running_mean", "running_var"]
        about = f"BatchNorm1d({c}), input ({n}, {c})"
    return {
        "variant": v,
        "features": c,
        "outputs": outputs,
        "about": about,
        "cotangent": len(arrays) - 1,
    }, arrays


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

    if p["variant"] == BN_EVAL:
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


BATCHNORM1D_PROBE = ModuleProbe(
    "batchnorm1d",
    "BatchNorm1d",
    case_labels(_BATCHNORM),
    _batchnorm_case,
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
)


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
    outputs = [*AFFINE_OUTPUTS, "forward in eval mode"]
    return {
        "variant": v,
        "features": n,
        "outputs": outputs,
        "cotangent": 3,
        "about": f"LayerNorm({n}), input {shape}",
    }, arrays


def _layernorm_ref(p: Params, arrays: Arrays, *, ddof: int = 0, axis: int = 1) -> Outputs:
    """Each sample normalised over its last axis (``axis=0``: over the batch, a known bug)."""
    x, gamma, beta, u = arrays
    n = p["features"]
    y, gx, gw, gb = _normalize(x.reshape(-1, n), gamma, beta, u.reshape(-1, n), axis, ddof)
    return [y.reshape(x.shape), gx.reshape(x.shape), gw, gb, y.reshape(x.shape)]


LAYERNORM_PROBE = ModuleProbe(
    "layernorm",
    "LayerNorm",
    case_labels(_LAYERNORM),
    _layernorm_case,
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
)
