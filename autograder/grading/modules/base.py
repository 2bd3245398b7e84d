"""What every module probe shares: the :class:`ModuleProbe` and :class:`Signature` records and
judging outputs against the reference (see the package docstring for how a probe works)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from autograder.worker.tensors import Arrays, Outputs, Params

from ..diagnose import Verdict, classify_gradient, compare_values
from ..numeric import allclose, tolerance

Judge = Callable[[Params, Arrays, Outputs, Outputs], Verdict]


@dataclass(frozen=True)
class Signature:
    """A known bug, as the outputs it would produce: ``outputs(params, arrays)``."""

    message: str
    bug_class: str
    outputs: Callable[[Params, Arrays], Outputs]


@dataclass(frozen=True)
class ModuleProbe:
    """One module, loss, optimizer or initializer check (see the package docstring)."""

    name: str  # the probe name in assignment.toml, and of its runner in the worker
    title: str  # what feedback calls it: "BatchNorm1d", "SGD", ...
    variants: tuple[str, ...]  # one label per kind of case (the case labels students see)
    make_case: Callable[[np.random.Generator, int], tuple[Params, Arrays]]
    reference: Callable[[Params, Arrays], Outputs]  # in the parent, float64
    judge: Judge | None = None  # None: default_judge
    signatures: tuple[Signature, ...] = ()
    assignment: str = "hw2"

    def verdict(self, params: Params, arrays: Arrays, got: Outputs) -> Verdict:
        """Judge what the worker returned for one case, naming a known bug when the outputs
        match one (a random cotangent replaced by ones: the upstream gradient was ignored)."""
        with np.errstate(all="ignore"):
            expected = self.reference(params, arrays)
            verdict = (self.judge or default_judge)(params, arrays, got, expected)
            if verdict.ok:
                return verdict
            signatures = list(self.signatures)
            if "cotangent" in params:
                signatures.append(
                    Signature(
                        "the upstream gradient (the cotangent passed to backward) is ignored: "
                        "multiply by it (chain rule)",
                        "ignored_upstream",
                        partial(_with_ones, self.reference, int(params["cotangent"])),
                    )
                )
            for sig in signatures:
                if _matches(got, sig.outputs(params, arrays)):
                    return Verdict(
                        False, f"{verdict.message}. Likely: {sig.message}", sig.bug_class
                    )
        return verdict


# ---- comparing outputs ----------------------------------------------------------------------


def compare_output(
    name: str,
    got: Any,
    expected: Any,
    *,
    out_shape: tuple[int, ...] = (),
    softmax_family: bool = False,
    trajectory: bool = False,
) -> Verdict:
    """One output. Names starting with "gradient" are judged as gradients (the likely bug
    named by :func:`~autograder.diagnose.classify_gradient`); a ``trajectory`` (one row per
    optimizer step) says after which step it first goes wrong."""
    if expected is None:
        if got is None:
            return Verdict(True)
        return Verdict(False, f"{name}: expected no gradient (None), got one", "wrong_gradient")
    e = np.asarray(expected, dtype=np.float64)
    if got is None:
        if name.startswith("gradient"):
            return Verdict(False, f"{name}: no gradient reached it (.grad is None)", "no_gradient")
        return Verdict(False, f"{name}: nothing came back", "wrong_forward")
    atol, rtol = tolerance(got, e)
    if name.startswith("gradient"):
        return classify_gradient(
            name,
            got,
            e,
            input_shape=e.shape,
            output_shape=out_shape,
            softmax_family=softmax_family,
            atol=atol,
            rtol=rtol,
        )
    verdict = compare_values(name, got, e, atol=atol, rtol=rtol, softmax_family=softmax_family)
    if not verdict.ok and trajectory and got.shape == e.shape and e.ndim >= 1:
        for k in range(e.shape[0]):
            step = compare_values(
                f"{name} after step {k + 1} of {e.shape[0]}", got[k], e[k], atol=atol, rtol=rtol
            )
            if not step.ok:
                return Verdict(False, step.message, verdict.bug_class)
    return verdict


def default_judge(params: Params, arrays: Arrays, got: Outputs, expected: Outputs) -> Verdict:
    """Every output against the reference, in order; the first mismatch decides."""
    out_shape = np.shape(expected[0]) if expected and expected[0] is not None else ()
    for name, g, e in zip(params["outputs"], got, expected):
        verdict = compare_output(
            name,
            g,
            e,
            out_shape=out_shape,
            softmax_family=bool(params.get("softmax_family")),
            trajectory=bool(params.get("trajectory")),
        )
        if not verdict.ok:
            return verdict
    return Verdict(True)


def _matches(got: Outputs, alt: Outputs) -> bool:
    """Do the outputs equal a signature's (within the usual tolerances)?"""
    if len(got) != len(alt):
        return False
    for g, a in zip(got, alt):
        if a is None or g is None:
            if (a is None) != (g is None):
                return False
            continue
        a = np.asarray(a, dtype=np.float64)
        if g.shape != a.shape:
            return False
        if not allclose(g, a, *tolerance(g, a)):
            return False
    return True


def _with_ones(
    reference: Callable[[Params, Arrays], Outputs], index: int, params: Params, arrays: Arrays
) -> Outputs:
    arrays = list(arrays)
    arrays[index] = np.ones_like(arrays[index])
    return reference(params, arrays)


def case_labels(table: tuple[Any, ...]) -> tuple[str, ...]:
    """The case labels of a probe's table: rows are dicts with a "label" or tuples led by it."""
    return tuple(row["label"] if isinstance(row, dict) else row[0] for row in table)
