"""The worker half of the module probes: :data:`RUNS`, one runner per probe name, and the
``"module"`` request handler.

A runner ``run(tg, params, arrays) -> outputs`` builds the module, loss, optimizer or
initializer with the student's ``tapegrad`` (``tg``), through its public API only; sets its
parameters by assigning ``.data`` from the arrays it was sent, so results are deterministic;
and returns plain arrays (``None`` for a missing gradient). The cases, the float64 references
and the judging are the parent's (:mod:`autograder.grading.modules`, one module per family
with the same names as here). Expected values never come here.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from . import compiler, conv, gradcheck, init, layers, losses, normalization, optim, structure

__all__ = ["RUNS", "module_handler"]

Run = Callable[[ModuleType, dict[str, Any], list[np.ndarray]], list[Any]]

RUNS: dict[str, Run] = {
    "module": structure.run_module,
    "linear": layers.run_linear,
    "dropout": layers.run_dropout,
    "batchnorm1d": normalization.run_batchnorm1d,
    "layernorm": normalization.run_layernorm,
    "cross_entropy": losses.run_cross_entropy,
    "mse": losses.run_mse,
    "sgd": optim.run_sgd,
    "adam": optim.run_adam,
    "clip_grad_norm": optim.run_clip_grad_norm,
    "xavier": init.run_init,
    "kaiming": init.run_init,
    "conv2d": conv.run_conv2d,
    "maxpool2d": conv.run_maxpool2d,
    "central_difference": gradcheck.run_central_difference,
    "early_stopping": optim.run_early_stopping,
    "accuracy": losses.run_accuracy,
    "trace": compiler.run_trace,
    "derivative_source": compiler.run_derivative_source,
    "dead_values": compiler.run_dead_values,
}


def module_handler(
    tg: ModuleType, header: dict[str, Any], arrays: list[np.ndarray]
) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Run probe ``header["probe"]`` with ``header["params"]`` on the arrays sent. The reply
    lists (``"none"``) which outputs were None (a missing gradient); the arrays are the rest."""
    name = header.get("probe")
    run = RUNS.get(name) if isinstance(name, str) else None
    if run is None:
        raise LookupError(f"no module probe {name!r}; known: {sorted(RUNS)}")
    params = dict(header.get("params") or {})
    outputs = run(tg, params, [np.array(a, copy=True) for a in arrays])
    none = [i for i, out in enumerate(outputs) if out is None]
    return {"none": none}, [np.asarray(out, order="C") for out in outputs if out is not None]
