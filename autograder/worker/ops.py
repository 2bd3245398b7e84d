"""The worker half of the op checks: forward, backward, forward mode and second order of one
op-spec case, run on the student's ``tapegrad`` (the judge half is
:mod:`autograder.grading.ops`).

A handler only calls the student's functions on the arrays it was sent and returns plain
arrays: it never sees expected values, and nothing it returns is trusted.
"""

from __future__ import annotations

import sys
from types import CodeType, FrameType, ModuleType
from typing import Any

import numpy as np

from .opspecs import spec
from .tensors import Arrays, grad_of, to_array


def _forward_backward(
    tg: ModuleType, name: str, case_index: int, xs: Arrays, u: np.ndarray
) -> tuple[np.ndarray, list[np.ndarray | None], Arrays]:
    s = spec(name)
    case = s.cases[case_index]
    ts = [tg.Tensor(x, requires_grad=True) for x in xs]
    y = s.call(tg, *ts, **case.kwargs)
    out = to_array(tg, y, name)
    if out.shape != u.shape:  # the parent judges the forward first: no confusing backward error
        return out, [None] * len(ts), []
    y.backward(tg.Tensor(u))
    grads = [grad_of(tg, t, f"{name}: the gradient of input {i}") for i, t in enumerate(ts)]
    after = [to_array(tg, t, f"{name}: input {i}") for i, t in enumerate(ts)]
    return out, grads, after


def op_handler(
    tg: ModuleType, header: dict[str, Any], arrays: Arrays
) -> tuple[dict[str, Any], Arrays]:
    """Forward and backward of op spec ``header["spec"]`` on one case.

    Arrays in: the inputs, then the cotangent. Arrays out: the output; the gradient of each
    input that has one (``header["grads"]`` says which); the inputs as the tensors hold them
    afterwards, and the caller's arrays afterwards (to detect in-place changes); with
    ``repeat``, the gradients of a second forward+backward on fresh tensors; with
    ``float32``, the output for float32 copies of the inputs.
    """
    name, case_index = header["spec"], int(header["case"])
    n = spec(name).arity
    xs, u = arrays[:n], arrays[n]
    sent = [x.copy() for x in xs]
    out, grads, after = _forward_backward(tg, name, case_index, xs, u)
    if out.shape != u.shape:
        return {"grads": [False] * n}, [out]
    result: Arrays = [out] + [g for g in grads if g is not None] + after + xs
    reply: dict[str, Any] = {"grads": [g is not None for g in grads]}
    if header.get("repeat"):
        _, grads2, _ = _forward_backward(tg, name, case_index, [x.copy() for x in sent], u)
        reply["grads2"] = [g is not None for g in grads2]
        result += [g for g in grads2 if g is not None]
    if header.get("float32"):
        s = spec(name)
        y32 = s.call(
            tg, *[tg.Tensor(x.astype(np.float32)) for x in sent], **s.cases[case_index].kwargs
        )
        result.append(to_array(tg, y32, f"{name} (float32)"))
    return reply, result


def forward_handler(
    tg: ModuleType, header: dict[str, Any], arrays: Arrays
) -> tuple[dict[str, Any], Arrays]:
    """The student's forward on several input sets (``header["count"]`` of them), for finite
    differences of their own forward."""
    s = spec(header["spec"])
    kwargs = s.cases[int(header["case"])].kwargs
    n, outs = s.arity, []
    with tg.no_grad():
        for k in range(int(header["count"])):
            xs = arrays[k * n : (k + 1) * n]
            outs.append(to_array(tg, s.call(tg, *[tg.Tensor(x) for x in xs], **kwargs), s.name))
    return {}, outs


def jvp_handler(
    tg: ModuleType, header: dict[str, Any], arrays: Arrays
) -> tuple[dict[str, Any], Arrays]:
    """Forward mode: arrays in are the primals then one tangent per primal."""
    s = spec(header["spec"])
    kwargs = s.cases[int(header["case"])].kwargs
    n = s.arity
    out, tangent = tg.jvp(
        lambda *ts: s.call(tg, *ts, **kwargs), tuple(arrays[:n]), tuple(arrays[n:])
    )
    return {}, [
        to_array(tg, out, f"{s.name} (jvp output)"),
        to_array(tg, tangent, f"{s.name} (jvp tangent)"),
    ]


