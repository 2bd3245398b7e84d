"""Probes of hw4: the student's tracer, their derivative code generator and their dead-value
pass, judged against float64 NumPy references of the functions in
:data:`autograder.worker.modules.compiler.FUNCTIONS` (gradients by central differences) and
against what each trace must contain."""

from __future__ import annotations

import numpy as np

from autograder.worker.modules.compiler import FUNCTIONS, Traced

from ..diagnose import Verdict
from .base import Arrays, ModuleProbe, Outputs, Params, compare_output

_NAMES = tuple(FUNCTIONS)


def _inputs(rng: np.random.Generator, spec: Traced) -> Arrays:
    if spec.positive:
        return [rng.uniform(0.5, 2.0, shape) for shape in spec.shapes]
    return [rng.standard_normal(shape) for shape in spec.shapes]


def _params(name: str, outputs: list[str], **extra: object) -> Params:
    spec = FUNCTIONS[name]
    return {"function": name, "ops": list(spec.ops), "outputs": outputs, **extra}


def _gradients(spec: Traced, xs: Arrays, eps: float = 1e-6) -> Outputs:
    """The value of ``spec.numpy`` at ``xs`` and its gradients by central differences."""
    grads = []
    for k, x in enumerate(xs):
        g = np.zeros_like(x)
        for i in np.ndindex(x.shape):
            hi = [a.copy() for a in xs]
            lo = [a.copy() for a in xs]
            hi[k][i] += eps
            lo[k][i] -= eps
            g[i] = (spec.numpy(*hi) - spec.numpy(*lo)) / (2 * eps)
        grads.append(g)
    return [np.array(spec.numpy(*xs)), *grads]


# ---- trace ---------------------------------------------------------------------------------------


def _trace_case(rng: np.random.Generator, v: int) -> tuple[Params, Arrays]:
    name = _NAMES[v]
    outputs = ["the traced output's value", "node kinds", "node inputs", "node ops", "output node",
               "node names", "node labels"]  # fmt: skip
    return _params(name, outputs, about=f"tg.trace({name})"), _inputs(rng, FUNCTIONS[name])


def _padded(expected: Outputs, p: Params) -> Outputs:
    """The expected values, then None for the outputs judged by their structure."""
    return expected + [None] * (len(p["outputs"]) - len(expected))


def _trace_reference(p: Params, arrays: Arrays) -> Outputs:
    return _padded([np.array(FUNCTIONS[p["function"]].numpy(*arrays))], p)


def _trace_judge(p: Params, arrays: Arrays, got: Outputs, expected: Outputs) -> Verdict:
    """The value, then the Wengert list itself: one input node per argument, first, in order
    of the arguments; every op of the function once (a reused value is one node); each node
    after the nodes it reads; the output one of the nodes."""
    verdict = compare_output(p["outputs"][0], got[0], expected[0])
    if not verdict.ok:
        return verdict
    kinds, parents, codes, out = (np.asarray(g) for g in got[1:5])
    n_in = len(arrays)
    if list(kinds[:n_in]) != [0] * n_in or int((kinds == 0).sum()) != n_in:
        return Verdict(False, f"the trace should start with its {n_in} inputs, and have no other "
                              "input nodes", "wrong_trace")  # fmt: skip
    ops = sorted(p["ops"][c] if c >= 0 else "?" for c, k in zip(codes, kinds) if k == 2)
    if ops != sorted(p["ops"]):
        return Verdict(
            False,
            f"the trace's ops are {ops}, expected {sorted(p['ops'])} (each op once, a value "
            "used twice is still one node)",
            "wrong_trace",
        )
    for i, row in enumerate(parents):
        for j in row:
            if j >= i or (j < 0 and j != -1):
                message = f"node {i} reads node {j}, which does not come before it"
                return Verdict(False, message + " (values come after their inputs)", "wrong_order")
    if not 0 <= int(out) < len(kinds):
        return Verdict(False, "the graph's output is not one of its nodes", "wrong_trace")
    return _judge_names(p, kinds, np.asarray(got[5]), np.asarray(got[6]))


def _judge_names(p: Params, kinds: np.ndarray, names: np.ndarray, labels: np.ndarray) -> Verdict:
    """The lectures' names: inputs v-(n-1) ... v0, ops v1, v2, ... and constants c0, c1, ...
    in the order they appear; a one-element constant labelled with its value."""
    n_in = int((kinds == 0).sum())
    expected = {
        0: iter(range(1 - n_in, 1)),
        2: iter(range(1, len(kinds) + 1)),
        1: iter(range(len(kinds))),
    }
    for i, (kind, (letter, number)) in enumerate(zip(kinds, names)):
        want_letter = 1 if kind == 1 else 0
        want = next(expected[int(kind)])
        if (letter, number) != (want_letter, want):
            shown = f"{'vc'[want_letter]}{want}"
            return Verdict(False, f"node {i} should be named {shown}, as in the lectures' table "
                                  "(inputs v-1, v0, ...; ops v1, v2, ...; constants c0, ...)",
                           "wrong_trace")  # fmt: skip
    constants = [float(x) for x, k in zip(labels, kinds) if k == 1]
    expected_constants = list(FUNCTIONS[p["function"]].constants)
    if constants != expected_constants:
        message = f"the constants' labels read {constants}, expected {expected_constants}"
        return Verdict(False, message + " (a one-element constant shows its value)", "wrong_trace")
    return Verdict(True)


