"""``tg.check_grad``: compare a function's backward pass with finite differences.

This is the students' own checker (the autograder runs a stricter, hidden version of the same
idea). Everything is done in float64: with central differences the error is O(eps**2) from
truncation plus O(machine_eps / eps) from rounding, which at eps = 1e-6 is about 1e-10 in
float64, and hopeless in float32.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .tensor import Tensor, no_grad

__all__ = ["check_grad", "central_difference", "GradCheckReport", "InputReport"]

# An input and output this small get the full Jacobian compared entry by entry.
FULL_JACOBIAN_LIMIT = 4096
DIRECTIONS = 3


def central_difference(
    f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, v: np.ndarray, eps: float
) -> np.ndarray:
    """The directional derivative of ``f`` at ``x`` along ``v``, by central differences:

        (f(x + eps*v) - f(x - eps*v)) / (2*eps)

    ``f`` maps a float64 array to a float64 array; ``x`` and ``v`` have the same shape.
    """
    raise NotImplementedError("hw1: central_difference")


@dataclass
class InputReport:
    """What the check found for one input."""

    index: int
    shape: tuple[int, ...]
    method: str  # "full Jacobian" or "directional"
    max_abs_error: float = 0.0
    max_rel_error: float = 0.0
    where: str = ""
    ok: bool = True
    note: str = ""


@dataclass
class GradCheckReport:
    """The result of :func:`check_grad`: true when every input passed; prints as a table."""

    name: str
    output_shape: tuple[int, ...]
    inputs: list[InputReport] = field(default_factory=list)
    atol: float = 0.0
    rtol: float = 0.0

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.inputs)

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        lines = [
            f"check_grad({self.name}): output shape {self.output_shape}, "
            f"atol={self.atol:g}, rtol={self.rtol:g}",
            f"  {'input':<6}{'shape':<16}{'method':<22}"
            f"{'max abs err':>12}{'max rel err':>12}  result",
        ]
        for r in self.inputs:
            verdict = "ok" if r.ok else f"FAIL at {r.where}"
            method = r.method if not r.note else f"{r.method} ({r.note})"
            lines.append(
                f"  {r.index:<6}{str(r.shape):<16}{method:<22}"
                f"{r.max_abs_error:>12.2e}{r.max_rel_error:>12.2e}  {verdict}"
            )
        lines.append("gradients OK" if self.ok else "gradients WRONG: see the FAIL rows above")
        return "\n".join(lines)

    __repr__ = __str__


def check_grad(
    f: Callable[..., Tensor],
    *inputs: Any,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
) -> GradCheckReport:
    """Check the gradients of ``f`` (tensors in, one tensor out) at ``inputs``.

    The inputs are converted to float64. A random Gaussian cotangent ``u`` (never all ones,
    which would hide transposed or misplaced gradients) is pulled back through ``f`` by
    ``backward``, and compared with finite differences of ``<u, f(x)>``:

    * small inputs and outputs: the full Jacobian, one central difference per input element
      and one backward pass per output element, compared entry by entry;
    * large ones: ``DIRECTIONS`` random directions ``v`` per input, comparing
      ``<grad, v>`` with the central difference of ``<u, f>`` along ``v``.

    An entry passes when ``|analytic - numeric| <= atol + rtol * |numeric|``.
    """
    rng = np.random.default_rng(seed)
    xs = [np.array(_host(x), dtype=np.float64) for x in inputs]
    y0 = _evaluate(f, xs)
    report = GradCheckReport(getattr(f, "__name__", "f"), y0.shape, atol=atol, rtol=rtol)
    for i, x in enumerate(xs):

        def f_i(xi: np.ndarray, i: int = i) -> np.ndarray:
            return _evaluate(f, xs[:i] + [xi] + xs[i + 1 :])

        if x.size * max(y0.size, 1) <= FULL_JACOBIAN_LIMIT:
            report.inputs.append(_full_jacobian(f, xs, i, f_i, y0.shape, eps, atol, rtol))
        else:
            report.inputs.append(_directional(f, xs, i, f_i, y0.shape, eps, atol, rtol, rng))
    return report


def _host(x: Any) -> Any:
    return x.numpy() if isinstance(x, Tensor) else x


def _evaluate(f: Callable[..., Tensor], xs: list[np.ndarray]) -> np.ndarray:
    with no_grad():
        y = f(*[Tensor(x, dtype=np.float64) for x in xs])
    return np.array(_host(y), dtype=np.float64)


def _vjp(f: Callable[..., Tensor], xs: list[np.ndarray], u: np.ndarray) -> list[np.ndarray | None]:
    """The gradient of <u, f(xs)> with respect to every input, by backward()."""
    ts = [Tensor(x, dtype=np.float64, requires_grad=True) for x in xs]
    y = f(*ts)
    if y.requires_grad:
        y.backward(u)
    return [None if t.grad is None else np.array(t.grad.numpy(), dtype=np.float64) for t in ts]


def _compare(
    report: InputReport,
    analytic: np.ndarray,
    numeric: np.ndarray,
    atol: float,
    rtol: float,
    describe: Callable[[tuple[int, ...]], str],
) -> InputReport:
    err = np.abs(analytic - numeric)
    bad = ~(err <= atol + rtol * np.abs(numeric))  # NaN counts as bad
    rel = err / np.maximum(np.abs(numeric), 1e-12)
    report.max_abs_error = float(np.nanmax(err)) if err.size else 0.0
    report.max_rel_error = float(np.nanmax(rel)) if rel.size else 0.0
    if bad.any():
        report.ok = False
        worst = np.unravel_index(
            int(np.argmax(np.where(bad, np.nan_to_num(err, nan=np.inf), -1))), bad.shape
        )
        report.where = describe(tuple(int(k) for k in worst)) + (
            f": backward {analytic[worst]:.6g}, finite differences {numeric[worst]:.6g}"
        )
    return report


def _missing(report: InputReport, numeric: np.ndarray) -> InputReport:
    """No gradient reached this input: right only if the numeric one is zero."""
    report.max_abs_error = float(np.max(np.abs(numeric))) if numeric.size else 0.0
    if report.max_abs_error > 0:
        report.ok = False
        report.where = "every entry: backward gave no gradient (.grad is None)"
    return report


def _full_jacobian(f, xs, i, f_i, out_shape, eps, atol, rtol) -> InputReport:  # type: ignore[no-untyped-def]
    x = xs[i]
    report = InputReport(i, x.shape, "full Jacobian")
    n_out = int(np.prod(out_shape))
    numeric = np.empty((n_out, x.size))
    for k in range(x.size):
        v = np.zeros(x.size)
        v[k] = 1.0
        numeric[:, k] = central_difference(f_i, x, v.reshape(x.shape), eps).reshape(-1)
    analytic = np.empty_like(numeric)
    for j in range(n_out):
        u = np.zeros(n_out)
        u[j] = 1.0
        g = _vjp(f, xs, u.reshape(out_shape))[i]
        if g is None:
            return _missing(report, numeric)
        analytic[j] = g.reshape(-1)

    def describe(pos: tuple[int, ...]) -> str:
        out_idx = np.unravel_index(pos[0], out_shape) if out_shape else ()
        in_idx = np.unravel_index(pos[1], x.shape) if x.shape else ()
        return f"d out{list(map(int, out_idx))} / d in{list(map(int, in_idx))}"

    return _compare(report, analytic, numeric, atol, rtol, describe)


def _directional(f, xs, i, f_i, out_shape, eps, atol, rtol, rng) -> InputReport:  # type: ignore[no-untyped-def]
    x = xs[i]
    report = InputReport(i, x.shape, "directional", note=f"{DIRECTIONS} random")
    analytic, numeric = np.empty(DIRECTIONS), np.empty(DIRECTIONS)
    for d in range(DIRECTIONS):
        u = rng.standard_normal(out_shape)
        v = rng.standard_normal(x.shape)
        g = _vjp(f, xs, u)[i]
        numeric[d] = float(np.sum(u * central_difference(f_i, x, v, eps)))
        if g is None:
            return _missing(report, numeric)
        analytic[d] = float(np.sum(g * v))
    return _compare(report, analytic, numeric, atol, rtol, lambda pos: f"direction {pos[0]}")
