"""The worker half of the probes of Linear and Dropout.

Each ``run_*`` function runs one case on the student's ``tapegrad`` (``tg``) through its public
API and returns plain arrays; the judge half is :mod:`autograder.grading.modules.layers`.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from ..tensors import (
    Arrays,
    Outputs,
    Params,
    forward_backward,
    grad_of,
    seed,
    set_affine,
    to_array,
    value_of,
)

LINEAR_FRESH = 3  # the variant that checks a fresh Linear's shapes and initial values
DROPOUT_TWICE, DROPOUT_EVAL = 1, 2  # the variants: called twice; eval mode


def run_linear(tg: ModuleType, p: Params, arrays: Arrays) -> Outputs:
    if p["variant"] == LINEAR_FRESH:
        seed(tg, p["seed"])
        lin = tg.nn.Linear(p["in"], p["out"])
        b = lin.bias
        return [
            np.array(lin.weight.shape, dtype=np.int64),
            None if b is None else np.array(b.shape, dtype=np.int64),
            value_of(tg, lin.weight, "Linear.weight"),
            None if b is None else value_of(tg, b, "Linear.bias"),
        ]
    lin = tg.nn.Linear(p["in"], p["out"], bias=p["bias"])
    set_affine(lin, arrays[1], arrays[2] if p["bias"] else None)
    out, gx = forward_backward(tg, lin, arrays[0], arrays[-1], "Linear")
    last = (
        grad_of(tg, lin.bias, "Linear.bias.grad")
        if p["bias"]
        else np.array(len(list(lin.parameters())))
    )
    return [out, gx, grad_of(tg, lin.weight, "Linear.weight.grad"), last]


def run_dropout(tg: ModuleType, p: Params, arrays: Arrays) -> Outputs:
    xa, u = arrays
    seed(tg, p["seed"])
    drop = tg.nn.Dropout(p["p"])
    if p["variant"] == DROPOUT_TWICE:
        drop.train()
        return [
            to_array(tg, drop(tg.Tensor(xa)), "Dropout"),
            to_array(tg, drop(tg.Tensor(xa)), "Dropout"),
        ]
    if p["variant"] == DROPOUT_EVAL:
        drop.eval()
    else:
        drop.train()
    outs = list(forward_backward(tg, drop, xa, u, "Dropout"))
    if p["variant"] == DROPOUT_EVAL:
        zero = tg.nn.Dropout(0.0)
        zero.train()
        outs.append(to_array(tg, zero(tg.Tensor(xa)), "Dropout(0.0)"))
    return outs