TRACE_PROBE = ModuleProbe(
    "trace",
    "tg.trace",
    _NAMES,
    _trace_case,
    _trace_reference,
    judge=_trace_judge,
    assignment="hw4",
)


# ---- derivative source ---------------------------------------------------------------------------


def _derivative_case(rng: np.random.Generator, v: int) -> tuple[Params, Arrays]:
    name = _NAMES[v]
    spec = FUNCTIONS[name]
    traced = _inputs(rng, spec)
    run_at = _inputs(rng, spec) if spec.smooth else [a.copy() for a in traced]
    outputs = ["the generated function's value"]
    outputs += [f"gradient of input {k}" for k in range(len(traced))]
    outputs += ["source lines", "accumulating lines"]
    where = "other inputs of the same shapes" if spec.smooth else "the traced inputs"
    about = f"derivative code of {name}, run at {where}"
    return _params(name, outputs, about=about), traced + run_at


def _derivative_reference(p: Params, arrays: Arrays) -> Outputs:
    k = len(arrays) // 2
    return _padded(_gradients(FUNCTIONS[p["function"]], arrays[k:]), p)


def _derivative_judge(p: Params, arrays: Arrays, got: Outputs, expected: Outputs) -> Verdict:
    accumulating = int(np.asarray(got[-1]))
    for name, g, e in zip(p["outputs"], got, expected):
        verdict = compare_output(name, g, e, out_shape=()) if e is not None else Verdict(True)
        if not verdict.ok:
            if FUNCTIONS[p["function"]].reuses and accumulating == 0:
                return Verdict(
                    False,
                    f"{verdict.message}. Likely: a value of this function is read by two ops, "
                    "but no line of the derivative source accumulates (+=) into its adjoint",
                    "no_accumulation",
                )
            return verdict
    lines = int(np.asarray(got[-2]))
    needed = 2 + len(p["ops"])  # def, one line per op at least, return
    if lines < needed:
        message = f"the derivative source has {lines} lines: expected at least {needed}"
        return Verdict(
            False, message + " (one per forward value, then the adjoints)", "wrong_trace"
        )
    return Verdict(True)


DERIVATIVE_SOURCE_PROBE = ModuleProbe(
    "derivative_source",
    "graph.derivative_source / derivative_function",
    _NAMES,
    _derivative_case,
    _derivative_reference,
    judge=_derivative_judge,
    assignment="hw4",
)


# ---- dead values --------------------------------------------------------------------------------

_DEAD = tuple(name for name in _NAMES if FUNCTIONS[name].smooth)


def _dead_case(rng: np.random.Generator, v: int) -> tuple[Params, Arrays]:
    name = _DEAD[v]
    spec = FUNCTIONS[name]
    outputs = ["the compiled value"] + [f"gradient of input {k}" for k in range(len(spec.shapes))]
    outputs += ["operations per call", "compiled calls"]
    about = f"tg.compile({name}), with and without dead-value elimination"
    return _params(name, outputs, dead=spec.dead, about=about), _inputs(rng, spec)


def _dead_reference(p: Params, arrays: Arrays) -> Outputs:
    return _padded(_gradients(FUNCTIONS[p["function"]], arrays), p)


def _dead_judge(p: Params, arrays: Arrays, got: Outputs, expected: Outputs) -> Verdict:
    counts, compiled = np.asarray(got[-2]), int(np.asarray(got[-1]))
    if compiled != 2:
        return Verdict(False, "tg.compile ran the function eagerly instead of compiling it (a "
                              "pass raised, or tracing failed: call it yourself to see the "
                              "warning)", "not_compiled")  # fmt: skip
    for name, g, e in zip(p["outputs"], got, expected):
        if e is None:
            continue
        verdict = compare_output(name, g, e, out_shape=())
        if not verdict.ok:
            return Verdict(False, f"with dead-value elimination, {verdict.message}",
                           verdict.bug_class)  # fmt: skip
    before, after = int(counts[0]), int(counts[1])
    if before - after < int(p["dead"]):
        return Verdict(False, f"dead-value elimination left {after} of {before} array "
                              f"operations: at least {p['dead']} compute values nothing uses",
                       "dead_values_kept")  # fmt: skip
    return Verdict(True)


DEAD_VALUES_PROBE = ModuleProbe(
    "dead_values",
    "tg.compile's dead-value elimination",
    _DEAD,
    _dead_case,
    _dead_reference,
    judge=_dead_judge,
    assignment="hw4",
)

__all__ = ["DEAD_VALUES_PROBE", "DERIVATIVE_SOURCE_PROBE", "TRACE_PROBE"]
