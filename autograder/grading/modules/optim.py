"""Probes of the optimizers (SGD and Adam: parameter trajectories over several steps) and of
clip_grad_norm_."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from autograder.worker.modules.optim import skipped

from .base import (
    Arrays,
    ModuleProbe,
    Outputs,
    Params,
    Signature,
    case_labels,
)

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
    skip = skipped(p)
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


# Known bugs of both SGD and Adam: (message, bug class).
_NO_ZERO_GRAD = (
    "the gradients add up from step to step: zero_grad() must clear every parameter's .grad",
    "wrong_gradient",
)
_NO_WEIGHT_DECAY = (
    "the weight decay is ignored: add weight_decay * p to the gradient",
    "wrong_weight_decay",
)


SGD_PROBE = ModuleProbe(
    "sgd",
    "SGD",
    case_labels(_SGD),
    partial(_optim_case, _SGD, "SGD"),
    _sgd_ref,
    signatures=(
        Signature(
            "the momentum buffer is damped (buf = momentum * buf + (1 - momentum) * g); "
            "PyTorch's is buf = momentum * buf + g, starting from buf = g",
            "wrong_momentum",
            partial(_sgd_ref, dampening=True),
        ),
        Signature("the momentum is ignored", "wrong_momentum", partial(_sgd_ref, momentum=False)),
        Signature(*_NO_WEIGHT_DECAY, partial(_sgd_ref, decay="none")),
        Signature(
            "the weight decay is decoupled (p -= lr * weight_decay * p); SGD adds "
            "weight_decay * p to the gradient, before the momentum",
            "wrong_weight_decay",
            partial(_sgd_ref, decay="decoupled"),
        ),
        Signature(*_NO_ZERO_GRAD, partial(_sgd_ref, accumulate=True)),
    ),
)


ADAM_PROBE = ModuleProbe(
    "adam",
    "Adam",
    case_labels(_ADAM),
    partial(_optim_case, _ADAM, "Adam"),
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
        Signature(*_NO_WEIGHT_DECAY, partial(_adam_ref, decay="none")),
        Signature(
            "the weight decay is decoupled (AdamW); Adam adds weight_decay * p to the gradient",
            "wrong_weight_decay",
            partial(_adam_ref, decay="decoupled"),
        ),
        Signature(*_NO_ZERO_GRAD, partial(_adam_ref, accumulate=True)),
    ),
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


CLIP_GRAD_NORM_PROBE = ModuleProbe(
    "clip_grad_norm",
    "clip_grad_norm_",
    case_labels(_CLIP),
    _clip_case,
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
)


# ---- early stopping ------------------------------------------------------------------------------

_EARLY: tuple[dict[str, Any], ...] = (
    {
        "label": "min mode, patience 3: a validation loss that improves, ties, then stalls",
        "mode": "min", "patience": 3, "min_delta": 0.0,
        "values": [2.0, 1.5, 1.25, 1.25, 1.375, 1.0, 1.125, 1.25, 1.5, 1.75],
    },
    {
        "label": "max mode (an accuracy), min_delta 0.125: a gain of exactly min_delta is none",
        "mode": "max", "patience": 2, "min_delta": 0.125,
        "values": [0.25, 0.375, 0.5625, 0.625, 0.75, 0.875, 0.875, 0.9375],
    },
    {
        "label": "patience 0: stop at the first check without improvement",
        "mode": "min", "patience": 0, "min_delta": 0.0, "values": [3.0, 2.0, 2.5, 1.0],
    },
    {
        "label": "a NaN loss is never an improvement",
        "mode": "min", "patience": 2, "min_delta": 0.0,
        "values": [1.0, 0.5, math.nan, 0.25, math.nan, math.nan, 0.125],
    },
    {
        "label": "min mode, min_delta 0.25: a loss must fall by more than 0.25 to improve",
        "mode": "min", "patience": 2, "min_delta": 0.25,
        "values": [2.0, 1.875, 1.5, 1.25, 1.125, 1.0, 0.5],
    },
    {
        "label": "a noisy loss over 20 epochs, patience 4",
        "mode": "min", "patience": 4, "min_delta": 0.001, "values": None,
    },
)  # fmt: skip


def _early_case(rng: np.random.Generator, v: int) -> tuple[Params, Arrays]:
    row = _EARLY[v]
    values = row["values"]
    if values is None:  # a decreasing trend, then noise around a floor
        values = (2.0 * np.exp(-np.arange(20) / 4.0) + 0.05 * rng.standard_normal(20)).tolist()
    params = {
        "variant": v, "mode": row["mode"], "patience": row["patience"],
        "min_delta": row["min_delta"],
        "outputs": ["what step() returned (1: stop)", "best", "num_bad_steps"],
        "about": f"EarlyStopping(patience={row['patience']}, min_delta={row['min_delta']}, "
        f"mode={row['mode']!r}) stepped on {len(values)} values",
    }  # fmt: skip
    return params, [np.array(values, dtype=np.float64)]


def _early_ref(
    p: Params, arrays: Arrays, *, ties_improve: bool = False, no_delta: bool = False,
    no_reset: bool = False,
) -> Outputs:  # fmt: skip
    delta = 0.0 if no_delta else float(p["min_delta"])
    sign = 1.0 if p["mode"] == "min" else -1.0
    best, bad = math.inf * sign, 0
    stops, bests, bads = [], [], []
    for value in arrays[0].tolist():
        target = best - sign * delta
        improved = sign * value <= sign * target if ties_improve else sign * value < sign * target
        if improved:
            best = value
            bad = bad if no_reset else 0
        else:
            bad += 1
        stops.append(1.0 if bad >= p["patience"] and bad > 0 else 0.0)
        bests.append(best)
        bads.append(float(bad))
    return [np.array(stops), np.array(bests), np.array(bads)]


EARLY_STOPPING_PROBE = ModuleProbe(
    "early_stopping",
    "EarlyStopping",
    case_labels(_EARLY),
    _early_case,
    _early_ref,
    signatures=(
        Signature(
            "a value equal to best - min_delta counts as an improvement; it must be strictly "
            "better (value < best - min_delta, or > best + min_delta in max mode)",
            "wrong_forward",
            partial(_early_ref, ties_improve=True),
        ),
        Signature(
            "min_delta is ignored: an improvement must beat best by more than min_delta",
            "wrong_forward",
            partial(_early_ref, no_delta=True),
        ),
        Signature(
            "num_bad_steps is not reset to 0 when the metric improves",
            "wrong_forward",
            partial(_early_ref, no_reset=True),
        ),
    ),
)
