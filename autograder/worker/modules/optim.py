"""The worker half of the probes of SGD, Adam (parameter trajectories over several steps) and
clip_grad_norm_.

Each ``run_*`` function runs one case on the student's ``tapegrad`` (``tg``) through its public
API and returns plain arrays; the judge half is :mod:`autograder.grading.modules.optim`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from types import ModuleType
from typing import Any

import numpy as np

from ..tensors import Arrays, Outputs, Params, grad_of, number_of, value_of


def skipped(p: Params) -> set[tuple[int, int]]:
    """The (parameter, step) pairs without a gradient."""
    return {(int(k), int(t)) for k, t in p.get("skip", [])}


def _optim_run(
    make: Callable[[ModuleType, list[Any], Params], Any], tg: ModuleType, p: Params, arrays: Arrays
) -> Outputs:
    """Run ``steps`` optimizer steps from the given initial values, with the given gradients
    (assigned to ``.grad``) or a quadratic loss (zero_grad, backward); return each parameter's
    values after every step, stacked."""
    n = p["count"]
    params = [tg.nn.Parameter(a) for a in arrays[:n]]
    opt = make(tg, params, p)
    skip = skipped(p)
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
            history[k].append(value_of(tg, q, f"parameter {k} after step {t + 1}"))
    return [np.stack(h) for h in history]


def _sgd_make(tg: ModuleType, params: list[Any], p: Params) -> Any:
    return tg.optim.SGD(params, lr=p["lr"], momentum=p["momentum"], weight_decay=p["weight_decay"])


def _adam_make(tg: ModuleType, params: list[Any], p: Params) -> Any:
    return tg.optim.Adam(
        params, lr=p["lr"], betas=tuple(p["betas"]), eps=p["eps"], weight_decay=p["weight_decay"]
    )


def run_clip_grad_norm(tg: ModuleType, p: Params, arrays: Arrays) -> Outputs:
    n = p["count"]
    params = [tg.nn.Parameter(a) for a in arrays[:n]]
    for k, q in enumerate(params):
        q.grad = None if k == p["none"] else tg.Tensor(arrays[n + k].copy())
    total = number_of(tg, tg.optim.clip_grad_norm_(params, p["max_norm"]), "clip_grad_norm_")
    return [total] + [grad_of(tg, q, f"parameter {k}'s grad") for k, q in enumerate(params)]


run_sgd = partial(_optim_run, _sgd_make)
run_adam = partial(_optim_run, _adam_make)


def run_early_stopping(tg: ModuleType, p: Params, arrays: Arrays) -> Outputs:
    """Feed the metric values one by one; after each step: the answer of ``step`` (1 for stop),
    ``best`` and ``num_bad_steps``."""
    stopper = tg.optim.EarlyStopping(p["patience"], min_delta=p["min_delta"], mode=p["mode"])
    stops, best, bad = [], [], []
    for value in arrays[0].tolist():
        stops.append(1.0 if stopper.step(value) else 0.0)
        best.append(float(stopper.best))
        bad.append(float(stopper.num_bad_steps))
    return [np.array(stops), np.array(best), np.array(bad)]