def _projected_gradient(
    tg: ModuleType, header: dict[str, Any], arrays: Arrays
) -> tuple[Any, Arrays, Any]:
    """For the second-order requests (arrays: the inputs, u, v): the spec, the inputs, and
    g(x) = tg.grad(<u, f(x, others)>), the gradient in the first input with the others fixed."""
    s = spec(header["spec"])
    kwargs = s.cases[int(header["case"])].kwargs
    xs, u = arrays[: s.arity], tg.Tensor(arrays[s.arity])
    rest = [tg.Tensor(x) for x in xs[1:]]

    def g(z: Any) -> Any:
        return tg.grad(lambda w: (s.call(tg, w, *rest, **kwargs) * u).sum())(z)

    return s, xs, g


def hvp_handler(
    tg: ModuleType, header: dict[str, Any], arrays: Arrays
) -> tuple[dict[str, Any], Arrays]:
    """Second order with the student's ``tg.grad``: for the first input x and the others fixed,
    g(x) = grad <u, f(x)> and h = grad <v, g(x)> (a Hessian-vector product).
    Arrays in: the inputs, u, v. Arrays out: g, h."""
    s, xs, g = _projected_gradient(tg, header, arrays)
    v = tg.Tensor(arrays[s.arity + 1])
    first = g(xs[0])
    second = tg.grad(lambda z: (g(z) * v).sum())(xs[0])
    return {}, [
        to_array(tg, first, f"{s.name}: tg.grad"),
        to_array(tg, second, f"{s.name}: tg.grad of tg.grad"),
    ]


def fvr_handler(
    tg: ModuleType, header: dict[str, Any], arrays: Arrays
) -> tuple[dict[str, Any], Arrays]:
    """Second order by forward over reverse: for the first input x and the others fixed,
    g(x) = tg.grad(<u, f(x)>), and the tangent of g along v, ``tg.jvp(g, (x,), (v,))``
    (H v again, now through the jvp rules of the ops that backward used).
    Arrays in: the inputs, u, v. Arrays out: the tangent."""
    s, xs, g = _projected_gradient(tg, header, arrays)
    _, tangent = tg.jvp(g, (xs[0],), (arrays[s.arity + 1],))
    return {}, [to_array(tg, tangent, f"{s.name}: tg.jvp of tg.grad")]


def backward_cost_handler(
    tg: ModuleType, header: dict[str, Any], arrays: Arrays
) -> tuple[dict[str, Any], Arrays]:
    """How often backward runs the forward code: the signal of a numerical gradient.

    Arrays in: the inputs (usually large), then the cotangent. The forward pass runs under a
    profiler that notes every function named ``forward`` it enters (the ops' forward rules);
    the backward pass then runs under one that counts calls to those same functions. A
    backward rule calls a few ops whatever the size; a gradient computed by finite
    differences evaluates forward once or twice per input element. Reply: ``output_shape``,
    ``forward_calls`` (during backward) and ``forward_rules`` (how many forward functions the
    op ran).
    """
    s = spec(header["spec"])
    kwargs = s.cases[int(header["case"])].kwargs
    xs, u = arrays[: s.arity], arrays[s.arity]
    ts = [tg.Tensor(x, requires_grad=True) for x in xs]
    rules: set[CodeType] = set()

    def note(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code.co_name == "forward":
            rules.add(frame.f_code)

    calls = 0

    def count(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal calls
        if event == "call" and frame.f_code in rules:
            calls += 1

    previous = sys.getprofile()
    sys.setprofile(note)
    try:
        y = s.call(tg, *ts, **kwargs)
    finally:
        sys.setprofile(previous)
    out = to_array(tg, y, s.name)
    if out.shape != u.shape:  # the parent says so; no confusing backward error
        return {"output_shape": list(out.shape)}, []
    sys.setprofile(count)
    try:
        y.backward(tg.Tensor(u))
    finally:
        sys.setprofile(previous)
    return {
        "output_shape": list(out.shape),
        "forward_calls": calls,
        "forward_rules": len(rules),
    }, []
