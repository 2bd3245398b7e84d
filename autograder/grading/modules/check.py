"""The table of module probes, :data:`PROBES`, in one place, and the parent's
:func:`run_module_check`, which draws the cases, sends them and judges the replies (the
worker's runners, by the same names, are :data:`autograder.worker.modules.RUNS`)."""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from ..cases import Request, RequestFailed, run_cases
from ..diagnose import Verdict
from ..results import CaseOutcome
from .base import ModuleProbe, Outputs
from .compiler import DEAD_VALUES_PROBE, DERIVATIVE_SOURCE_PROBE, TRACE_PROBE
from .conv import CONV2D_PROBE, MAXPOOL2D_PROBE
from .gradcheck import CENTRAL_DIFFERENCE_PROBE
from .init import KAIMING_PROBE, XAVIER_PROBE
from .layers import DROPOUT_PROBE, LINEAR_PROBE
from .losses import ACCURACY_PROBE, CROSS_ENTROPY_PROBE, MSE_PROBE
from .normalization import BATCHNORM1D_PROBE, LAYERNORM_PROBE
from .optim import ADAM_PROBE, CLIP_GRAD_NORM_PROBE, EARLY_STOPPING_PROBE, SGD_PROBE
from .structure import MODULE_PROBE

# ---- the table ----------------------------------------------------------------------------------

_PROBES = (
    MODULE_PROBE,
    LINEAR_PROBE,
    BATCHNORM1D_PROBE,
    DROPOUT_PROBE,
    LAYERNORM_PROBE,
    CROSS_ENTROPY_PROBE,
    MSE_PROBE,
    SGD_PROBE,
    ADAM_PROBE,
    CLIP_GRAD_NORM_PROBE,
    XAVIER_PROBE,
    KAIMING_PROBE,
    CONV2D_PROBE,
    MAXPOOL2D_PROBE,
    CENTRAL_DIFFERENCE_PROBE,
    EARLY_STOPPING_PROBE,
    ACCURACY_PROBE,
    TRACE_PROBE,
    DERIVATIVE_SOURCE_PROBE,
    DEAD_VALUES_PROBE,
)

PROBES: dict[str, ModuleProbe] = {p.name: p for p in _PROBES}


# ---- the parent's check ------------------------------------------------------------------------


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
    """Every variant of one probe, ``cases`` times each (see
    :func:`~autograder.grading.cases.run_cases`)."""
    if probe_name not in PROBES:
        raise KeyError(f"no module probe {probe_name!r}; known: {', '.join(sorted(PROBES))}")
    probe = PROBES[probe_name]
    plan = [
        (label, partial(_run_case, probe, v, rng))
        for v, label in enumerate(probe.variants)
        for _ in range(cases)
    ]
    return run_cases(request, probe.title, plan)


def _run_case(
    probe: ModuleProbe, variant: int, rng: np.random.Generator, request: Request
) -> tuple[Verdict, str]:
    params, arrays = probe.make_case(rng, variant)
    header, replied = request(
        {"type": "module", "probe": probe.name, "params": params}, [a.copy() for a in arrays]
    )
    got = _unpack(header, list(replied), len(params["outputs"]))
    try:
        verdict = probe.verdict(params, arrays, got)
    except (ValueError, TypeError, IndexError, KeyError) as exc:  # odd shapes or dtypes
        verdict = Verdict(
            False,
            f"the results could not be judged ({type(exc).__name__}: {str(exc)[:200]})",
            "wrong_shape",
        )
    return verdict, params["about"]
