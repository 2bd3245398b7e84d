"""The table of module probes, :data:`PROBES`, in one place; the worker's ``"module"`` handler,
which runs a probe on the student's ``tapegrad``; and the parent's :func:`run_module_check`,
which draws the cases, sends them and judges the replies."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from ..diagnose import Verdict
from ..ops import Request, RequestFailed
from ..results import CaseOutcome
from autograder.worker.loop import handler
from .base import Arrays, ModuleProbe, Outputs
from .conv import CONV2D_PROBE, MAXPOOL2D_PROBE
from .init import KAIMING_PROBE, XAVIER_PROBE
from .layers import DROPOUT_PROBE, LINEAR_PROBE
from .losses import CROSS_ENTROPY_PROBE, MSE_PROBE
from .normalization import BATCHNORM1D_PROBE, LAYERNORM_PROBE
from .optim import ADAM_PROBE, CLIP_GRAD_NORM_PROBE, SGD_PROBE
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
