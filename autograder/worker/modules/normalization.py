"""The worker half of the probes of BatchNorm1d and LayerNorm.

Each ``run_*`` function runs one case on the student's ``tapegrad`` (``tg``) through its public
API and returns plain arrays; the judge half is :mod:`autograder.grading.modules.normalization`.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from ..tensors import (
    Arrays,
    Outputs,
    Params,
    affine_grads,
    forward_backward,
    set_affine,
    to_array,
    value_of,
)

BN_EVAL = 1  # the variant in eval mode


def _running_stats(tg: ModuleType, bn: Any) -> Outputs:
    return [
        value_of(tg, bn.running_mean, "BatchNorm1d.running_mean"),
        value_of(tg, bn.running_var, "BatchNorm1d.running_var"),
    ]


def run_batchnorm1d(tg: ModuleType, p: Params, arrays: Arrays) -> Outputs:
    bn = tg.nn.BatchNorm1d(p["features"])
    bn.train()
    if p["variant"] == BN_EVAL:
        x1, x2, x3, gamma, beta, xe, u = arrays
        set_affine(bn, gamma, beta)
        for xb in (x1, x2, x3):
            bn(tg.Tensor(xb))
        running = _running_stats(tg, bn)
        bn.eval()
        return [*running, *forward_backward(tg, bn, xe, u, "BatchNorm1d in eval mode")]
    xa, gamma, beta, u = arrays
    set_affine(bn, gamma, beta)
    out, gx = forward_backward(tg, bn, xa, u, "BatchNorm1d")
    return [out, gx, *affine_grads(tg, bn, "BatchNorm1d"), *_running_stats(tg, bn)]


def run_layernorm(tg: ModuleType, p: Params, arrays: Arrays) -> Outputs:
    xa, gamma, beta, u = arrays
    ln = tg.nn.LayerNorm(p["features"])
    set_affine(ln, gamma, beta)
    ln.train()
    out, gx = forward_backward(tg, ln, xa, u, "LayerNorm")
    grads = [gx, *affine_grads(tg, ln, "LayerNorm")]
    ln.eval()
    return [out, *grads, to_array(tg, ln(tg.Tensor(xa)), "LayerNorm in eval mode")]
