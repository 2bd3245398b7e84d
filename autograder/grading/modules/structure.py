"""The probe of Module itself: parameters(), train()/eval() and state_dict(), on a model with
sub-modules, a list of modules, BatchNorm1d, Sequential and a shared parameter."""

from __future__ import annotations

from typing import Any

import numpy as np

from autograder.worker.modules.structure import MODES, PARAMETERS, STATE

from ..diagnose import Verdict, compare_values
from ..numeric import allclose
from .base import Arrays, ModuleProbe, Outputs, Params

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
    arrays = [] if v != STATE else [rng.standard_normal((6, 5)) * 2 + 1 for _ in range(3)]
    return {
        "variant": v,
        "seed": int(rng.integers(2**31)),
        "outputs": outputs,
        "about": "a Module with sub-modules, a list of Blocks, BatchNorm1d, Sequential "
        "and a shared parameter",
    }, arrays


def _module_ref(p: Params, arrays: Arrays) -> Outputs:
    if p["variant"] == PARAMETERS:
        return [np.arange(1.0, len(NET_PARAMETERS) + 1)]
    if p["variant"] == MODES:
        return [np.zeros(len(NET_MODULES)), np.ones(len(NET_MODULES))]
    return [None] * 5  # judged by consistency: the copy against the original


def _names(items: Any, limit: int = 6) -> str:
    items = list(items)
    shown = ", ".join(str(i)[:60] for i in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _module_judge(p: Params, arrays: Arrays, got: Outputs, expected: Outputs) -> Verdict:
    if p["variant"] == PARAMETERS:
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
    if p["variant"] == MODES:
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
        or not allclose(state_a, state_b, atol=1e-7, rtol=1e-6)
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


MODULE_PROBE = ModuleProbe(
    "module", "Module", _MODULE, _module_case, _module_ref, judge=_module_judge
)
